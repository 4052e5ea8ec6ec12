"""``python -m videoseg benchmark``: run the whole method over a benchmark split and score it as the
benchmark does (paper: Experiments, Tables 1-3 protocol).

For every expression of the split (or of ``--videos`` / the first ``--limit``), the three stages run
on the video's JPEG frames (:class:`videoseg.eval.datasets.FrameFolder`, decoding only the frames a stage
asks for) and the union of the predicted targets is written where the benchmark's scoring script or
server reads it: ``<out>/Annotations/<video>/<exp_id>/<frame>.png``, single-channel 0 / 255 PNGs
(MeViS and ReVOS read them as grayscale, non-zero = foreground; Ref-YouTube-VOS's server takes a zip
of that ``Annotations`` folder, written to ``<out>/submission.zip`` once every expression of the
split has its masks).

Scores (where ground truth is released: MeViS valid_u / train, ReVOS, Ref-DAVIS17) are computed from
the PNGs on disk with :func:`videoseg.eval.metrics.expression_scores` and
:func:`videoseg.eval.metrics.aggregate_expressions`: per expression J and F over all its frames against
the union of its objects, then the mean over expressions (MeViS); ReVOS adds the referring and
reasoning subsets, overall = their mean, and robustness R from ``mask_dict_foreground.json``
(type 2 expressions are scored but counted in neither subset, as its script does); Ref-DAVIS17
adds the mean of each of the four annotator sets.

A run that ends in an error counts as empty masks, as a benchmark would score a missing answer,
and is reported. Re-running the same command resumes: expressions whose PNGs are all there are not
run again (a failed one is retried); the scores of the split so far are printed at the end. Each
expression's masks are written to a staging folder first and moved into place when complete, so
Ctrl-C or a crash leaves only finished expressions on disk. ``<out>/benchmark_runs.jsonl`` logs
each run (status, errors, seconds); ``<out>/benchmark.json`` records layout, split and preset, and
a re-run with another preset into the same folder is refused (its masks would be mixed in).

Before any expression runs, the arguments are checked: ``--json`` may not be the ``--out`` folder or
a file the benchmark writes there, and its folder is created (or refused) now, not after the runs;
a preset whose weights are missing while the hub cannot be reached is refused with one line naming
every missing checkpoint (:mod:`videoseg.runtime.weights`), instead of every run failing on them.

Exit codes: 0 done, 1 the data cannot be read or every run failed, 2 bad arguments (missing weights
included), 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from videoseg.eval.datasets import LAYOUTS, BenchExpression, Benchmark, DatasetError, load_benchmark
from videoseg.runtime import weights

RUN_LOG = "benchmark_runs.jsonl"
META_FILE = "benchmark.json"
SUBMISSION = "submission.zip"


def add_parser(subparsers: Any) -> None:
    """Register ``benchmark`` on the ``python -m videoseg`` subcommand parser."""
    from videoseg.core.config import describe_presets

    p = subparsers.add_parser(
        "benchmark",
        help="run a preset over a benchmark's validation data and score it like the benchmark",
        description="Run the method over MeViS / ReVOS / Ref-YouTube-VOS (Ref-DAVIS17) data, write the "
        "predictions in the benchmark's layout and score them where ground truth exists.",
        epilog="presets:\n" + describe_presets(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--layout", choices=LAYOUTS, required=True, help="how the data is laid out")
    p.add_argument("--root", type=Path, required=True, help="dataset folder (see the README)")
    p.add_argument(
        "--split",
        default=None,
        help="mevis: valid_u (default) | valid | train; revos: valid; refytvos: valid",
    )
    p.add_argument(
        "--preset",
        required=True,
        help="named configuration, e.g. paper (the shapes-world presets only understand shapes-world "
        "clips; they are here for trying the command out)",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder (predictions, logs)")
    p.add_argument("--limit", type=int, default=None, help="only the first N expressions")
    p.add_argument("--videos", default="", help="comma-separated video names to run (default: all)")
    p.add_argument(
        "--fps",
        type=float,
        default=6.0,
        help="frame rate of the frame folders (default 6: Ref-YouTube-VOS keeps every 5th frame of 30 fps)",
    )
    p.add_argument(
        "--traces", action="store_true", help="record every run to <out>/traces/<video>/<exp_id>.jsonl"
    )
    p.add_argument("--json", type=Path, default=None, help="write every row and the aggregate scores here")
    p.set_defaults(func=main)


# ---------------------------------------------------------------------------------- selection


def select(bench: Benchmark, videos: str = "", limit: int | None = None) -> list[BenchExpression]:
    """The expressions to run: of ``videos`` (comma-separated names, all if empty), the first ``limit``."""
    names = [v.strip() for v in videos.split(",") if v.strip()]
    known = {v.name for v in bench.videos}
    unknown = [n for n in names if n not in known]
    if unknown:
        listed = ", ".join(sorted(known)[:5]) + (", ..." if len(known) > 5 else "")
        raise ValueError(f"--videos: no video {unknown[0]!r} in {bench.name} (videos: {listed})")
    chosen = [e for e in bench.expressions() if not names or e.video in names]
    return chosen[:limit] if limit is not None else chosen


def prediction_dir(out: Path, expr: BenchExpression) -> Path:
    return out / "Annotations" / expr.video / expr.exp_id


def is_complete(out: Path, expr: BenchExpression, frames: list[str]) -> bool:
    folder = prediction_dir(out, expr)
    return folder.is_dir() and all((folder / f"{name}.png").is_file() for name in frames)


# ----------------------------------------------------------------------------------- running


def run_expression(
    bench: Benchmark,
    expr: BenchExpression,
    video: Any,
    config: Any,
    preset: str,
    out: Path,
    trace_dir: Path | None = None,
) -> dict[str, Any]:
    """Run the pipeline for one expression and write its masks; returns the log record."""
    from videoseg.core.state import RunState
    from videoseg.io.outputs import staging_folder
    from videoseg.pipeline.orchestrator import run

    start = time.perf_counter()
    events: Any = run(video, expr.text, config, preset=preset)
    if trace_dir is not None:
        from videoseg.core.trace import tee

        trace = trace_dir / expr.video / f"{expr.exp_id}.jsonl"
        trace.parent.mkdir(parents=True, exist_ok=True)
        events = tee(events, trace)
    state = RunState()
    for event in events:
        state.apply(event)
    frames = bench.video(expr.video).frames
    width, height = video.size
    target = prediction_dir(out, expr)
    with staging_folder(out) as staging:
        for idx, name in enumerate(frames):
            mask = np.zeros((height, width), dtype=np.uint8)
            if idx in state.masks:
                masks = state.masks[idx]
                if masks.shape[0] and masks.shape[1:] == (height, width):
                    mask[masks.any(axis=0)] = 255
            _write_png(staging / f"{name}.png", mask)
        target.mkdir(parents=True, exist_ok=True)
        for name in frames:  # each move is atomic: an interrupted one leaves the folder incomplete
            os.replace(staging / f"{name}.png", target / f"{name}.png")
    errors = [f"[{e.for_stage}] {e.message}" for e in state.errors]
    return {
        "video": expr.video,
        "exp_id": expr.exp_id,
        "preset": preset,
        "status": "error" if state.status != "finished" else "finished",
        "errors": errors,
        "target_frame": state.keyframe,
        "frames_decoded": state.frames_decoded,
        "seconds": round(time.perf_counter() - start, 3),
    }


def _write_png(path: Path, mask: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(mask).save(path)  # 2-D uint8 -> a single-channel ("L") PNG


def read_prediction(out: Path, expr: BenchExpression, frames: list[str], size: tuple[int, int]) -> np.ndarray:
    """(T, H, W) bool of the expression's PNGs, read as the MeViS / ReVOS scripts read them
    (grayscale, non-zero = foreground)."""
    from PIL import Image

    width, height = size
    pred = np.zeros((len(frames), height, width), dtype=bool)
    for i, name in enumerate(frames):
        path = prediction_dir(out, expr) / f"{name}.png"
        with Image.open(path) as image:
            values = np.asarray(image.convert("L"))
        if values.shape != (height, width):
            raise DatasetError(
                f"prediction {path} is {values.shape[1]}x{values.shape[0]}, the frames {width}x{height}"
            )
        pred[i] = values != 0
    return pred


def score_expression(bench: Benchmark, expr: BenchExpression, out: Path, size: tuple[int, int]) -> Any:
    """Score the masks on disk against the ground truth (an ExpressionResult)."""
    from videoseg.eval.metrics import expression_scores

    truth = bench.ground_truth(expr, size)
    pred = read_prediction(out, expr, bench.video(expr.video).frames, size)
    return expression_scores(
        pred,
        truth.labels,
        truth.obj_ids,
        expr_id=expr.key,
        # ReVOS type 2 is scored like any expression and left out of both subsets afterwards.
        expr_type=expr.type if expr.type in ("referring", "reasoning") else "referring",
        void_label=truth.void_label,
    )


# ----------------------------------------------------------------------------------- summary


def summarize(bench: Benchmark, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate the scored rows the benchmark's way (see the module docstring)."""
    from videoseg.eval.metrics import aggregate_expressions

    scored = [r for r in rows if r.get("J") is not None]
    summary: dict[str, Any] = {"scored": len(scored)}
    counted = [r for r in scored if r["type"] in ("referring", "reasoning")]
    if not counted:
        return summary
    agg = aggregate_expressions(
        [{"id": r["key"], "type": r["type"], "J": r["J"], "F": r["F"], "R": r.get("R")} for r in counted]
    )
    summary["overall"] = agg["overall"]
    if bench.layout == "revos":
        summary.update(referring=agg["referring"], reasoning=agg["reasoning"], revos=agg["revos"])
    else:  # R is a ReVOS score; elsewhere the ground truth holds no foreground file to compute it from
        summary["overall"] = {k: v for k, v in agg["overall"].items() if k != "R"}
    sets: dict[str, list[dict[str, Any]]] = {}
    for r in counted:
        if r.get("annotator"):
            sets.setdefault(r["annotator"], []).append(r)
    if sets:
        per_set = {}
        for name, members in sorted(sets.items()):
            j = float(np.mean([m["J"] for m in members]))
            f = float(np.mean([m["F"] for m in members]))
            per_set[name] = {"J": j, "F": f, "J&F": (j + f) / 2, "count": len(members)}
        summary["annotator_sets"] = per_set
        j = float(np.mean([s["J"] for s in per_set.values()]))
        f = float(np.mean([s["F"] for s in per_set.values()]))
        summary["annotator_mean"] = {"J": j, "F": f, "J&F": (j + f) / 2, "sets": len(per_set)}
    return summary


