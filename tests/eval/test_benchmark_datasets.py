"""``python -m videoseg benchmark`` over tiny datasets in the released layouts (MeViS, ReVOS,
Ref-YouTube-VOS / Ref-DAVIS17), built from the shapes world, run with the weights-free ``shapes`` preset.

Every score is checked against :func:`videoseg.eval.metrics.expression_scores` computed here directly from
the PNGs the command wrote and the shapes world's own ground truth (not from the dataset files), so
a reader that decoded the wrong RLE, frame or object would fail.
"""

from __future__ import annotations

import argparse
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from videoseg.cli import benchmark as bench_cli
from videoseg.core.state import RunState
from videoseg.core.trace import read_trace
from videoseg.eval import benchmark as bm
from videoseg.eval.datasets import DatasetError, FrameFolder, frame_names, load_benchmark, write_layout
from videoseg.eval.metrics import expression_scores, robustness
from videoseg.pipeline import orchestrator as pipeline
from videoseg.runtime import loading as models
from videoseg.runtime import weights
from videoseg.shapes import generate

SIZE = (160, 120)  # the smallest frames the shapes world makes: fast runs
FRAMES = 40


def _scenarios() -> dict[str, Any]:
    # distractor_colour: two referring + one reasoning expression; multi_target: two-object targets.
    return {
        "vid_a": generate(7, "distractor_colour", frames=FRAMES, size=SIZE),
        "vid_b": generate(7, "multi_target", frames=FRAMES, size=SIZE),
    }


SCENARIOS = _scenarios()


def _frame_names(n: int) -> list[str]:
    return frame_names(n)


def _write_frames(folder: Path, frames: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in zip(_frame_names(len(frames)), frames):
        Image.fromarray(frame).save(folder / f"{name}.jpg", quality=95)


# The layouts are written by the package's own writers (the ones `python -m videoseg synth --layout`
# uses); the tests read them back through the readers and score against the scenarios directly.


def make_mevis(root: Path) -> Path:
    write_layout("mevis", root, SCENARIOS)
    return root


REVOS_NAMES = {"vid_a": "SRC/a", "vid_b": "SRC/b"}  # ReVOS names hold a source folder: nested paths


def make_revos(root: Path) -> Path:
    write_layout("revos", root, {REVOS_NAMES[k]: sc for k, sc in SCENARIOS.items()})
    return root


def make_refdavis(root: Path, *, annotations: bool = True) -> Path:
    """ReferFormer's Ref-DAVIS17 conversion: four expressions per object (one per annotator set);
    vid_a's single-object expressions name objects 1 and 2, so ids 0-3 are object 1, 4-7 object 2."""
    assert sorted({e.obj_ids[0] for e in SCENARIOS["vid_a"].expressions}) == [1, 2]
    write_layout("refytvos", root, {"vid_a": SCENARIOS["vid_a"]}, ground_truth=annotations, davis=True)
    return root


def bench(argv: list[str]) -> int:
    """The command with ``argv``; the weights-free ``shapes`` preset unless one is given."""
    parser = argparse.ArgumentParser()
    bench_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["benchmark", *argv, *([] if "--preset" in argv else ["--preset", "shapes"])])
    return args.func(args)


def _pred(out: Path, video: str, exp_id: str, n: int = FRAMES) -> np.ndarray:
    folder = out / "Annotations" / video / exp_id
    return np.stack([np.asarray(Image.open(folder / f"{name}.png")) for name in _frame_names(n)])


def _direct(out: Path, video: str, key: str, expr: Any, scenario: Any) -> Any:
    pred = _pred(out, video, expr.id)
    return expression_scores(pred != 0, scenario.masks, expr.obj_ids, expr_id=key, expr_type=expr.type)


# ------------------------------------------------------------------------------------- MeViS


