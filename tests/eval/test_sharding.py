"""``python -m videoseg benchmark`` sharded over processes (issue 16): the share plan, the launcher
environment, and the proof that N processes give what one process gives.

On a layout written by ``synth --layout`` (the package's writer), the weights-free ``shapes`` preset
is run by one process, by ``torchrun --nproc_per_node 2 -m videoseg benchmark`` and by explicit
``--shard I/N`` processes plus ``--merge``: the merged scores and every prediction PNG must be
identical. A shard killed mid-way is named with its unfinished expressions, and re-running the same
command redoes only those.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from videoseg.cli import benchmark as bench_cli
from videoseg.eval import benchmark as bm
from videoseg.eval.datasets import BenchExpression, load_benchmark, write_layout
from videoseg.shapes import generate

REPO = Path(__file__).resolve().parents[2]
SIZE = (160, 120)
FRAMES = 40
# Two videos of three expressions: under two shards each shard takes one video.
VIDEOS = {
    "shapes_00007": ("distractor_colour", 7),
    "shapes_00011": ("multi_target", 7),
}


def _layout(root: Path) -> Path:
    write_layout(
        "mevis",
        root,
        ((name, generate(seed, family, frames=FRAMES, size=SIZE)) for name, (family, seed) in VIDEOS.items()),
    )
    return root


def bench(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    bench_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["benchmark", *argv])
    return args.func(args)


def _argv(root: Path, out: Path) -> list[str]:
    return ["--layout", "mevis", "--root", str(root), "--preset", "shapes", "--fps", "12", "--out", str(out)]


def _pngs(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes() for p in sorted((out / "Annotations").rglob("*.png"))
    }


_HISTORY = ("seconds", "resumed")  # how an expression came to be on disk, not what it is


def _scores(out: Path) -> dict[str, Any]:
    result = json.loads((out / "results.json").read_text())
    rows = [{k: v for k, v in r.items() if k not in _HISTORY} for r in result["per_expression"]]
    kept = {k: v for k, v in result.items() if k not in ("counts", "shards", "per_expression")}
    return {**kept, "per_expression": rows}


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _layout(tmp_path_factory.mktemp("sharding") / "data")


@pytest.fixture(scope="module")
def reference(layout: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(layout root, the output of one process over it)."""
    root = layout
    out = tmp_path_factory.mktemp("one") / "one"
    assert bench(_argv(root, out)) == 0
    assert len(json.loads((out / "results.json").read_text())["per_expression"]) == 6
    return root, out


# ------------------------------------------------------------------------------------ the plan


def _exprs(spec: dict[str, int]) -> tuple[list[BenchExpression], dict[str, int]]:
    """``{video: number of expressions}`` with frame counts from the video name ``v<frames>_<i>``."""
    exprs = [BenchExpression(v, str(i), f"t{i}", "referring") for v, n in spec.items() for i in range(n)]
    return exprs, {v: int(v[1:].split("_")[0]) for v in spec}


@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_the_plan_covers_each_expression_once_keeps_videos_together_and_balances(count: int) -> None:
    exprs, frames = _exprs({"v100_a": 4, "v30_b": 2, "v500_c": 1, "v60_d": 5, "v200_e": 3, "v45_f": 2})
    plan = bm.plan_shards(exprs, frames, count)
    assert plan == bm.plan_shards(list(exprs), dict(frames), count)  # deterministic
    assert len(plan) == count
    assert sorted(e.key for share in plan for e in share) == sorted(e.key for e in exprs)
    order = {e.key: i for i, e in enumerate(exprs)}
    for share in plan:
        assert [order[e.key] for e in share] == sorted(order[e.key] for e in share)  # input order
        runs = [v for i, v in enumerate(e.video for e in share) if i == 0 or share[i - 1].video != v]
        assert len(runs) == len(set(runs))  # a video's expressions back to back: its frames decoded once
    # dealt longest first to the least loaded: the loads differ by at most the costliest video
    loads = [sum(bm.expression_cost(frames[e.video]) for e in share) for share in plan]
    costliest = max(bm.expression_cost(frames[v]) * n for v, n in Counter(e.video for e in exprs).items())
    assert max(loads) - min(loads) <= costliest


def test_a_video_costlier_than_a_share_is_cut_into_pieces() -> None:
    # one long video with 12 expressions and two short ones: with 4 shards the long one is split
    exprs, frames = _exprs({"v1000_long": 12, "v50_a": 1, "v50_b": 1})
    plan = bm.plan_shards(exprs, frames, 4)
    holding = [sum(e.video == "v1000_long" for e in share) for share in plan]
    assert sum(h > 0 for h in holding) == 4 and max(holding) - min(holding) <= 1
    loads = [sum(bm.expression_cost(frames[e.video]) for e in share) for share in plan]
    assert max(loads) <= 1.5 * min(loads)
    with pytest.raises(ValueError, match="at least 1"):
        bm.plan_shards(exprs, frames, 0)


