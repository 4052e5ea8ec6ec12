"""``python -m videoseg benchmark``: run a preset over a benchmark split and score it as the benchmark
does (paper: Experiments, Tables 1-3 protocol), in one process or sharded over processes, GPUs and
machines. The work itself is :mod:`videoseg.eval.benchmark`; this module reads the arguments.

One process::

    python -m videoseg benchmark --layout mevis --root data/mevis --preset paper --out runs/mevis

One node of 8 GPUs (each process takes its share and the GPU of its ``LOCAL_RANK``; rank 0 waits for
the others and scores the set once; ``accelerate launch --multi_gpu --num_processes 8 -m videoseg
benchmark ...`` is the same)::

    torchrun --nproc_per_node 8 -m videoseg benchmark --layout mevis --root data/mevis --preset paper --out runs/mevis

A scheduler without a launcher: ``--shard I/N`` (I from 0) per process, ``--no-wait`` when the
shards do not all run at the same time, and ``benchmark --merge --out DIR`` once they are done.

Before any expression runs, the arguments are checked: ``--json`` may not be the ``--out`` folder or
a file the benchmark writes there, and its folder is created (or refused) now, not after the runs;
a preset whose weights are missing while the hub cannot be reached is refused with one line naming
every missing checkpoint (:mod:`videoseg.runtime.weights`), instead of every run failing on them.

Exit codes: 0 done, 1 the data cannot be read, every run failed, or a shard did not finish (named
with its expressions), 2 bad arguments (missing weights included), 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from videoseg.eval import benchmark as bm
from videoseg.eval.datasets import LAYOUTS, DatasetError, load_benchmark
from videoseg.runtime import weights


def add_parser(subparsers: Any) -> None:
    """Register ``benchmark`` on the ``python -m videoseg`` subcommand parser."""
    from videoseg.core.config import describe_presets

    p = subparsers.add_parser(
        "benchmark",
        help="run a preset over a benchmark's validation data and score it like the benchmark",
        description="Run the method over MeViS / ReVOS / Ref-YouTube-VOS (Ref-DAVIS17) data, write the "
        "predictions in the benchmark's layout and score them where ground truth exists. Under torchrun "
        "or accelerate launch each process runs its share of the expressions; rank 0 scores the set.",
        epilog="presets:\n" + describe_presets(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--layout", choices=LAYOUTS, default=None, help="how the data is laid out")
    p.add_argument("--root", type=Path, default=None, help="dataset folder (see the README)")
    p.add_argument(
        "--split",
        default=None,
        help="mevis: valid_u (default) | valid | train; revos: valid; refytvos: valid",
    )
    p.add_argument(
        "--preset",
        default=None,
        help="named configuration, e.g. paper (required: a score must say what produced it; the "
        "shapes-world presets only understand shapes-world clips, e.g. from `synth --layout`)",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder (predictions, logs, results)")
    p.add_argument("--limit", type=int, default=None, help="only the first N expressions")
    p.add_argument("--videos", default=None, help="comma-separated video names to run (default: all)")
    p.add_argument(
        "--fps",
        type=float,
        default=6.0,
        help="frame rate of the frame folders (default 6: Ref-YouTube-VOS keeps every 5th frame of 30 fps)",
    )
    p.add_argument(
        "--traces", action="store_true", help="record every run to <out>/traces/<video>/<exp_id>.jsonl"
    )
    p.add_argument(
        "--json", type=Path, default=None, help="also write every row and the aggregate scores here"
    )
    p.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="run share I of N (I from 0) without a launcher; under torchrun / accelerate launch the "
        "share comes from RANK and WORLD_SIZE",
    )
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="shard 0 too ends after its share instead of waiting for the others and scoring "
        "(then run `benchmark --merge --out DIR`)",
    )
    p.add_argument(
        "--merge",
        action="store_true",
        help="run nothing: wait for running shards, then score what is in --out (layout, root and "
        "preset are read from its benchmark.json)",
    )
    p.add_argument(
        "--wait-timeout",
        type=float,
        default=bm.DEFAULT_WAIT_TIMEOUT_S,
        metavar="S",
        help=f"give up on a shard whose heartbeat is older than S seconds (default {bm.DEFAULT_WAIT_TIMEOUT_S:g})",
    )
    p.add_argument(
        "--frame-cache-mb",
        type=float,
        default=bm.DEFAULT_FRAME_CACHE_MB,
        metavar="MB",
        help="decoded frames of the current video kept for its next expressions "
        f"(default {bm.DEFAULT_FRAME_CACHE_MB}; 0 decodes again for every expression)",
    )
    p.set_defaults(func=main)


def _err(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


def _json_clash(json_path: Path, out: Path) -> str | None:
    """Why ``--json`` would collide with ``--out``: the folder itself, a folder around it, or a file
    the benchmark writes there (its masks, logs, traces, results or submission)."""
    target = Path(os.path.abspath(json_path))
    folder = Path(os.path.abspath(out))
    if target == folder:
        return f"--json {json_path} is the --out folder; give a file path, e.g. {out / 'scores.json'}"
    if target in folder.parents:
        return f"--json {json_path} is a folder around --out {out}; give a file path"
    if target.parent == folder and (
        target.name in bm.WRITTEN_FILES
        or (target.name.startswith("benchmark_runs") and target.suffix == ".jsonl")
    ):
        return f"--json {json_path} is {target.name}, which the benchmark writes itself; choose another name"
    for inner in bm.WRITTEN_FOLDERS:
        if folder / inner in target.parents:
            return f"--json {json_path} is inside --out's {inner} folder; choose another path"
    return None


def _check_meta(out: Path, meta: dict[str, Any]) -> str | None:
    """Why ``out`` holds another benchmark run (its masks would be mixed with these), or None."""
    path = out / bm.META_FILE
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


def _looks_like_ours(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "per_expression" in data


def _check_arguments(args: argparse.Namespace) -> str | None:
    from videoseg.core.config import PRESETS
    from videoseg.io.outputs import check_output_dir, check_output_file

    problems = []
    if not args.merge:
        for option in ("layout", "root", "preset"):
            if getattr(args, option) is None:
                problems.append(
                    f"--{option} is required"
                    + (
                        " (no default method: a score must say what produced it)"
                        if option == "preset"
                        else ""
                    )
                )
    if args.preset is not None and args.preset not in PRESETS:
        problems.append(f"unknown preset {args.preset!r}; known: {', '.join(PRESETS)}")
    if not math.isfinite(args.fps) or args.fps <= 0:
        problems.append(f"--fps must be a positive number, got {args.fps}")
    if args.limit is not None and args.limit < 1:
        problems.append(f"--limit must be at least 1, got {args.limit}")
    if not math.isfinite(args.wait_timeout) or args.wait_timeout <= 0:
        problems.append(f"--wait-timeout must be a positive number of seconds, got {args.wait_timeout}")
    if not math.isfinite(args.frame_cache_mb) or args.frame_cache_mb < 0:
        problems.append(f"--frame-cache-mb must be 0 or more, got {args.frame_cache_mb}")
    if args.root is not None and not args.root.is_dir():
        problems.append(f"--root {args.root} is not a folder")
    if args.merge and args.shard is not None:
        problems.append("--merge runs nothing: it takes no --shard")
    if args.merge and not (args.out / bm.META_FILE).is_file():
        problems.append(f"--merge: {args.out} holds no {bm.META_FILE}: no benchmark ran into it")
    problems.append(check_output_dir(args.out, "--out"))
    if args.json is not None:
        problems.append(
            _json_clash(args.json, args.out)
            or check_output_file(args.json, "--json", keep_unless=_looks_like_ours)
        )
    problems = [p for p in problems if p]
    if not problems and args.json is not None:
        # The summary is written after the runs: a folder missing for it is made now, and one that
        # cannot be made is refused now, not after hours of runs.
        try:
            args.json.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            problems.append(f"--json {args.json}: cannot create its folder ({exc.strerror or exc})")
    return problems[0] if problems else None


def _use_gpu_of_rank(config: Any, spec: bm.ShardSpec) -> Any:
    """The configuration with this process's GPU (``cuda:<LOCAL_RANK>``) when it runs on CUDA."""
    if spec.local_rank is None:
        return config
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    device, note = bm.shard_device(config.device, spec.local_rank, count)
    if device is None:
        return config
    if note:
        print(f"note: {note}", flush=True)
    torch.cuda.set_device(device)  # libraries that say just "cuda" get this GPU too
    return replace(config, device=device)