def test_mevis_writes_the_layout_and_scores_like_direct_scoring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_mevis(tmp_path / "mevis")
    out, report = tmp_path / "out", tmp_path / "scores.json"
    argv = ["--layout", "mevis", "--root", str(root), "--out", str(out), "--json", str(report)]
    assert bench([*argv, "--videos", "vid_b", "--traces"]) == 0
    printed = capsys.readouterr().out
    result = json.loads(report.read_text())
    sc = SCENARIOS["vid_b"]
    assert [r["key"] for r in result["per_expression"]] == [f"vid_b/{e.id}" for e in sc.expressions]
    for row, expr in zip(result["per_expression"], sc.expressions):
        pred = _pred(out, "vid_b", expr.id)
        assert pred.dtype == np.uint8 and set(np.unique(pred)) <= {0, 255}  # binary grayscale PNGs
        direct = _direct(out, "vid_b", row["key"], expr, sc)
        assert row["J"] == pytest.approx(direct.j_mean, abs=1e-12)
        assert row["F"] == pytest.approx(direct.f_mean, abs=1e-12)
        assert f"J&F {direct.jf_mean:.3f}" in printed
        assert row["status"] == "finished" and not row["errors"]
    rows = result["per_expression"]
    assert result["overall"]["J&F"] == pytest.approx(np.mean([(r["J"] + r["F"]) / 2 for r in rows]))
    assert result["overall"]["count"] == 3 and "R" not in result["overall"]
    assert "MeViS valid_u: 3 run" in printed and "overall J&F" in printed
    # the shapes preset finds these targets: scores are far from the empty-mask floor
    assert result["overall"]["J&F"] > 0.6
    # --traces: one replayable trace per expression, whose masks are the PNGs written
    expr = sc.expressions[1]
    state = RunState.from_events(read_trace(out / "traces" / "vid_b" / f"{expr.id}.jsonl"))
    assert state.query == expr.text and state.status == "finished"
    from_trace = np.stack([state.masks[i].any(axis=0) for i in range(FRAMES)])
    assert np.array_equal(from_trace, _pred(out, "vid_b", expr.id) != 0)


# ------------------------------------------------------------------------------------- ReVOS


