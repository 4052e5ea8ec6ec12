"""``python -m videoseg synth``: write a generated shapes-world scenario to a folder (DAVIS layout).

Arguments are checked before anything is generated: the frame size and count are bounded (the
scenario is built in memory), and ``--out`` must be a folder that is empty, new, or holds an earlier
scenario (which is then replaced completely: no annotation PNGs of a longer earlier scenario stay
behind). A folder holding other files named like the outputs (a ``video.mp4`` of the user's) is refused.

With ``--layout mevis|revos|refytvos --seeds A-B --out ROOT`` it writes one scenario per seed as a
split of a released benchmark layout (:func:`videoseg.eval.datasets.write_layout`, the writers the
benchmark tests use), so ``python -m videoseg benchmark`` can be tried and taught without a
download: videos ``shapes_<seed>`` (ReVOS: ``shapes/<seed>``, its names hold a source folder), the
scenario's expressions with their ground truth, and ``ROOT/synth.json`` saying what was made. ROOT
must be new, empty or an earlier such layout, which is replaced whole (written beside, then swapped).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from videoseg.io.outputs import check_output_dir, replace_numbered_pngs, staging_folder
from videoseg.shapes.world.generator import (
    _FRAME_RANGE,
    _MIN_FRAMES,
    DEFAULT_FPS,
    DEFAULT_SIZE,
    FAMILIES,
    LONG_SIZE,
    generate,
)

MAX_SIDE = 4096
MAX_TOTAL_PIXELS = 1 << 29  # frames x width x height: ~1.5 GiB of RGB plus the masks, in memory
OUTPUT_NAMES = ("video.mp4", "Annotations", "expressions.json", "meta.json")
LAYOUT_RECORD = "synth.json"  # ROOT/synth.json: what a --layout run wrote (and that it may replace it)
MAX_SEEDS = 1000
LAYOUTS = ("mevis", "revos", "refytvos")


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
    p.add_argument("--seed", type=int, default=None, help="non-negative integer; same seed, same scenario")
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")
    p.add_argument(
        "--layout",
        choices=LAYOUTS,
        default=None,
        help="write one scenario per --seeds seed as a benchmark split in this released layout (for "
        "`python -m videoseg benchmark`) instead of one scenario in DAVIS layout",
    )
    p.add_argument("--seeds", default=None, help="with --layout: seeds A-B (inclusive), or A,B,C")
    p.add_argument(
        "--family", choices=FAMILIES, default=None, help="scenario family (default: from the seed)"
    )
    p.add_argument("--frames", type=int, default=None, help="number of frames (default: the family's range)")
    p.add_argument("--size", default=None, help="WIDTHxHEIGHT, e.g. 320x240")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    if args.layout is not None or args.seeds is not None:
        if args.layout is None or args.seeds is None:
            print(
                "error: --layout and --seeds go together (a benchmark layout of several seeds)",
                file=sys.stderr,
            )
            return 2
        if args.seed is not None:
            print("error: --seed makes one scenario; with --layout give --seeds A-B", file=sys.stderr)
            return 2
    elif args.seed is None:
        print("error: --seed is required (or --layout with --seeds for a benchmark layout)", file=sys.stderr)
        return 2
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
    if args.layout is not None:
        return _main_layout(args, size)
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


# ------------------------------------------------------------------------ benchmark layouts


def parse_seeds(text: str) -> list[int]:
    """``A-B`` (inclusive), ``A`` or a comma-separated list of those -> the seeds, in order, once each.

    Raises ValueError saying what is wrong."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if match is None:
            raise ValueError(f"--seeds must look like 0-9 or 1,5,7 (non-negative integers), got {text!r}")
        lo = int(match[1])
        hi = int(match[2]) if match[2] is not None else lo
        if hi < lo:
            raise ValueError(f"--seeds {part}: the range ends before it starts")
        if hi - lo + 1 + len(seeds) > MAX_SEEDS:
            raise ValueError(f"--seeds {text}: at most {MAX_SEEDS} scenarios at once")
        seeds += [s for s in range(lo, hi + 1) if s not in seeds]
    return seeds


