"""``python -m videoseg synth``: write a generated shapes-world scenario to a folder (DAVIS layout)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from videoseg.shapes.generator import FAMILIES, generate


def add_parser(subparsers: Any) -> None:
    """Register ``synth`` on the ``python -m videoseg`` subcommand parser."""
    p = subparsers.add_parser(
        "synth",
        help="generate a shapes-world video with ground-truth masks and expressions",
        description=(
            "Write DIR/video.mp4, DIR/Annotations/%%05d.png, DIR/expressions.json and DIR/meta.json "
            "for one deterministic scenario."
        ),
    )
    p.add_argument("--seed", type=int, required=True, help="non-negative integer; same seed, same scenario")
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")
    p.add_argument(
        "--family", choices=FAMILIES, default=None, help="scenario family (default: from the seed)"
    )
    p.add_argument("--frames", type=int, default=None, help="number of frames (default: the family's range)")
    p.add_argument("--size", default=None, help="WIDTHxHEIGHT, e.g. 320x240")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    size = None
    if args.size:
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
            size = (w, h)
        except ValueError:
            print(f"error: --size must look like 320x240, got {args.size!r}", file=sys.stderr)
            return 2
    try:
        scenario = generate(args.seed, args.family, frames=args.frames, size=size)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = scenario.save(args.out)
    print(
        f"{scenario.family} scenario, seed {args.seed}: {scenario.num_frames} frames "
        f"{scenario.size[0]}x{scenario.size[1]} at {scenario.fps:g} fps -> {out}"
    )
    for e in scenario.expressions:
        print(f"  [{e.id}] ({e.type}) {e.text!r} -> objects {e.obj_ids}")
    return 0