def main(args: argparse.Namespace) -> int:
    """Entry point of ``python -m videoseg benchmark`` (``args`` from :func:`add_parser`)."""
    from videoseg.core.config import preset as make_preset

    # ---- arguments (exit 2), before any data is read or model loaded
    problem = _check_arguments(args)
    if problem:
        _err(problem)
        return 2
    if args.merge:
        return _merge_only(args)
    try:
        spec = bm.shard_spec(args.shard)
    except ValueError as exc:
        _err(str(exc))
        return 2
    config = make_preset(args.preset)
    # Every checkpoint the preset needs, named at once before any expression runs (otherwise each
    # run fails on the first missing one and the scores are all zeros).
    refusal = weights.command_line_refusal(args.preset, config, with_options=False)
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return 2
    try:
        config = _use_gpu_of_rank(config, spec)
    except (RuntimeError, ValueError) as exc:
        _err(f"cannot use the GPU of LOCAL_RANK {spec.local_rank}: {exc}")
        return 2
    try:
        bench = load_benchmark(args.layout, args.root, args.split)
        chosen = bm.select(bench, args.videos or "", args.limit)
    except DatasetError as exc:
        _err(str(exc))
        return 1
    except ValueError as exc:
        _err(str(exc))
        return 2
    if not chosen:
        _err(f"{bench.name} holds no expressions to run")
        return 1
    plan = bm.plan_shards(chosen, {v.name: len(v.frames) for v in bench.videos}, spec.count)
    mine = plan[spec.index]
    scorer = spec.index == 0 and not args.no_wait
    try:
        # Shard 0 checks everything (it scores the set); the others only the frames they read.
        bench.check_frames(chosen if scorer else mine)
        if scorer:
            bench.check_ground_truth(chosen)
    except DatasetError as exc:
        _err(str(exc))
        return 1
    meta = {
        "layout": args.layout,
        "split": bench.split,
        "preset": args.preset,
        "root": str(args.root.resolve()),
    }
    clash = _check_meta(args.out, meta)
    if clash:
        _err(clash)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    bm.write_meta(args.out, {**meta, "selection": {"videos": args.videos, "limit": args.limit}})
    if scorer:
        for note in bench.notes:
            print(f"note: {note}")
    if spec.sharded:
        print(
            f"{spec} ({spec.source}): {len(mine)} of {len(chosen)} expressions, "
            f"{len({e.video for e in mine})} videos, on {config.device}",
            flush=True,
        )
    heartbeat = bm.Heartbeat(args.out, spec, [e.key for e in mine]) if spec.sharded else None
    if spec.sharded:
        bm.marker_path(args.out, spec.label).unlink(missing_ok=True)  # this launch writes a new one
    outcome = bm.ShardOutcome()
    try:
        bm.run_shard(
            bench,
            mine,
            out=args.out,
            config=config,
            preset=args.preset,
            fps=args.fps,
            spec=spec,
            trace_dir=args.out / "traces" if args.traces else None,
            frame_cache_mb=args.frame_cache_mb,
            echo=lambda line: print(line, flush=True),
            outcome=outcome,
        )
    except KeyboardInterrupt:
        done = len(outcome.ran) + len(outcome.resumed)
        _err(
            f"interrupted: {done} of {len(mine)} expressions are finished on disk; "
            "run the same command again to resume"
        )
        if spec.sharded:
            _end_shard(args.out, spec, mine, outcome, heartbeat, "failed", "interrupted (Ctrl-C)")
            return 130
        _score(args, bench, chosen, meta, outcome, spec)
        return 130
    except (DatasetError, OSError) as exc:
        done = len(outcome.ran) + len(outcome.resumed)
        _err(f"{exc} ({done} finished expressions stay on disk; run the same command again to resume)")
        if spec.sharded:
            _end_shard(args.out, spec, mine, outcome, heartbeat, "failed", str(exc))
        return 1
    except BaseException as exc:  # a bug or a kill: the others learn it, then the error shows as is
        if spec.sharded:
            _end_shard(args.out, spec, mine, outcome, heartbeat, "failed", f"{type(exc).__name__}: {exc}")
        raise
    if spec.sharded:
        _end_shard(args.out, spec, mine, outcome, heartbeat, "done", None)
    if not scorer:
        print(
            f"{spec}: done ({len(outcome.ran)} run, {len(outcome.resumed)} resumed, "
            f"{len(outcome.failed)} failed); "
            + ("shard 0 scores the set" if spec.index else f"score with: benchmark --merge --out {args.out}"),
            flush=True,
        )
        return 0
    problems: list[str] = []
    if spec.sharded:
        assert heartbeat is not None  # a sharded run always has one
        print(f"{spec}: done; waiting for the other shards to finish, then scoring the set", flush=True)
        problems, others_ran = bm.wait_for_shards(
            bench,
            plan,
            args.out,
            spec,
            heartbeat.started - bm.LAUNCH_SLACK_S,
            timeout=args.wait_timeout,
            echo=lambda line: print(line, flush=True),
        )
        outcome.ran += others_ran  # the counts of the merged result cover every shard of this launch
    return _score(args, bench, chosen, meta, outcome, spec, problems)