def _format_scores(s: dict[str, Any], with_r: bool) -> str:
    text = f"J&F {s['J&F']:.4f} (J {s['J']:.4f}, F {s['F']:.4f})"
    if with_r and s.get("R") is not None and not math.isnan(s["R"]):
        text += f", R {s['R']:.4f}"
    return text


def print_summary(bench: Benchmark, summary: dict[str, Any], counts: dict[str, int]) -> None:
    print(
        f"{bench.name}: {counts['run']} run, {counts['skipped']} resumed from disk, "
        f"{counts['failed']} failed (scored as empty masks), {counts['unscored']} without ground truth"
    )
    if "overall" not in summary:
        return
    if bench.layout == "revos":
        for key in ("referring", "reasoning"):
            if summary.get(key):
                print(
                    f"  {key:<10} {_format_scores(summary[key], True)} over {summary[key]['count']} expressions"
                )
        if summary.get("revos"):
            print(f"  overall    {_format_scores(summary['revos'], True)} (mean of the two subsets)")
        else:
            print("  overall    needs both referring and reasoning expressions (only one subset was scored)")
    else:
        print(
            f"  overall {_format_scores(summary['overall'], False)} over {summary['overall']['count']} expressions"
        )
    for name, s in (summary.get("annotator_sets") or {}).items():
        print(f"  {name:<19} {_format_scores(s, False)} over {s['count']} expressions")
    if summary.get("annotator_mean"):
        print(f"  mean of the annotator sets {_format_scores(summary['annotator_mean'], False)}")


