"""What a benchmark run leaves for a person (issue 16, items 2, 4 and 6): the result folder's
``results.md`` / ``results.json`` / ``results.html``, the Inspect tab opening that result, the
``synth --layout`` command that makes a small benchmark anyone can run, and the per-video frame cache.
"""

from __future__ import annotations

import argparse
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from tests.support.tiny_models import (  # pytest fixtures: tiny checkpoints built offline
    tiny_qwen_dir,  # noqa: F401
    tiny_sam2_video_dir,  # noqa: F401
    torch_single_thread,  # noqa: F401
)
from videoseg.cli import benchmark as bench_cli
from videoseg.cli.main import main as cli_main
from videoseg.eval import benchmark as bm
from videoseg.eval.datasets import FrameFolder, load_benchmark, write_layout
from videoseg.shapes import generate

SIZE = (160, 120)
FRAMES = 40


def bench(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    bench_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["benchmark", *argv])
    return args.func(args)


@pytest.fixture(scope="module")
def revos_result(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ReVOS-layout run (referring + reasoning subsets, R) with traces: its --out folder."""
    base = tmp_path_factory.mktemp("revos")
    root = base / "data"
    write_layout("revos", root, {"SRC/a": generate(7, "distractor_colour", frames=FRAMES, size=SIZE)})
    out = base / "out"
    argv = ["--layout", "revos", "--root", str(root), "--preset", "shapes", "--fps", "12", "--out", str(out)]
    assert bench([*argv, "--traces"]) == 0
    return out


def test_the_result_folder_holds_a_readable_table_json_and_plot(revos_result: Path) -> None:
    result = json.loads((revos_result / bm.RESULTS_JSON).read_text())
    rows = result["per_expression"]
    assert result["complete"] and len(rows) == 3 and {r["type"] for r in rows} == {"referring", "reasoning"}
    md = (revos_result / bm.RESULTS_MD).read_text()
    # one row per subset with J, F, J&F and R (ReVOS), failed runs counted
    for subset in ("referring", "reasoning"):
        s = result[subset]
        line = next(x for x in md.splitlines() if x.startswith(f"| shapes | ReVOS valid | {subset} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[3:] == [str(s["count"]), f"{s['J']:.4f}", f"{s['F']:.4f}", f"{s['J&F']:.4f}",
                             f"{s['R']:.4f}", "0"]  # fmt: skip
    assert f"| overall (mean of the subsets) | 3 | {result['revos']['J']:.4f} |" in md
    # the worst expressions, worst first, each linked to its trace
    worst = min(rows, key=lambda r: (r["J&F"], r["key"]))
    assert f"| 1 | SRC/a/{worst['exp_id']} | {worst['type']} | {worst['J&F']:.4f} |" in md
    assert f"[trace](traces/SRC/a/{worst['exp_id']}.jsonl)" in md
    assert (revos_result / worst["trace"]).is_file()
    # the sorted plot, its worst points linked to their traces (plotly writes "/" as \\u002f)
    html = (revos_result / bm.RESULTS_HTML).read_text().replace("\\u002f", "/")
    assert f'href=\\"traces/SRC/a/{worst["exp_id"]}.jsonl\\"' in html


def test_the_table_counts_failures_per_subset_and_compares_presets() -> None:
    def row(key: str, kind: str, jf: float, status: str = "finished") -> dict[str, Any]:
        return {
            "key": key,
            "type": kind,
            "J": jf,
            "F": jf,
            "J&F": jf,
            "R": 0.5,
            "status": status,
            "text": key,
        }

    failed = {"J": 0.2, "F": 0.2, "J&F": 0.2, "R": 0.5, "count": 2}
    ok = {"J": 0.8, "F": 0.8, "J&F": 0.8, "R": 0.9, "count": 1}
    a = {
        "layout": "revos", "preset": "paper", "name": "ReVOS valid", "complete": True, "counts": {"failed": 1},
        "per_expression": [row("v/0", "referring", 0.0, "error"), row("v/1", "referring", 0.4), row("v/2", "reasoning", 0.8)],
        "referring": failed, "reasoning": ok, "revos": {"J": 0.5, "F": 0.5, "J&F": 0.5, "R": 0.7},
    }  # fmt: skip
    b = {
        "layout": "mevis", "preset": "paper-3b", "name": "MeViS valid_u", "complete": False,
        "missing": ["x/9"], "per_expression": [row("x/0", "referring", 0.6)],
        "overall": {"J": 0.6, "F": 0.6, "J&F": 0.6, "count": 1},
    }  # fmt: skip
    assert [(s["subset"], s["failed"]) for s in bm.subset_rows(a)] == [
        ("referring", 1),
        ("reasoning", 0),
        ("overall (mean of the subsets)", 1),
    ]
    assert bm.subset_rows(b)[0]["R"] is None  # R only where the benchmark defines it
    md = bm.results_markdown([a, b])
    assert "| paper | ReVOS valid | referring | 2 | 0.2000 | 0.2000 | 0.2000 | 0.5000 | 1 |" in md
    assert "| paper-3b | MeViS valid\\_u | overall | 1 | 0.6000 | 0.6000 | 0.6000 | – | 0 |" in md
    assert "| 1 | v/0 (run failed) |" in md and "**incomplete**" in md and "x/9" in md


# ------------------------------------------------------------------------------------ Inspect


@pytest.fixture
def ctx(tmp_path: Path) -> Any:
    from videoseg.ui.common import AppContext
    from videoseg.ui.session import SessionStore, UploadCaps

    return AppContext(store=SessionStore(tmp_path / "store"), caps=UploadCaps(), examples=[])


@pytest.mark.slow  # imports gradio (~10 s on 2 cores)
@pytest.mark.filterwarnings("ignore::UserWarning")  # gr.Warning outside a request
def test_inspect_opens_a_benchmark_result_folder_zip_or_its_json(
    ctx: Any, revos_result: Path, tmp_path: Path
) -> None:
    from videoseg.ui.tabs.inspect import RANK_HEADERS, inspect_run

    archive = tmp_path / "result.zip"
    with zipfile.ZipFile(archive, "w") as z:  # the whole --out folder, as a user zips it
        for path in sorted(revos_result.rglob("*")):
            if path.is_file() and path.name != bm.RESULTS_HTML:
                z.write(path, f"out/{path.relative_to(revos_result).as_posix()}")
    result = json.loads((revos_result / bm.RESULTS_JSON).read_text())
    for upload in (archive, revos_result / bm.RESULTS_JSON):
        values, records = inspect_run(ctx, str(upload))
        status, rows, _, _, fig, gallery = values
        assert status.startswith("### Benchmark result: shapes on ReVOS valid"), status
        assert "| shapes | ReVOS valid | reasoning |" in status and "have a recorded trace" in status
        assert len(rows) == 3 and all(len(r) == len(RANK_HEADERS) for r in rows)
        assert [r[3] for r in rows] == sorted(round(x["J&F"], 3) for x in result["per_expression"])
        assert sorted(p for t in fig.data for p in t.y) == sorted(x["J&F"] for x in result["per_expression"])
        assert records == [] and gallery == []
    not_a_result = tmp_path / "other.json"
    not_a_result.write_text(json.dumps({"per_expression": "no"}))
    values, _ = inspect_run(ctx, str(not_a_result))
    assert "not a benchmark result" in values[0]


def test_the_sorted_plot_shows_expression_texts_as_text() -> None:
    from videoseg.viz.curves import benchmark_jf_figure

    rows = [
        {"key": "v/0", "type": "referring", "J&F": 0.9, "text": "<img src=x onerror=alert(1)>", "trace": "t/0.jsonl"},
        {"key": "v/1", "type": "reasoning", "J&F": 0.1, "text": "b", "status": "error", "trace": "t/1.jsonl"},
        {"key": "v/2", "type": "referring", "J&F": None, "text": "missing"},
    ]  # fmt: skip
    fig = benchmark_jf_figure(rows, worst=1, links=True)
    assert [list(t.x) for t in fig.data] == [[1], [2]]  # worst first; the unscored row left out
    assert fig.data[1].customdata[0][1] == "&lt;img src=x onerror=alert(1)&gt;"
    assert [a.text for a in fig.layout.annotations] == ['<a href="t/1.jsonl">v/1</a>']
    assert list(fig.data[0].marker.symbol) == ["x"]  # the failed run stands out


# ---------------------------------------------------------------------------------- synth --layout


def test_synth_writes_a_benchmark_layout_that_the_readers_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "revos"
    argv = [
        "synth",
        "--layout",
        "revos",
        "--seeds",
        "3-4",
        "--frames",
        "40",
        "--size",
        "160x120",
        "--out",
        str(root),
    ]
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    assert f"--layout revos --root {root} --preset shapes --fps 12" in printed
    bench_ = load_benchmark("revos", root)
    assert [v.name for v in bench_.videos] == ["shapes/00003", "shapes/00004"]
    record = json.loads((root / "synth.json").read_text())
    for seed, video in zip((3, 4), bench_.videos):
        sc = generate(seed, record["videos"][video.name]["family"], frames=40, size=SIZE)
        assert [e.text for e in video.expressions] == [e.text for e in sc.expressions]
        assert [e.type for e in video.expressions] == [e.type for e in sc.expressions]
        for e, truth in zip(video.expressions, sc.expressions):
            gt = bench_.ground_truth(e, SIZE)
            assert np.array_equal(gt.labels == 1, sc.expression_mask(truth))
    # the same command again replaces the layout whole; other seeds leave no trace of the first
    assert cli_main([*argv[:4], "7", *argv[5:]]) == 0
    assert [v.name for v in load_benchmark("revos", root).videos] == ["shapes/00007"]
    assert not list(tmp_path.glob(".revos.*"))  # no staging or old copy left beside it


def test_synth_refytvos_leaves_out_multi_object_expressions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "ytvos"
    argv = ["synth", "--layout", "refytvos", "--seeds", "7", "--family", "multi_target", "--frames", "40",
            "--size", "160x120", "--out", str(root)]  # fmt: skip
    assert cli_main(argv) == 0
    assert "left out 3 multi-object expressions" in capsys.readouterr().out
    assert load_benchmark("refytvos", root).expressions() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layout", "mevis"], "--layout and --seeds go together"),
        (["--seeds", "1-2"], "--layout and --seeds go together"),
        (["--layout", "mevis", "--seeds", "1-2", "--seed", "1"], "with --layout give --seeds"),
        (["--layout", "mevis", "--seeds", "5-2"], "ends before it starts"),
        (["--layout", "mevis", "--seeds", "a-b"], "must look like 0-9"),
        (["--layout", "mevis", "--seeds", "0-5000"], "at most 1000"),
        ([], "--seed is required"),
    ],
)
def test_synth_layout_arguments_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert cli_main(["synth", *args, "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_synth_refuses_a_folder_holding_other_things(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert cli_main(["synth", "--layout", "mevis", "--seeds", "1", "--out", str(tmp_path / "mine")]) == 2
    assert "refusing to write a benchmark layout into it" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


# -------------------------------------------------------------------------------- frame cache


def test_a_video_s_frames_are_decoded_once_for_all_its_expressions(tmp_path: Path) -> None:
    sc = generate(7, "distractor_colour", frames=FRAMES, size=SIZE)
    write_layout("mevis", tmp_path, {"v": sc})
    paths = sorted((tmp_path / "valid_u" / "JPEGImages" / "v").glob("*.jpg"))
    frame_bytes = SIZE[0] * SIZE[1] * 3
    video = FrameFolder(paths, 12.0, cache_bytes=10 * frame_bytes)
    first = [f.copy() for _, f in video.iter_frames()]
    again = [f for _, f in video.iter_frames()]  # a second expression reads every frame again
    assert video.decoded == list(range(FRAMES)) + list(range(10, FRAMES))  # only the first 10 were kept
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    again[0][:] = 0  # a caller writing into its frame does not change what the next one gets
    assert np.array_equal(video.frames([0])[0], first[0])
    video.close()
    video.frames([0])
    assert video.decoded[-1] == 0  # closed: the cache is gone


# ------------------------------------------------------------------ models once per process


@pytest.mark.slow
def test_models_load_once_and_frames_decode_once_across_a_videos_expressions(
    tmp_path: Path,
    tiny_qwen_dir: Path,  # noqa: F811
    tiny_sam2_video_dir: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from videoseg.core.config import PipelineConfig
    from videoseg.eval.datasets import Benchmark
    from videoseg.runtime import loading

    write_layout(
        "mevis", tmp_path / "data", {"v": generate(7, "distractor_colour", frames=FRAMES, size=SIZE)}
    )
    bench_ = load_benchmark("mevis", tmp_path / "data")
    config = PipelineConfig(
        vlm=str(tiny_qwen_dir),
        segmenter="sam2",
        propagator="sam2",
        sam2_model=str(tiny_sam2_video_dir),
        device="cpu",
        num_interval_answers=2,
        num_percent_answers=2,
        frames_per_question=4,
        num_key_frames=2,
        num_reference_frames=2,
        max_new_tokens=8,
    )
    opened: list[FrameFolder] = []
    real_open = Benchmark.open_video

    def spy(self: Benchmark, *args: Any, **kwargs: Any) -> FrameFolder:
        opened.append(real_open(self, *args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(Benchmark, "open_video", spy)
    loading.clear_cache()
    out = tmp_path / "out"
    first, rest = bm.select(bench_)[:1], bm.select(bench_)[1:]
    assert len(rest) == 2
    spec = bm.ShardSpec()
    kwargs = {
        "out": out,
        "config": config,
        "preset": "tiny",
        "fps": 12.0,
        "spec": spec,
        "echo": lambda _: None,
    }
    out.mkdir()
    bm.run_shard(bench_, first, **kwargs)
    loaded = {k: loading._CACHE[k] for k in loading.cached_keys()}
    assert "qwen2.5-vl" in {k[0] for k in loaded}, loaded  # HTFS and the reasoner share one model
    opened.clear()
    bm.run_shard(bench_, rest, **kwargs)
    # the later expressions used the same model objects: nothing was loaded again
    assert loading.cached_keys() == list(loaded) and all(loading._CACHE[k] is v for k, v in loaded.items())
    # one video opened for both expressions, none of its frames decoded twice
    assert len(opened) == 1 and opened[0].decoded and len(set(opened[0].decoded)) == len(opened[0].decoded)
    loading.clear_cache()
