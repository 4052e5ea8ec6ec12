"""``python -m videoseg eval``: score predictions against ground truth (J, F, J&F per expression).

Two modes:
- ``--pred DIR --gt DIR``: folders of per-frame PNG masks (DAVIS layout, ``%05d.png``). The prediction
  is foreground wherever its pixel is non-zero; the ground truth of an expression is the union of its
  ``--obj-ids`` (default: every non-zero id), as MeViS / ReVOS score.
- ``--shapes-seeds 100-119``: generate fresh shapes-world scenarios, run a preset on every expression
  and score it (the weights-free benchmark of this repository).

Exit codes: 0 scored, 1 the data could not be scored (missing folder, mismatched sizes, every run of
the benchmark failed), 2 bad arguments (checked before any work, including the ``--json`` path: an
existing file is only replaced when it is an earlier scores JSON).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

MAX_SEEDS = 100_000  # a typo such as 0-99999999999 must not build a list that fills the memory


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("eval", help="score predicted masks against ground truth (J, F, J&F)")
    p.add_argument("--pred", type=Path, help="folder of predicted %%05d.png masks")
    p.add_argument("--gt", type=Path, help="folder of ground-truth %%05d.png masks (DAVIS palette)")
    p.add_argument("--obj-ids", type=str, default="", help="comma-separated GT object ids of the expression")
    p.add_argument(
        "--shapes-seeds", type=str, default="", help="e.g. 100-119 or 3,5,8: shapes-world benchmark"
    )
    p.add_argument("--preset", default="shapes", help="preset for --shapes-seeds")
    p.add_argument(
        "--families", type=str, default="", help="comma-separated shapes families (default: by seed)"
    )
    p.add_argument("--json", type=Path, default=None, help="also write the scores to this JSON file")
    p.set_defaults(func=_main)


def parse_seeds(text: str) -> list[int]:
    """'100-103' -> [100, 101, 102, 103]; '3,5' -> [3, 5]; mixed forms allowed.

    Raises ValueError naming the bad part (seeds are non-negative integers, at most MAX_SEEDS).
    """
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = (_seed(v, part) for v in part.split("-", 1))
            if hi < lo:
                raise ValueError(f"empty seed range {part!r}")
            if hi - lo + 1 + len(seeds) > MAX_SEEDS:
                raise ValueError(
                    f"seed range {part!r} holds {hi - lo + 1} seeds; at most {MAX_SEEDS} are allowed"
                )
            seeds.extend(range(lo, hi + 1))
        else:
            seeds.append(_seed(part, part))
    if not seeds:
        raise ValueError("no seeds given")
    if len(seeds) > MAX_SEEDS:
        raise ValueError(f"{len(seeds)} seeds given; at most {MAX_SEEDS} are allowed")
    return seeds


def _seed(value: str, part: str) -> int:
    value = value.strip()
    if not value.isdigit():
        raise ValueError(
            f"invalid seed {part!r}: give non-negative integers, ranges like 100-119, separated by commas"
        )
    return int(value)


def parse_obj_ids(text: str) -> list[int] | None:
    """'1,3' -> [1, 3]; '' -> None (every object). Ids are mask values 1..255."""
    ids: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or not 1 <= int(part) <= 255:
            raise ValueError(f"invalid object id {part!r}: --obj-ids takes comma-separated integers 1..255")
        ids.append(int(part))
    return ids or None


def score_folders(pred_dir: Path, gt_dir: Path, obj_ids: list[int] | None = None) -> dict[str, Any]:
    """Per-frame J and F of a predicted mask folder against a ground-truth folder."""
    from videoseg.eval.metrics import expression_scores
    from videoseg.io.video import read_mask_pngs

    pred = _read_masks(pred_dir, "--pred", read_mask_pngs)
    gt = _read_masks(gt_dir, "--gt", read_mask_pngs)
    if pred.shape != gt.shape:
        raise ValueError(
            f"prediction and ground truth differ in frames or size: --pred has {pred.shape[0]} masks of "
            f"{pred.shape[2]}x{pred.shape[1]}, --gt {gt.shape[0]} of {gt.shape[2]}x{gt.shape[1]}"
        )
    # Default: every object is the ground truth. With no object at all, any non-zero id (1) is absent,
    # so the ground truth is empty everywhere, as it should be.
    present = [int(i) for i in np.unique(gt) if i != 0]
    ids = obj_ids or present or [1]
    absent = [i for i in obj_ids or [] if i not in present]
    score = expression_scores(pred, gt, ids)
    return {
        "absent_obj_ids": absent,
        "gt_obj_ids": present,
        "frames": len(score.j),
        "J": score.j_mean,
        "F": score.f_mean,
        "J&F": score.jf_mean,
        "per_frame_J": [float(v) for v in score.j],
        "per_frame_F": [float(v) for v in score.f],
    }


def _read_masks(directory: Path, option: str, read: Any) -> np.ndarray:
    """Read a mask folder; a run or scenario folder given instead names the sub-folder meant."""
    directory = Path(directory)
    if directory.is_dir() and not any(directory.glob("*.png")):
        for sub in ("masks", "Annotations"):
            if any((directory / sub).glob("*.png")):
                raise ValueError(f"{option} {directory} holds no PNG masks; did you mean {directory / sub}?")
    return read(directory)


def _main(args: argparse.Namespace) -> int:
    # Arguments first (exit 2), before any scenario is generated or folder read.
    try:
        seeds = parse_seeds(args.shapes_seeds) if args.shapes_seeds else None
        ids = parse_obj_ids(args.obj_ids)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if seeds is None and not (args.pred and args.gt):
        print("error: give --pred and --gt, or --shapes-seeds", file=sys.stderr)
        return 2
    families = [f.strip() for f in args.families.split(",") if f.strip()] or None
    if seeds is not None:
        from videoseg.core.config import PRESETS
        from videoseg.shapes.world.generator import FAMILIES

        if args.preset not in PRESETS:
            print(f"error: unknown preset {args.preset!r}; known: {', '.join(PRESETS)}", file=sys.stderr)
            return 2
        unknown = [f for f in families or [] if f not in FAMILIES]
        if unknown:
            print(f"error: unknown family {unknown[0]!r}; known: {', '.join(FAMILIES)}", file=sys.stderr)
            return 2
    if args.json is not None:
        from videoseg.io.outputs import check_output_file

        problem = check_output_file(args.json, "--json", keep_unless=_looks_like_scores)
        if problem is not None:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    try:
        if seeds is not None:
            from videoseg.eval.shapes import evaluate

            result = evaluate(seeds, preset=args.preset, families=families, progress=_print_row)
            _print_summary(result)
            failed = [r for r in result["per_expression"] if r.get("errors")]
            if failed and len(failed) == len(result["per_expression"]):
                print(
                    f"error: every run failed, so these scores mean nothing (first: {failed[0]['errors'][0]})",
                    file=sys.stderr,
                )
                return 1
            if failed:
                print(
                    f"warning: {len(failed)} of {len(result['per_expression'])} runs ended in an error "
                    "and were scored as empty masks",
                    file=sys.stderr,
                )
        else:
            result = score_folders(args.pred, args.gt, ids)
            for absent in result["absent_obj_ids"]:
                print(
                    f"warning: object id {absent} appears in no ground-truth frame "
                    f"(ids present: {', '.join(map(str, result['gt_obj_ids'])) or 'none'})",
                    file=sys.stderr,
                )
            print(
                f"frames {result['frames']}  J {result['J']:.4f}  F {result['F']:.4f}  J&F {result['J&F']:.4f}"
            )
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        try:
            args.json.write_text(json.dumps(result, indent=2))
        except OSError as exc:
            print(f"error: could not write {args.json}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    return 0


def _looks_like_scores(path: Path) -> bool:
    """Whether a file is an earlier scores JSON of this command (which --json may replace)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and ("J&F" in data or "overall" in data)


def _print_row(r: dict[str, Any]) -> None:
    print(f"seed {r['seed']:>6} {r['family']:<19} {r['type']:<9} J&F {r['J&F']:.3f}  {r['text']}", flush=True)
    for error in r.get("errors") or []:
        print(f"  error: {error}", flush=True)


def _print_summary(result: dict[str, Any]) -> None:
    for name, fam in result["per_family"].items():
        print(f"  {name:<19} J&F {fam['J&F']:.3f} over {fam['count']} expressions")
    overall = result["overall"]
    print(
        f"{result['preset']}: mean J&F {overall['J&F']:.4f} (J {overall['J']:.4f}, F {overall['F']:.4f}) "
        f"over {overall['count']} expressions"
    )