# -------------------------------------------------------------------------------------- main


def _json_clash(json_path: Path, out: Path) -> str | None:
    """Why ``--json`` would collide with ``--out``: the folder itself, a folder around it, or a file
    the benchmark writes there (its masks, logs, traces or submission)."""
    target = Path(os.path.abspath(json_path))
    folder = Path(os.path.abspath(out))
    if target == folder:
        return f"--json {json_path} is the --out folder; give a file path, e.g. {out / 'scores.json'}"
    if target in folder.parents:
        return f"--json {json_path} is a folder around --out {out}; give a file path"
    if target in {folder / META_FILE, folder / RUN_LOG, folder / SUBMISSION}:
        return f"--json {json_path} is {target.name}, which the benchmark writes itself; choose another name"
    for inner in ("Annotations", "traces"):
        if folder / inner in target.parents:
            return f"--json {json_path} is inside --out's {inner} folder; choose another path"
    return None


def _check_meta(out: Path, meta: dict[str, Any]) -> str | None:
    """Why ``out`` holds another benchmark run (its masks would be mixed with these), or None."""
    path = out / META_FILE
    if not path.is_file():
        return None
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"{path} is unreadable; choose another --out"
    if not isinstance(earlier, dict):
        return f"{path} is not a benchmark record; choose another --out"
    for key in ("layout", "split", "preset"):
        if earlier.get(key) != meta[key]:
            return (
                f"--out {out} holds predictions of another run ({key} {earlier.get(key)!r}, now "
                f"{meta[key]!r}); choose another --out so the two are not mixed"
            )
    return None