def test_the_share_comes_from_the_launcher_or_from_shard() -> None:
    assert bm.shard_spec(None, {}) == bm.ShardSpec(0, 1, None, "")
    torchrun = {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "3"}
    assert bm.shard_spec(None, torchrun) == bm.ShardSpec(3, 8, 3, "launcher")
    assert bm.shard_spec(None, {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}).count == 1
    assert bm.shard_spec("2/5", {}) == bm.ShardSpec(2, 5, None, "--shard")
    assert bm.shard_spec(" 1 / 2 ", {"LOCAL_RANK": "1"}) == bm.ShardSpec(1, 2, 1, "--shard")
    for arg, env, message in [
        ("5/5", {}, "I must be 0..N-1"),
        ("1-4", {}, "must look like I/N"),
        ("0/0", {}, "I must be 0..N-1"),
        ("0/2", torchrun, "drop --shard"),
        (None, {"WORLD_SIZE": "2"}, "RANK is not"),
        (None, {"WORLD_SIZE": "2", "RANK": "2"}, "must be below WORLD_SIZE"),
        (None, {"WORLD_SIZE": "two", "RANK": "0"}, "WORLD_SIZE='two' is not an integer"),
        (None, {"LOCAL_RANK": "-1"}, "LOCAL_RANK='-1' must be at least 0"),
    ]:
        with pytest.raises(ValueError, match=message):
            bm.shard_spec(arg, env)


def test_each_process_takes_the_gpu_of_its_local_rank() -> None:
    assert bm.shard_device("auto", 3, 8) == ("cuda:3", None)
    assert bm.shard_device("cuda", 1, 2) == ("cuda:1", None)
    # a scheduler that shows each process only its own GPU
    assert bm.shard_device("auto", 5, 1) == ("cuda:0", None)
    device, note = bm.shard_device("auto", 5, 4)
    assert device == "cuda:1" and "sharing cuda:1" in (note or "")
    assert bm.shard_device("cpu", 1, 8) == (None, None)  # an explicit device stays
    assert bm.shard_device("cuda:2", 1, 8) == (None, None)
    assert bm.shard_device("auto", 1, 0) == (None, None)  # no GPU: the configuration decides
    assert bm.shard_device("auto", None, 8) == (None, None)  # not launched: as before


# ------------------------------------------------------------------------ shards without a launcher