def _end_shard(
    out: Path, spec: bm.ShardSpec, mine: list[Any], outcome: bm.ShardOutcome, heartbeat: Any, status: str,
    error: str | None,
) -> None:  # fmt: skip
    finished = set(outcome.ran) | set(outcome.resumed)
    try:
        bm.write_marker(
            out,
            spec,
            status,
            [e.key for e in mine if e.key not in finished],
            error=error,
            ran=outcome.ran,
            resumed=len(outcome.resumed),
            failed=outcome.failed,
        )
    except OSError as exc:
        _err(f"could not write the end marker of {spec}: {exc.strerror or exc}")
    if heartbeat is not None:
        heartbeat.stop()


def _score(
    args: argparse.Namespace,
    bench: Any,
    chosen: list[Any],
    meta: dict[str, Any],
    outcome: bm.ShardOutcome,
    spec: bm.ShardSpec,
    problems: list[str] | None = None,
) -> int:
    """Score the set from disk, print and write the results; the exit code."""
    echo = lambda line: print(line, flush=True)  # noqa: E731
    try:
        result = bm.merge(bench, chosen, args.out, meta, ran=outcome.ran, shards=spec.count, echo=echo)
        bm.print_summary(bench, result, echo)
        server_scored = not any(bench.has_ground_truth(e) for e in bench.expressions())
        if bench.layout == "refytvos" and server_scored and result["complete"]:
            bm.write_submission(bench, args.out, echo)
        written = bm.write_results(args.out, result, args.json)
    except (DatasetError, OSError) as exc:
        _err(f"could not score the predictions: {exc}")
        return 1
    print(f"results: {', '.join(str(p) for p in written)}", flush=True)
    if not problems and not result["complete"]:
        problems = bm.missing_by_shard(args.out, result["missing"])
    return _verdict(result, problems or [])