def _earlier_runs(out: Path) -> dict[str, dict[str, Any]]:
    """The last log record of each expression from earlier runs into ``out``."""
    records: dict[str, dict[str, Any]] = {}
    try:
        lines = (out / RUN_LOG).read_text(encoding="utf-8").splitlines()
    except OSError:
        return records
    for line in lines:
        try:
            rec = json.loads(line)
            records[f"{rec['video']}/{rec['exp_id']}"] = rec
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a crash
    return records


def _looks_like_ours(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "per_expression" in data


def main(args: argparse.Namespace) -> int:
    """Entry point of ``python -m videoseg benchmark`` (``args`` from :func:`add_parser`)."""
    from videoseg.core.config import PRESETS
    from videoseg.core.config import preset as make_preset
    from videoseg.io.outputs import check_output_dir, check_output_file

    # ---- arguments (exit 2), before any data is read or model loaded
    problems = []
    if args.preset not in PRESETS:
        problems.append(f"unknown preset {args.preset!r}; known: {', '.join(PRESETS)}")
    if not math.isfinite(args.fps) or args.fps <= 0:
        problems.append(f"--fps must be a positive number, got {args.fps}")
    if args.limit is not None and args.limit < 1:
        problems.append(f"--limit must be at least 1, got {args.limit}")
    if not args.root.is_dir():
        problems.append(f"--root {args.root} is not a folder")
    problems.append(check_output_dir(args.out, "--out"))
    if args.json is not None:
        problems.append(
            _json_clash(args.json, args.out)
            or check_output_file(args.json, "--json", keep_unless=_looks_like_ours)
        )
    problems = [p for p in problems if p]
    if not problems and args.json is not None:
        # The summary is written after every run: a folder missing for it is made now, and one
        # that cannot be made is refused now, not after hours of runs.
        try:
            args.json.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            problems.append(f"--json {args.json}: cannot create its folder ({exc.strerror or exc})")
    if problems:
        print(f"error: {problems[0]}", file=sys.stderr)
        return 2
    config = make_preset(args.preset)
    # Every checkpoint the preset needs, named at once before any expression runs (otherwise each
    # run fails on the first missing one and the scores are all zeros).
    refusal = weights.command_line_refusal(args.preset, config, with_options=False)
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return 2
    try:
        bench = load_benchmark(args.layout, args.root, args.split)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        chosen = select(bench, args.videos, args.limit)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not chosen:
        print(f"error: {bench.name} holds no expressions to run", file=sys.stderr)
        return 1
    try:
        bench.check_frames(chosen)
        bench.check_ground_truth(chosen)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    meta = {
        "layout": args.layout,
        "split": bench.split,
        "preset": args.preset,
        "root": str(args.root.resolve()),
    }
    clash = _check_meta(args.out, meta)
    if clash:
        print(f"error: {clash}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    for note in bench.notes:
        print(f"note: {note}")

    earlier = _earlier_runs(args.out)
    rows: list[dict[str, Any]] = []
    counts = {"run": 0, "skipped": 0, "failed": 0, "unscored": 0}
    trace_dir = args.out / "traces" if args.traces else None
    interrupted = False
    opened: dict[str, Any] = {}
    try:
        with (args.out / RUN_LOG).open("a", encoding="utf-8") as log:
            for n, expr in enumerate(chosen, 1):
                rows.append(
                    _one(
                        bench,
                        expr,
                        args,
                        config,
                        earlier,
                        log,
                        counts,
                        trace_dir,
                        f"[{n}/{len(chosen)}]",
                        opened,
                    )
                )
    except KeyboardInterrupt:
        interrupted = True
        print(
            f"\ninterrupted: {len(rows)} of {len(chosen)} expressions are finished on disk; "
            "run the same command again to resume",
            file=sys.stderr,
        )
    except (DatasetError, OSError) as exc:
        print(f"error: {exc} ({len(rows)} finished expressions stay on disk)", file=sys.stderr)
        return 1

    summary = summarize(bench, rows)
    print_summary(bench, summary, counts)
    server_scored = not any(bench.has_ground_truth(e) for e in bench.expressions())
    if bench.layout == "refytvos" and server_scored and not interrupted:
        _write_submission(bench, args.out)
    result = {**meta, "name": bench.name, "per_expression": rows, **summary, "counts": counts}
    if args.json is not None:
        try:
            args.json.write_text(json.dumps(result, indent=1, default=_json_default) + "\n")
        except OSError as exc:
            print(f"error: could not write {args.json}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    if interrupted:
        return 130
    if rows and counts["failed"] == len(rows):
        print(
            f"error: every run failed, so these scores mean nothing (first: {(rows[0]['errors'] or ['?'])[0]})",
            file=sys.stderr,
        )
        return 1
    return 0


def _one(
    bench: Benchmark,
    expr: BenchExpression,
    args: argparse.Namespace,
    config: Any,
    earlier: dict[str, dict[str, Any]],
    log: Any,
    counts: dict[str, int],
    trace_dir: Path | None,
    tag: str,
    opened: dict[str, Any],
) -> dict[str, Any]:
    """Run (or resume) and score one expression; prints its line, returns its row."""
    frames = bench.video(expr.video).frames
    before = earlier.get(expr.key)
    done = is_complete(args.out, expr, frames) and not (before and before.get("status") == "error")
    if expr.video not in opened:  # one video at a time: opening reads every frame header
        opened.clear()
        opened[expr.video] = bench.open_video(expr.video, args.fps)
    video = opened[expr.video]
    if done:
        record = before or {"status": "finished", "errors": []}
        counts["skipped"] += 1
        how = "resumed (predictions already complete)"
    else:
        record = run_expression(bench, expr, video, config, args.preset, args.out, trace_dir)
        log.write(json.dumps(record) + "\n")
        log.flush()
        counts["run"] += 1
        how = f"ran in {record['seconds']:.1f} s"
    failed = record.get("status") == "error"
    counts["failed"] += failed
    row: dict[str, Any] = {
        "key": expr.key,
        "video": expr.video,
        "exp_id": expr.exp_id,
        "type": expr.type,
        "text": expr.text,
        "annotator": expr.annotator,
        "status": record.get("status"),
        "errors": record.get("errors") or [],
        "resumed": done,
        "J": None,
        "F": None,
        "J&F": None,
    }
    if bench.layout == "revos":
        row["R"] = None
    score_text = "no ground truth"
    if bench.has_ground_truth(expr):
        result = score_expression(bench, expr, args.out, video.size)
        row.update(J=result.j_mean, F=result.f_mean, **{"J&F": result.jf_mean})
        if bench.layout == "revos":
            row["R"] = result.r_mean
        score_text = f"J&F {result.jf_mean:.3f} (J {result.j_mean:.3f}, F {result.f_mean:.3f})"
        if bench.layout == "revos":
            score_text += f" R {result.r_mean:.3f}"
    else:
        counts["unscored"] += 1
    print(f"{tag} {expr.key} {expr.type:<9} {score_text}  {how}  {expr.text!r}", flush=True)
    for error in row["errors"]:
        print(f"  error {error} -> scored as empty masks", flush=True)
    return row


def _write_submission(bench: Benchmark, out: Path) -> None:
    """``<out>/submission.zip`` with ``Annotations/<video>/<exp_id>/<frame>.png`` once the whole split
    is predicted (the Ref-YouTube-VOS server scores only a complete split)."""
    missing = [e for e in bench.expressions() if not is_complete(out, e, bench.video(e.video).frames)]
    if missing:
        print(
            f"{len(missing)} of {len(bench.expressions())} expressions of {bench.name} have no predictions yet; "
            f"{SUBMISSION} is written once all have"
        )
        return
    partial = out / f".{SUBMISSION}.partial"
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for expr in bench.expressions():
            for name in bench.video(expr.video).frames:
                path = prediction_dir(out, expr) / f"{name}.png"
                archive.write(path, arcname=f"Annotations/{expr.video}/{expr.exp_id}/{name}.png")
    os.replace(partial, out / SUBMISSION)
    print(f"wrote {out / SUBMISSION} (upload it to the Ref-YouTube-VOS evaluation server)")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


__all__ = [
    "add_parser",
    "main",
    "prediction_dir",
    "read_prediction",
    "score_expression",
    "select",
    "summarize",
]