def test_revos_subsets_overall_and_robustness(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_revos(tmp_path / "revos")
    out, report = tmp_path / "out", tmp_path / "scores.json"
    assert bench(["--layout", "revos", "--root", str(root), "--out", str(out), "--json", str(report),
                  "--videos", "SRC/a"]) == 0  # fmt: skip
    result = json.loads(report.read_text())
    sc = SCENARIOS["vid_a"]
    for row, expr in zip(result["per_expression"], sc.expressions):
        direct = _direct(out, "SRC/a", row["key"], expr, sc)
        pred = _pred(out, "SRC/a", expr.id) != 0
        r = robustness(pred, sc.expression_mask(expr), sc.masks != 0).mean()
        assert (row["J"], row["F"], row["R"]) == pytest.approx((direct.j_mean, direct.f_mean, r), abs=1e-12)
        assert row["type"] == expr.type
    sub = {}
    for kind in ("referring", "reasoning"):
        rows = [r for r in result["per_expression"] if r["type"] == kind]
        assert rows, kind
        sub[kind] = np.mean([(r["J"] + r["F"]) / 2 for r in rows])
        assert result[kind]["J&F"] == pytest.approx(sub[kind])
    assert result["revos"]["J&F"] == pytest.approx((sub["referring"] + sub["reasoning"]) / 2)
    printed = capsys.readouterr().out
    assert "mean of the two subsets" in printed and " R " in printed


def test_revos_type_2_is_scored_but_in_neither_subset(tmp_path: Path) -> None:
    root = make_revos(tmp_path / "revos")
    meta_path = root / "meta_expressions_valid_.json"
    meta = json.loads(meta_path.read_text())
    meta["videos"]["SRC/a"]["expressions"]["2"]["type_id"] = 2
    meta_path.write_text(json.dumps(meta))
    report = tmp_path / "scores.json"
    argv = ["--layout", "revos", "--root", str(root), "--out", str(tmp_path / "o"), "--json", str(report)]
    assert bench([*argv, "--videos", "SRC/a"]) == 0
    result = json.loads(report.read_text())
    other = [r for r in result["per_expression"] if r["type"] == "other"]
    assert len(other) == 1 and other[0]["J"] is not None
    assert result["referring"]["count"] + result["reasoning"]["count"] == 2


# ------------------------------------------------------------------- Ref-DAVIS17 / Ref-YouTube-VOS


def test_refdavis_scores_each_expression_and_the_annotator_sets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_refdavis(tmp_path / "davis")
    out, report = tmp_path / "out", tmp_path / "scores.json"
    assert bench(["--layout", "refytvos", "--root", str(root), "--out", str(out), "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    sc = SCENARIOS["vid_a"]
    rows = result["per_expression"]
    assert len(rows) == 8
    for row in rows:
        obj_id = 1 if int(row["exp_id"]) < 4 else 2
        pred = _pred(out, "vid_a", row["exp_id"]) != 0
        direct = expression_scores(pred, sc.masks, [obj_id])
        assert row["J"] == pytest.approx(direct.j_mean, abs=1e-12)
        assert row["annotator"] is not None
    sets = result["annotator_sets"]
    assert len(sets) == 4 and all(s["count"] == 2 for s in sets.values())
    assert result["annotator_mean"]["J&F"] == pytest.approx(np.mean([s["J&F"] for s in sets.values()]))
    assert not (out / "submission.zip").exists()  # scored locally: no server zip
    assert "Ref-DAVIS17 valid" in capsys.readouterr().out


def test_refytvos_without_ground_truth_writes_the_submission_zip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_refdavis(tmp_path / "ytvos", annotations=False)
    # The valid meta file of the competition also lists the test videos; a test-only video is dropped.
    meta_path = root / "meta_expressions" / "valid" / "meta_expressions.json"
    meta = json.loads(meta_path.read_text())
    meta["videos"]["test_vid"] = {"frames": ["00000"], "expressions": {"0": {"exp": "a thing"}}}
    meta_path.write_text(json.dumps(meta))
    (root / "meta_expressions" / "test").mkdir()
    (root / "meta_expressions" / "test" / "meta_expressions.json").write_text(
        json.dumps({"videos": {"test_vid": meta["videos"]["test_vid"]}})
    )
    out = tmp_path / "out"
    assert bench(["--layout", "refytvos", "--root", str(root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "left out 1 test videos" in printed and "no ground truth" in printed
    with zipfile.ZipFile(out / "submission.zip") as archive:
        names = set(archive.namelist())
    assert names == {f"Annotations/vid_a/{i}/{f}.png" for i in range(8) for f in _frame_names(FRAMES)}


# ------------------------------------------------------------------------- resume, failure, Ctrl-C


def test_resume_skips_finished_expressions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_mevis(tmp_path / "mevis")
    out = tmp_path / "out"
    argv = ["--layout", "mevis", "--root", str(root), "--out", str(out)]
    assert bench([*argv, "--limit", "2"]) == 0
    first = out / "Annotations" / "vid_a" / "0" / "00000.png"
    stamp = first.stat().st_mtime_ns
    capsys.readouterr()
    report = tmp_path / "scores.json"
    assert bench([*argv, "--limit", "3", "--json", str(report)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("resumed (predictions already complete)") == 2
    assert "1 run, 2 resumed from disk" in printed
    assert first.stat().st_mtime_ns == stamp  # not rewritten
    assert len((out / "benchmark_runs.jsonl").read_text().splitlines()) == 3
    rows = json.loads(report.read_text())["per_expression"]
    assert [r["resumed"] for r in rows] == [True, True, False]
    # resumed rows are scored from the PNGs on disk like the others
    direct = _direct(out, "vid_a", rows[0]["key"], SCENARIOS["vid_a"].expressions[0], SCENARIOS["vid_a"])
    assert rows[0]["J"] == pytest.approx(direct.j_mean, abs=1e-12)
    # another preset into the same folder would mix two methods' masks: refused
    assert bench([*argv, "--preset", "shapes-box-only"]) == 2
    assert "another run" in capsys.readouterr().err


def test_a_failed_run_counts_as_empty_masks_and_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_mevis(tmp_path / "mevis")
    out, report = tmp_path / "out", tmp_path / "scores.json"

    def broken(config: Any) -> Any:
        raise RuntimeError("the propagator cannot start")

    # every run ends in a propagator error
    monkeypatch.setattr(pipeline, "make_propagator", broken)
    argv = [
        "--layout",
        "mevis",
        "--root",
        str(root),
        "--out",
        str(out),
        "--limit",
        "1",
        "--json",
        str(report),
    ]
    assert bench(argv) == 1
    captured = capsys.readouterr()
    assert "every run failed" in captured.err and "scored as empty masks" in captured.out
    assert not _pred(out, "vid_a", "0").any()  # written as empty masks, as a benchmark scores them
    row = json.loads(report.read_text())["per_expression"][0]
    assert any("the propagator cannot start" in e for e in row["errors"])
    expr = SCENARIOS["vid_a"].expressions[0]
    empty = expression_scores(np.zeros_like(SCENARIOS["vid_a"].masks), SCENARIOS["vid_a"].masks, expr.obj_ids)
    assert row["status"] == "error" and row["errors"] and row["J"] == pytest.approx(empty.j_mean)
    assert bench(argv) == 1
    assert "1 run, 0 resumed" in capsys.readouterr().out  # a failed expression is run again


def test_ctrl_c_keeps_finished_expressions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_mevis(tmp_path / "mevis")
    out = tmp_path / "out"
    real = bm.run_expression
    calls = []

    def interrupt_second(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(bm, "run_expression", interrupt_second)
    assert bench(["--layout", "mevis", "--root", str(root), "--out", str(out), "--limit", "3"]) == 130
    assert "run the same command again to resume" in capsys.readouterr().err
    assert len(list((out / "Annotations" / "vid_a" / "0").glob("*.png"))) == FRAMES
    assert not (out / "Annotations" / "vid_a" / "1").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".videoseg-partial")]


# ------------------------------------------------------------------------------- bad input


def _corrupt_meta(root: Path, edit: Any) -> None:
    path = root / "valid_u" / "meta_expressions.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def _corrupt_mask_dict(root: Path, edit: Any) -> None:
    path = root / "valid_u" / "mask_dict.json"
    masks = json.loads(path.read_text())
    edit(masks)
    path.write_text(json.dumps(masks))


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        # an expression's anno_id is not a list of ids: the entry is named
        (lambda r: _corrupt_meta(r, lambda m: m["videos"]["vid_b"]["expressions"]["1"].update(anno_id="x")),
         "videos['vid_b'].expressions['1']: 'anno_id'"),
        # an expression without text
        (lambda r: _corrupt_meta(r, lambda m: m["videos"]["vid_a"]["expressions"]["2"].pop("exp")),
         "videos['vid_a'].expressions['2']: 'exp'"),
        # frames is not a list
        (lambda r: _corrupt_meta(r, lambda m: m["videos"]["vid_a"].update(frames="00000")),
         "videos['vid_a']: 'frames'"),
        # a mask_dict entry with the wrong number of frames
        (lambda r: _corrupt_mask_dict(r, lambda m: m["0"].pop()), "entry '0' (expression vid_a/"),
        # a mask_dict entry that is not an RLE
        (lambda r: _corrupt_mask_dict(r, lambda m: m["0"].__setitem__(3, {"counts": 5})), "frame 3: expected a COCO RLE"),
        # a missing frame file
        # a missing frame file of the last video (named before the first video runs)
        (lambda r: (r / "valid_u" / "JPEGImages" / "vid_b" / "00007.jpg").unlink(), "00007.jpg is missing"),
        # not JSON at all
        (lambda r: (r / "valid_u" / "meta_expressions.json").write_text("{"), "not valid JSON"),
    ],
)  # fmt: skip
def test_bad_data_is_named_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], corrupt: Any, message: str
) -> None:
    root = make_mevis(tmp_path / "mevis")
    corrupt(root)
    out = tmp_path / "out"
    assert bench(["--layout", "mevis", "--root", str(root), "--out", str(out)]) == 1
    assert message in capsys.readouterr().err
    assert not (out / "Annotations").exists()  # nothing ran


@pytest.mark.parametrize(
    ("layout", "maker", "message"),
    [
        ("revos", make_mevis, "use --layout mevis"),
        ("mevis", make_revos, "use --layout revos"),
        ("refytvos", make_revos, "use --layout revos"),
    ],
)
def test_a_wrong_layout_says_which_it_looks_like(
    tmp_path: Path, layout: str, maker: Any, message: str
) -> None:
    root = maker(tmp_path / "data")
    with pytest.raises(DatasetError, match=message):
        load_benchmark(layout, root)


def test_bad_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_mevis(tmp_path / "mevis")
    base = ["--layout", "mevis", "--root", str(root), "--out", str(tmp_path / "o")]
    assert bench([*base, "--videos", "nope"]) == 2
    assert "no video 'nope'" in capsys.readouterr().err
    assert bench([*base, "--preset", "no-such"]) == 2
    assert bench([*base, "--fps", "0"]) == 2
    assert (
        bench(["--layout", "mevis", "--root", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    )


class _Started(Exception):
    """Raised by the stand-in pipeline: the benchmark got as far as running an expression."""


def _no_run(*args: object, **kwargs: object) -> None:
    raise _Started


def test_a_real_preset_without_weights_is_refused_before_any_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_mevis(tmp_path / "mevis")
    out = tmp_path / "out"
    monkeypatch.setattr(models, "hub_reachable", lambda: False)
    monkeypatch.setattr(models, "url_reachable", lambda url: False)  # XMem's server
    monkeypatch.setattr(weights, "locate", lambda model_id: (False, "not here"))
    monkeypatch.setattr(pipeline, "run", _no_run)
    argv = ["--layout", "mevis", "--root", str(root), "--out", str(out)]
    assert bench([*argv, "--preset", "paper"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --preset paper needs weights"), lines
    for model_id in ("Qwen/Qwen2.5-VL-7B-Instruct", "facebook/sam2.1-hiera-large", "XMem.pth"):
        assert f"`{model_id}`" in lines[0]
    assert not out.exists()  # nothing ran, nothing written
    assert bench([*argv, "--preset", "paper-sam2-video"]) == 2
    assert "XMem" not in capsys.readouterr().err  # only the stages this preset uses
    # with a reachable hub the weights download as before: the runs start
    monkeypatch.setattr(models, "hub_reachable", lambda: True)
    monkeypatch.setattr(models, "url_reachable", lambda url: True)  # XMem's server
    with pytest.raises(_Started):
        bench([*argv, "--preset", "paper"])


def test_a_weights_free_benchmark_never_probes_the_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_mevis(tmp_path / "mevis")

    def probe() -> bool:
        raise AssertionError("a weights-free preset probed the hub")

    monkeypatch.setattr(models, "hub_reachable", probe)

    monkeypatch.setattr(models, "url_reachable", lambda url: probe())
    monkeypatch.setattr(pipeline, "run", _no_run)
    with pytest.raises(_Started):
        bench(["--layout", "mevis", "--root", str(root), "--out", str(tmp_path / "out")])


@pytest.mark.parametrize(
    ("json_path", "message"),
    [
        ("{out}", "is the --out folder"),
        ("{tmp}", "is a folder around --out"),
        ("{tmp}/mevis", "is a folder, not a file"),
        ("{out}/benchmark.json", "which the benchmark writes itself"),
        ("{out}/benchmark_runs.jsonl", "which the benchmark writes itself"),
        ("{out}/Annotations/vid_a/x.json", "inside --out's Annotations folder"),
        ("{out}/traces/x.json", "inside --out's traces folder"),
        ("{tmp}/afile/x.json", "afile is a file, not a folder"),
    ],
)
def test_a_json_path_that_cannot_be_written_is_refused_before_any_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], json_path: str,
    message: str
) -> None:  # fmt: skip
    root = make_mevis(tmp_path / "mevis")
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "out"  # not created yet: the clash is found from the paths alone
    monkeypatch.setattr(pipeline, "run", _no_run)
    target = json_path.format(out=out, tmp=tmp_path)
    assert bench(["--layout", "mevis", "--root", str(root), "--out", str(out), "--json", target]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_the_json_folder_is_made_before_the_runs(tmp_path: Path) -> None:
    root = make_mevis(tmp_path / "mevis")
    report = tmp_path / "new" / "deeper" / "scores.json"
    argv = ["--layout", "mevis", "--root", str(root), "--out", str(tmp_path / "out"), "--json", str(report)]
    assert bench([*argv, "--limit", "1"]) == 0
    assert json.loads(report.read_text())["counts"]["run"] == 1


def test_a_json_folder_that_cannot_be_made_is_refused_before_any_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_mevis(tmp_path / "mevis")
    monkeypatch.setattr(pipeline, "run", _no_run)
    real_mkdir = Path.mkdir

    def refuse(self: Path, *args: Any, **kwargs: Any) -> None:
        if self.name == "reports":
            raise PermissionError(13, "Permission denied", str(self))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse)
    report = tmp_path / "reports" / "scores.json"
    argv = ["--layout", "mevis", "--root", str(root), "--out", str(tmp_path / "out"), "--json", str(report)]
    assert bench(argv) == 2
    assert "cannot create its folder (Permission denied)" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- FrameFolder


def test_frame_folder_decodes_only_the_frames_asked_in_order(tmp_path: Path) -> None:
    frames = SCENARIOS["vid_a"].frames[:8]
    _write_frames(tmp_path / "v", frames)
    paths = [tmp_path / "v" / f"{n}.jpg" for n in _frame_names(8)]
    video = FrameFolder(paths, 6.0)
    assert (len(video), video.size, video.fps) == (8, SIZE, 6.0)
    assert video.decoded == []  # opening reads headers only
    got = video.frames([5, 2, 5])
    assert video.decoded == [5, 2]  # a duplicate is decoded once
    for frame, idx in zip(got, [5, 2, 5]):
        assert np.array_equal(frame, np.asarray(Image.open(paths[idx]).convert("RGB")))
    assert [i for i, _ in video.iter_frames(1, 4, reverse=True)] == [3, 2, 1]
    with pytest.raises(IndexError, match="outside"):
        video.frames([8])


def test_frame_folder_rejects_frames_of_differing_sizes(tmp_path: Path) -> None:
    _write_frames(tmp_path / "v", SCENARIOS["vid_a"].frames[:3])
    Image.fromarray(np.zeros((50, 60, 3), dtype=np.uint8)).save(tmp_path / "v" / "00001.jpg")
    with pytest.raises(
        DatasetError, match=re.escape("differ in size: 00000.jpg is 160x120, 00001.jpg is 60x50")
    ):
        FrameFolder(sorted((tmp_path / "v").glob("*.jpg")), 6.0)


def test_the_benchmark_command_is_registered(capsys: pytest.CaptureFixture[str]) -> None:
    from videoseg.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["benchmark", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "--layout" in text and "mevis" in text and "refytvos" in text
    # no default method: a score must say what produced it
    assert main(["benchmark", "--layout", "mevis", "--root", "r", "--out", "o"]) == 2
    assert "--preset is required" in capsys.readouterr().err
    assert "--shard" in text and "--merge" in text and "--wait-timeout" in text