def family_for(seed: int, frames: int | None) -> str | None:
    """The family of ``seed`` when no --family is given: the generator's own draw, over the families
    that can be ``frames`` long (a fixed length would otherwise fail seeds whose family needs more).
    None (the generator draws) when no length is given."""
    if frames is None:
        return None
    short = [f for f in FAMILIES if f != "long" and _MIN_FRAMES.get(f, 40) <= frames]
    if not short:
        return None  # the generator names the minimum
    # the same draw as generate(seed, None): identical whenever every short family fits
    return short[int(np.random.default_rng([seed, 7]).integers(len(short)))]


def video_name(layout: str, seed: int) -> str:
    """``shapes_<seed>``; ReVOS names hold a source folder, as its real ones do: ``shapes/<seed>``."""
    return f"shapes/{seed:05d}" if layout == "revos" else f"shapes_{seed:05d}"


def _check_layout_out(out: Path) -> str | None:
    problem = check_output_dir(out, "--out")
    if problem is not None or not out.exists():
        return problem
    if any(out.iterdir()) and not (out / LAYOUT_RECORD).is_file():
        return (
            f"--out {out} is not empty and holds no {LAYOUT_RECORD} of an earlier synth layout; "
            "refusing to write a benchmark layout into it (choose an empty or new folder)"
        )
    return None


def _main_layout(args: argparse.Namespace, size: tuple[int, int] | None) -> int:
    """``synth --layout L --seeds A-B --out ROOT``: one scenario per seed, as a split of layout L."""
    from videoseg.eval.datasets import DEFAULT_SPLITS, write_layout

    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problem = _check_layout_out(args.out)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    made: dict[str, dict[str, Any]] = {}
    failure: list[str] = []

    def scenarios() -> Any:  # one at a time: only the current scenario is in memory
        for seed in seeds:
            name = video_name(args.layout, seed)
            try:
                family = args.family or family_for(seed, args.frames)
                scenario = generate(seed, family, frames=args.frames, size=size)
            except (ValueError, RuntimeError) as exc:
                failure.append(f"seed {seed}: {exc}")
                raise _Stop from exc
            made[name] = {"seed": seed, "family": scenario.family, "frames": scenario.num_frames}
            print(
                f"  {name}: {scenario.family}, {scenario.num_frames} frames "
                f"{scenario.size[0]}x{scenario.size[1]}, {len(scenario.expressions)} expressions",
                flush=True,
            )
            yield name, scenario

    out = Path(os.path.abspath(args.out))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        notes = write_layout(args.layout, staging, scenarios())
        record = {
            "layout": args.layout,
            "split": DEFAULT_SPLITS[args.layout],
            "seeds": args.seeds,
            "fps": DEFAULT_FPS,
            "videos": made,
            "notes": notes,
        }
        (staging / LAYOUT_RECORD).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        _swap_into_place(staging, out)
    except _Stop:
        shutil.rmtree(staging, ignore_errors=True)
        print(f"error: {failure[0]}; try other seeds or a larger --size", file=sys.stderr)
        return 1
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        print(f"error: could not write the layout to {out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for note in notes:
        print(f"note: {note}")
    print(f"{args.layout} layout of {len(made)} scenarios at {DEFAULT_FPS:g} fps -> {out}")
    print(
        f"benchmark it: python -m videoseg benchmark --layout {args.layout} --root {out} --preset shapes "
        f"--fps {DEFAULT_FPS:g} --out <results folder>"
    )
    return 0


class _Stop(Exception):
    """A seed could not be generated: stop writing the layout."""


def _swap_into_place(staging: Path, out: Path) -> None:
    """Move the finished layout to ``out``; an earlier layout there (or an empty folder) is replaced
    whole, and is removed only after the new one is in place."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