def _verdict(result: dict[str, Any], problems: list[str]) -> int:
    for problem in problems:
        _err(problem)
    if problems or not result["complete"]:
        if result["missing"]:
            _err(
                f"{len(result['missing'])} expressions have no predictions: the scores cover the others only"
            )
        _err("run the same command again: only what is missing runs again")
        return 1
    rows = [r for r in result["per_expression"] if r["status"] != "missing"]
    if rows and all(r["status"] == "error" for r in rows):
        first = next((r["errors"][0] for r in rows if r["errors"]), "?")
        _err(f"every run failed, so these scores mean nothing (first: {first})")
        return 1
    return 0


def _merge_only(args: argparse.Namespace) -> int:
    """``--merge``: wait for shards still working on missing expressions, then score --out."""
    meta = json.loads((args.out / bm.META_FILE).read_text(encoding="utf-8"))
    given = {"layout": args.layout, "preset": args.preset, "split": args.split}
    for key, value in given.items():
        if value is not None and value != meta.get(key):
            _err(
                f"--merge: --{key} {value} differs from {meta.get(key)!r} recorded in {args.out / bm.META_FILE}"
            )
            return 2
    root = args.root or Path(str(meta.get("root", "")))
    selection = meta.get("selection") or {}
    videos = args.videos if args.videos is not None else selection.get("videos") or ""
    limit = args.limit if args.limit is not None else selection.get("limit")
    try:
        bench = load_benchmark(str(meta.get("layout")), root, meta.get("split"))
        chosen = bm.select(bench, videos, limit)
        bench.check_ground_truth(chosen)
    except (DatasetError, ValueError) as exc:
        _err(str(exc))
        return 1
    bm.wait_for_live_shards(
        bench, chosen, args.out, timeout=args.wait_timeout, echo=lambda line: print(line, flush=True)
    )
    meta = {k: meta.get(k) for k in ("layout", "split", "preset", "root")}
    shards = bm.shard_count(args.out)
    return _score(args, bench, chosen, meta, bm.ShardOutcome(), bm.ShardSpec(0, shards))


__all__ = ["add_parser", "main"]
