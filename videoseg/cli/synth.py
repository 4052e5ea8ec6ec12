"""``python -m videoseg synth``: write a generated shapes-world scenario to a folder (DAVIS layout).

Arguments are checked before anything is generated: the frame size and count are bounded (the
scenario is built in memory), and ``--out`` must be a folder that is empty, new, or holds an earlier
scenario (which is then replaced completely: no annotation PNGs of a longer earlier scenario stay
behind). A folder holding other files named like the outputs (a ``video.mp4`` of the user's) is refused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from videoseg.io.outputs import check_output_dir, replace_numbered_pngs, staging_folder
from videoseg.shapes.world.generator import _FRAME_RANGE, DEFAULT_SIZE, FAMILIES, LONG_SIZE, generate

MAX_SIDE = 4096
MAX_TOTAL_PIXELS = 1 << 29  # frames x width x height: ~1.5 GiB of RGB plus the masks, in memory
OUTPUT_NAMES = ("video.mp4", "Annotations", "expressions.json", "meta.json")


def add_parser(subparsers: Any) -> None:
    """Register ``synth`` on the ``python -m videoseg`` subcommand parser."""
    p = subparsers.add_parser(
        "synth",
        help="generate a shapes-world video with ground-truth masks and expressions",
        description=(
            # argparse %-formats argument help, not the description: a single % is printed as is
            "Write DIR/video.mp4, DIR/Annotations/%05d.png, DIR/expressions.json and DIR/meta.json "
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
        if max(size) > MAX_SIDE:
            print(f"error: --size {w}x{h}: each side must be at most {MAX_SIDE}", file=sys.stderr)
            return 2
    # Bound the memory before generating: the scenario is built whole (frames and masks).
    family = args.family
    width, height = size or (LONG_SIZE if family == "long" else DEFAULT_SIZE)
    frames = args.frames
    if frames is None:  # the most the family (or any random, non-long family) may draw
        frames = max(
            hi for f, (_, hi) in _FRAME_RANGE.items() if f == family or (family is None and f != "long")
        )
    pixels = frames * width * height
    if pixels > MAX_TOTAL_PIXELS:
        print(
            f"error: {frames} frames of {width}x{height} are too large to build in memory "
            f"({pixels / 1e9:.1f} G pixels; the limit is {MAX_TOTAL_PIXELS / 1e9:.2f} G): "
            "use fewer --frames or a smaller --size",
            file=sys.stderr,
        )
        return 2
    problem = _check_out(args.out)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        scenario = generate(args.seed, args.family, frames=args.frames, size=size)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # no scenario of the family fits these settings
        # Clip length does not matter (movers slow down in long clips); crowding in small frames does.
        print(f"error: {exc}; try another seed or a larger --size", file=sys.stderr)
        return 1
    try:
        out, replaced = _save(scenario, args.out)
    except OSError as exc:
        print(f"error: could not write the scenario to {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if replaced:
        print(f"note: replaced the earlier scenario in {out}", file=sys.stderr)
    print(
        f"{scenario.family} scenario, seed {args.seed}: {scenario.num_frames} frames "
        f"{scenario.size[0]}x{scenario.size[1]} at {scenario.fps:g} fps -> {out}"
    )
    for e in scenario.expressions:
        print(f"  [{e.id}] ({e.type}) {e.text!r} -> objects {e.obj_ids}")
    return 0


def _check_out(out: Path) -> str | None:
    """Why ``--out`` may not receive a scenario (a file, unwritable, or holding files not ours)."""
    problem = check_output_dir(out, "--out")
    if problem is not None or not out.exists():
        return problem
    present = [name for name in OUTPUT_NAMES if (out / name).exists()]
    if present and not _is_earlier_scenario(out):
        return (
            f"--out {out} already holds {', '.join(present)} but is not a folder written by synth "
            "(no meta.json of a scenario); refusing to overwrite (choose an empty or new folder)"
        )
    return None


def _is_earlier_scenario(out: Path) -> bool:
    try:
        meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and "seed" in meta and "family" in meta


def _save(scenario: Any, out: Path) -> tuple[Path, bool]:
    """Write the scenario to a staging folder in ``out``, then move it into place.

    A failed write leaves an earlier scenario whole; a successful one replaces it completely (its
    annotation PNGs are removed first: a shorter new scenario would otherwise keep stale ones).
    Returns the folder and whether an earlier scenario was replaced.
    """
    out = Path(out)
    with staging_folder(out) as staging:
        scenario.save(staging)
        replaced = _is_earlier_scenario(out)
        replace_numbered_pngs(staging / "Annotations", out / "Annotations")
        for name in ("video.mp4", "expressions.json", "meta.json"):
            os.replace(staging / name, out / name)
    return out, replaced
