"""Expressions per second of ``python -m videoseg benchmark`` with 1 and N processes (issue 16).

Writes a shapes-world MeViS-layout split (``synth --layout``'s writer), then runs the weights-free
``shapes`` preset over it with one process and under ``torchrun --standalone --nproc_per_node N``,
each timed from the command's start to its exit (process start, imports and the final scoring
included: what a user waits for) and over the running of the expressions alone (from the shards'
logs), and checks that every run wrote the same PNGs and scores.

    python bench/bench_sharding.py                    # seeds 1-6, 1 and 2 processes
    python bench/bench_sharding.py --seeds 1-16 --procs 1,2,4

On a GPU node the same comparison with ``--preset paper`` needs the weights; the speed-up there is
close to N because each process does the same GPU-bound work on its own GPU. On a CPU the processes
share the cores, so the figure mostly shows the overhead of the launch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from videoseg.cli.synth import family_for, parse_seeds, video_name  # noqa: E402
from videoseg.eval.datasets import write_layout  # noqa: E402
from videoseg.shapes import generate  # noqa: E402


def _command(procs: int, args: list[str]) -> list[str]:
    if procs == 1:
        return [sys.executable, "-m", "videoseg", *args]
    torchrun = Path(sys.executable).with_name("torchrun")
    launcher = [str(torchrun)] if torchrun.exists() else [sys.executable, "-m", "torch.distributed.run"]
    return [*launcher, "--standalone", "--nproc_per_node", str(procs), "-m", "videoseg", *args]


def _pngs(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes() for p in sorted((out / "Annotations").rglob("*.png"))
    }


def _scores(out: Path) -> list[tuple[str, float | None]]:
    rows = json.loads((out / "results.json").read_text())["per_expression"]
    return [(r["key"], r["J&F"]) for r in rows]


def _run_span(out: Path) -> float:
    """Seconds from the first expression's start to the last one's end over every shard's log
    (without process start, imports and scoring)."""
    starts, ends = [], []
    for log in out.glob("benchmark_runs*.jsonl"):
        for line in log.read_text().splitlines():
            rec = json.loads(line)
            ends.append(rec["time"])
            starts.append(rec["time"] - rec["seconds"])
    return max(ends) - min(starts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1-6", help="synth seeds (one video of ~3 expressions each)")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", default="160x120")
    parser.add_argument("--procs", default="1,2", help="process counts to compare")
    parser.add_argument("--preset", default="shapes")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    counts = [int(p) for p in args.procs.split(",")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory(prefix="bench-sharding-") as tmp:
        root = Path(tmp) / "data"
        seeds = parse_seeds(args.seeds)
        write_layout(
            "mevis",
            root,
            (
                (
                    video_name("mevis", s),
                    generate(s, family_for(s, args.frames), frames=args.frames, size=size),
                )
                for s in seeds
            ),
        )
        print(
            f"{len(seeds)} videos of {args.frames} frames {args.size}, preset {args.preset}, {os.cpu_count()} CPUs"
        )
        print(
            f"{'processes':>9} {'expressions':>11} {'wall s':>8} {'expr/s':>7} {'speed-up':>8} "
            f"{'running s':>9} {'expr/s':>7}  same as 1 process"
        )
        first = None
        base_rate = None
        for procs in counts:
            out = Path(tmp) / f"out-{procs}"
            bench_args = ["benchmark", "--layout", "mevis", "--root", str(root), "--preset", args.preset]
            bench_args += ["--fps", "12", "--out", str(out)]
            start = time.perf_counter()
            done = subprocess.run(
                _command(procs, bench_args), env=env, cwd=REPO, capture_output=True, text=True
            )
            wall = time.perf_counter() - start
            if done.returncode != 0:
                print(
                    f"{procs} processes failed (exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
                )
                return 1
            n = len(_scores(out))
            rate = n / wall
            base_rate = base_rate or rate
            same = "-"
            if first is None:
                first = (_pngs(out), _scores(out))
            else:
                same = "yes" if (_pngs(out), _scores(out)) == first else "NO"
            span = _run_span(out)
            print(
                f"{procs:>9} {n:>11} {wall:>8.1f} {rate:>7.2f} {rate / base_rate:>7.2f}x "
                f"{span:>9.1f} {n / span:>7.2f}  {same}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
