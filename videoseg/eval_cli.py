"""``python -m videoseg eval``: score predictions against ground truth (J, F, J&F per expression).

Two modes:
- ``--pred DIR --gt DIR``: folders of per-frame PNG masks (DAVIS layout, ``%05d.png``). The prediction
  is foreground wherever its pixel is non-zero; the ground truth of an expression is the union of its
  ``--obj-ids`` (default: every non-zero id), as MeViS / ReVOS score.
- ``--shapes-seeds 100-119``: generate fresh shapes-world scenarios, run a preset on every expression
  and score it (the weights-free benchmark of this repository).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


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
    """'100-103' -> [100, 101, 102, 103]; '3,5' -> [3, 5]; mixed forms allowed."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = (int(v) for v in part.split("-", 1))
            if hi < lo:
                raise ValueError(f"empty seed range {part!r}")
            seeds.extend(range(lo, hi + 1))
        else:
            seeds.append(int(part))
    if not seeds:
        raise ValueError("no seeds given")
    return seeds


def score_folders(pred_dir: Path, gt_dir: Path, obj_ids: list[int] | None = None) -> dict[str, Any]:
    """Per-frame J and F of a predicted mask folder against a ground-truth folder."""
    from videoseg.metrics import expression_scores
    from videoseg.video import read_mask_pngs

    pred = read_mask_pngs(pred_dir)
    gt = read_mask_pngs(gt_dir)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in frames or size")
    # Default: every object is the ground truth. With no object at all, any non-zero id (1) is absent,
    # so the ground truth is empty everywhere, as it should be.
    ids = obj_ids or [int(i) for i in np.unique(gt) if i != 0] or [1]
    score = expression_scores(pred, gt, ids)
    return {
        "frames": len(score.j),
        "J": score.j_mean,
        "F": score.f_mean,
        "J&F": score.jf_mean,
        "per_frame_J": [float(v) for v in score.j],
        "per_frame_F": [float(v) for v in score.f],
    }


def _main(args: argparse.Namespace) -> int:
    try:
        if args.shapes_seeds:
            from videoseg.shapes.evaluate import evaluate

            families = [f.strip() for f in args.families.split(",") if f.strip()] or None
            result = evaluate(
                parse_seeds(args.shapes_seeds), preset=args.preset, families=families, progress=_print_row
            )
            _print_summary(result)
        elif args.pred and args.gt:
            ids = [int(v) for v in args.obj_ids.split(",") if v.strip()] or None
            result = score_folders(args.pred, args.gt, ids)
            print(
                f"frames {result['frames']}  J {result['J']:.4f}  F {result['F']:.4f}  J&F {result['J&F']:.4f}"
            )
        else:
            print("error: give --pred and --gt, or --shapes-seeds", file=sys.stderr)
            return 2
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def _print_row(r: dict[str, Any]) -> None:
    print(f"seed {r['seed']:>6} {r['family']:<19} {r['type']:<9} J&F {r['J&F']:.3f}  {r['text']}", flush=True)


def _print_summary(result: dict[str, Any]) -> None:
    for name, fam in result["per_family"].items():
        print(f"  {name:<19} J&F {fam['J&F']:.3f} over {fam['count']} expressions")
    overall = result["overall"]
    print(
        f"{result['preset']}: mean J&F {overall['J&F']:.4f} (J {overall['J']:.4f}, F {overall['F']:.4f}) "
        f"over {overall['count']} expressions"
    )