@pytest.mark.slow
def test_explicit_shards_and_merge_equal_one_process(
    reference: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, one = reference
    out = tmp_path / "sharded"
    bench_ = load_benchmark("mevis", root)
    plan = bm.plan_shards(bm.select(bench_), {v.name: len(v.frames) for v in bench_.videos}, 2)
    # shard 0 alone: it runs its share, waits for shard 1, which never comes, and names it
    assert bench([*_argv(root, out), "--shard", "0/2", "--wait-timeout", "0.5"]) == 1
    err = capsys.readouterr().err
    assert "shard 1 of 2 has shown no sign of life" in err
    for expr in plan[1]:
        assert expr.key in err
    partial = json.loads((out / "results.json").read_text())
    assert partial["complete"] is False and partial["missing"] == [e.key for e in plan[1]]
    # shard 1 runs later (a job array): it only runs its share, and says who scores
    assert bench([*_argv(root, out), "--shard", "1/2"]) == 0
    assert "shard 0 scores the set" in capsys.readouterr().out
    assert bench(["--merge", "--out", str(out)]) == 0  # layout, root and preset from benchmark.json
    printed = capsys.readouterr().out
    assert "6 resumed from disk" in printed
    assert _scores(out) == _scores(one)
    assert _pngs(out) == _pngs(one)
    md = (out / "results.md").read_text()
    assert "| shapes | MeViS valid\\_u | overall | 6 |" in md  # Markdown-escaped: valid_u as written


def test_merge_names_the_expressions_no_shard_ran(
    layout: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = layout
    out = tmp_path / "o"
    assert bench([*_argv(root, out), "--limit", "2"]) == 0
    capsys.readouterr()
    assert bench(["--merge", "--out", str(out), "--limit", "4", "--wait-timeout", "1"]) == 1
    err = capsys.readouterr().err
    assert "2 expressions were never run: shapes_00007/2, shapes_00011/0" in err
    assert "run the same command again" in err
    assert bench(["--merge", "--out", str(tmp_path / "nothing")]) == 2
    assert "no benchmark ran into it" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- torchrun


def _torchrun(args: list[str], cwd: Path, script: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc_per_node 2 -m videoseg ...`` (or a wrapper script)."""
    torchrun = Path(sys.executable).with_name("torchrun")
    launcher = [str(torchrun)] if torchrun.exists() else [sys.executable, "-m", "torch.distributed.run"]
    target = [str(script)] if script else ["-m", "videoseg"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "GRADIO_ANALYTICS_ENABLED": "False"}
    return subprocess.run(
        [*launcher, "--standalone", "--nproc_per_node", "2", *target, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_torchrun_two_processes_equal_one_process(reference: tuple[Path, Path], tmp_path: Path) -> None:
    root, one = reference
    out = tmp_path / "torchrun"
    report = tmp_path / "scores.json"
    done = _torchrun(["benchmark", *_argv(root, out), "--json", str(report)], REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = done.stdout + done.stderr
    assert "shard 0 of 2 (launcher): 3 of 6 expressions" in text
    assert "shard 1 of 2 (launcher): 3 of 6 expressions" in text
    assert "6 run, 0 resumed from disk" in text  # counts cover both shards
    assert _scores(out) == _scores(one)
    assert _pngs(out) == _pngs(one)
    assert json.loads(report.read_text()) == json.loads((out / "results.json").read_text())
    logs = sorted(p.name for p in out.glob("benchmark_runs*.jsonl"))
    assert logs == ["benchmark_runs.0-of-2.jsonl", "benchmark_runs.1-of-2.jsonl"]  # no shared log file


KILLER = """
import os, signal, sys

from videoseg.eval import benchmark as bm

real = bm.run_expression
calls = []


def dying(*args, **kwargs):
    # rank 1 is killed (no clean-up, no marker) as it starts its second expression
    if os.environ.get("RANK") == "1" and len(calls) == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    calls.append(1)
    return real(*args, **kwargs)


bm.run_expression = dying
from videoseg.cli.main import main

sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_killed_shard_is_named_and_a_rerun_redoes_only_what_is_missing(
    reference: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, one = reference
    out = tmp_path / "killed"
    script = tmp_path / "killer.py"
    script.write_text(textwrap.dedent(KILLER))
    bench_ = load_benchmark("mevis", root)
    plan = bm.plan_shards(bm.select(bench_), {v.name: len(v.frames) for v in bench_.videos}, 2)
    first = _torchrun(["benchmark", *_argv(root, out)], REPO, script)
    assert first.returncode != 0  # torchrun stops the launch when a worker dies
    # what the kill left: shard 1's first expression is on disk, its other two are not
    assert bench(["--merge", "--out", str(out), "--wait-timeout", "1"]) == 1
    err = capsys.readouterr().err
    assert "shard 1 of 2 ended without a marker (killed?)" in err
    assert f"its expressions without predictions (2): {plan[1][1].key}, {plan[1][2].key}" in err
    second = _torchrun(["benchmark", *_argv(root, out)], REPO)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    text = second.stdout
    assert f"[shard 1 of 2] [1/3] {plan[1][0].key} resumed" in text
    for expr in plan[1][1:]:
        assert f"{expr.key} referring ran in" in text
    assert _scores(out) == _scores(one)
    assert _pngs(out) == _pngs(one)


def test_a_shard_that_failed_is_named_at_once_with_its_reason(layout: Path, tmp_path: Path) -> None:
    bench_ = load_benchmark("mevis", layout)
    chosen = bm.select(bench_)
    plan = bm.plan_shards(chosen, {v.name: len(v.frames) for v in bench_.videos}, 2)
    out = tmp_path / "out"
    spec1 = bm.ShardSpec(1, 2)
    # a marker of an earlier launch does not count: shard 1 has work left, so the wait goes on
    bm.write_marker(out, spec1, "failed", [e.key for e in plan[1]], error="old", ran=[])
    os.utime(bm.marker_path(out, spec1.label), (1.0, 1.0))
    slept: list[float] = []
    problems, _ = bm.wait_for_shards(
        bench_, plan, out, bm.ShardSpec(0, 2), started=1000.0, timeout=5.0, now=iter([1000.0, 1010.0]).__next__,
        sleep=slept.append,
    )  # fmt: skip
    assert slept == [] and len(problems) == 1 and "no sign of life for 5 s" in problems[0]
    # this launch's failed marker: named at once, with its reason and unfinished expressions
    bm.write_marker(out, spec1, "failed", [e.key for e in plan[1]], error="CUDA out of memory", ran=[])
    started = (bm.marker_path(out, spec1.label).stat().st_mtime) - 1
    problems, ran = bm.wait_for_shards(
        bench_, plan, out, bm.ShardSpec(0, 2), started=started, sleep=slept.append
    )
    assert slept == [] and ran == []
    assert problems == [
        f"shard 1 of 2 failed on {json.loads(bm.marker_path(out, spec1.label).read_text())['host']}: CUDA out of "
        f"memory; its unfinished expressions (3): {', '.join(e.key for e in plan[1])}"
    ]
