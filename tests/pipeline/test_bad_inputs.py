"""Bad input at every non-UI entry point: a clear one-line message, the right exit code, nothing lost.

Each case here was a traceback, a misleading message or a silently clobbered file before its fix:
trace files (binary, cut off, wrongly typed, several runs), output paths (a file, the input video,
a foreign file, a folder of an earlier longer run), ``eval`` / ``synth`` arguments, video paths and
queries. Videos are tiny (a few 64x48 frames) and the shapes preset is weights-free, so all of this
runs in seconds.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from videoseg.cli.main import main
from videoseg.core import events as ev
from videoseg.core.config import PipelineConfig
from videoseg.core.trace import TraceError, TraceWriter, read_trace
from videoseg.io.video import (
    VideoCaps,
    VideoError,
    VideoNotFoundError,
    open_video,
    read_mask_pngs,
    write_mask_pngs,
    write_mp4,
)
from videoseg.pipeline import orchestrator as pipeline


def _clip(path: Path, frames: int = 6) -> Path:
    rng = np.random.default_rng(frames)
    return write_mp4(path, rng.integers(0, 255, (frames, 48, 64, 3), dtype=np.uint8), 10)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    return {"six": _clip(root / "six.mp4", 6), "three": _clip(root / "three.mp4", 3)}


@pytest.fixture(scope="module")
def good_trace(clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The lines of a real trace of a 6-frame run."""
    path = tmp_path_factory.mktemp("trace") / "run.jsonl"
    assert (
        main(
            [
                "run",
                str(clips["six"]),
                "the red square",
                "--out",
                str(path.parent / "o"),
                "--trace",
                str(path),
                "--quiet",
            ]
        )
        == 0
    )
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and "Traceback" not in err, err
    return lines[-1]


# --------------------------------------------------------------------------- trace files


def _edit(lines: list[str], event_type: str, **changes: Any) -> str:
    out = []
    for line in lines:
        data = json.loads(line)
        if data["type"] == event_type:
            data.update(changes)
        out.append(json.dumps(data) + "\n")
    return "".join(out)


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda lines: bytes(range(256)) * 4, "not UTF-8 text"),
        (lambda lines: lines[0].replace("red", "r\u00efd").encode("latin-1"), "not UTF-8 text"),
        (lambda lines: ("".join(lines[:-1]) + lines[-1][:25]).encode(), "last line is cut off"),
        (
            lambda lines: _edit(lines, "propagated_mask", frame_idx="abc").encode(),
            "'frame_idx' should be an integer",
        ),
        (lambda lines: _edit(lines, "propagated_mask", rles="x").encode(), "'rles' should be"),
        (lambda lines: _edit(lines, "run_started", video=None).encode(), "'video' should be"),
        (lambda lines: _edit(lines, "stage_timing", seconds="slow").encode(), "'seconds' should be a number"),
        (
            lambda lines: _edit(lines, "run_finished", num_frames=True).encode(),
            "'num_frames' should be an integer",
        ),
        (
            lambda lines: b'{"type": "run_started", "query": NaN, "video": {}, "config": {}}\n',
            "NaN is not a number JSON allows",
        ),
        (lambda lines: b'{"type": "run_started"}\n', "lacks the field(s) query, video, config"),
    ],
)
def test_a_bad_trace_is_a_trace_error_naming_the_problem(
    good_trace: list[str], tmp_path: Path, make: Any, fragment: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(make(good_trace))
    with pytest.raises(TraceError, match=re.escape(fragment)):
        list(read_trace(path))


def test_a_trace_with_a_byte_order_mark_reads(good_trace: list[str], tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_text("".join(good_trace), encoding="utf-8-sig")
    assert len(list(read_trace(path))) == len(good_trace)


def test_undecodable_text_is_written_and_read_back_unchanged(tmp_path: Path) -> None:
    # A file name with a byte that is not UTF-8 reaches Python as a lone surrogate.
    event = ev.RunStarted(query="q", video={"path": "/v/bad\udcffname.mp4"}, config={})
    path = tmp_path / "t.jsonl"
    with TraceWriter(path) as writer:
        writer.write(event)
    assert [e.to_dict() for e in read_trace(path)] == [event.to_dict()]


def test_an_unwritable_trace_is_a_trace_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(TraceError, match="cannot write trace"):
        TraceWriter(tmp_path / "afile" / "t.jsonl").open()
    with pytest.raises(TraceError, match="cannot write trace"):
        TraceWriter(tmp_path).open()
    full = Path("/dev/full")  # Linux: every write fails with "No space left on device"
    if full.exists():
        with pytest.raises(TraceError, match="No space left"), TraceWriter(full) as writer:
            writer.write(ev.RunWarning(for_stage="run", message="x"))


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (lambda lines: "", "holds no events"),
        (lambda lines: "\n \n", "holds no events"),
        (lambda lines: "".join(lines[1:]), "starts with a run_started event, this one with"),
        (lambda lines: "".join(lines) * 2, "starts a second run"),
    ],
)
def test_replay_refuses_traces_that_are_not_one_run(
    good_trace: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], content: Any, fragment: str
) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(content(good_trace), encoding="utf-8")
    assert main(["replay", str(path), "--out", str(tmp_path / "o")]) == 2
    assert fragment in _one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "o" / "masks").exists()


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        # refused while the trace is read (videoseg.core.trace checks every field), before any output
        (
            {"rles": [{"size": [48, 64], "counts": "garbage!!"}]},
            "field 'rles[0].counts' must be a compressed",
        ),
        (
            {"rles": [{"size": [4, 4], "counts": "4"}]},
            "'rles[0].size' is 4x4 (width x height), but the run's",
        ),
        ({"frame_idx": 999}, "field 'frame_idx' must be a whole number from 0 to 5, got 999"),
        (
            {"run_started": {"fps": "abc", "num_frames": -3}},
            "field 'video.num_frames' must be a whole number from 0",
        ),  # fps: was a traceback
    ],
)
def test_replay_of_damaged_masks_keeps_the_earlier_outputs(
    good_trace: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, Any],
    fragment: str,
) -> None:
    good, bad, out = tmp_path / "good.jsonl", tmp_path / "bad.jsonl", tmp_path / "out"
    good.write_text("".join(good_trace), encoding="utf-8")
    lines = []
    for line in good_trace:
        data = json.loads(line)
        if data["type"] == "run_started" and "run_started" in change:
            data["video"].update(change["run_started"])
        elif data["type"] == "propagated_mask" and data["frame_idx"] == 3 and "run_started" not in change:
            data.update(change)
        lines.append(json.dumps(data) + "\n")
    bad.write_text("".join(lines), encoding="utf-8")
    assert main(["replay", str(good), "--out", str(out)]) == 0
    write_mask_pngs(out / "masks", np.ones((6, 48, 64), np.uint8))  # outputs unlike the new ones
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(["replay", str(bad), "--out", str(out)]) == 2
    assert fragment in _one_line_error(capsys.readouterr().err)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # nothing half-written, nothing lost


# --------------------------------------------------------------------------- run: output paths


def test_trace_path_equal_to_the_input_video_is_refused(
    clips: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video = tmp_path / "mine.mp4"
    video.write_bytes(clips["six"].read_bytes())
    code = main(
        ["run", str(video), "the red square", "--out", str(tmp_path / "o"), "--trace", str(video), "--quiet"]
    )
    assert code == 2 and "is the input video" in _one_line_error(capsys.readouterr().err)
    assert video.read_bytes() == clips["six"].read_bytes()


@pytest.mark.parametrize(
    ("setup", "args", "fragment"),
    [
        (
            lambda d: (d / "notes.txt").write_text("my notes"),
            ["--trace", "{d}/notes.txt"],
            "refusing to overwrite",
        ),
        (lambda d: (d / "adir").mkdir(), ["--trace", "{d}/adir"], "is a folder, not a file"),
        (
            lambda d: (d / "afile").write_text("x"),
            ["--trace", "{d}/afile/t.jsonl"],
            "afile is a file, not a folder",
        ),
        (lambda d: None, ["--trace", "{d}/o/cues.json"], "is cues.json of --out, which the outputs replace"),
        (lambda d: None, ["--trace", "{d}/o/masks/00001.png"], "is a mask file of --out"),
        (lambda d: (d / "afile").write_text("x"), ["--out", "{d}/afile"], "is a file, not a folder"),
        (
            lambda d: (d / "afile").write_text("x"),
            ["--out", "{d}/afile/sub"],
            "afile is a file, not a folder",
        ),
    ],
)
def test_run_refuses_output_paths_before_running(
    clips: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    setup: Any,
    args: list[str],
    fragment: str,
) -> None:
    setup(tmp_path)
    snapshot = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    monkeypatch.setattr(pipeline, "run", lambda *a, **k: pytest.fail("the run started"))
    args = [a.format(d=tmp_path) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "o")]
    assert main(["run", str(clips["six"]), "the red square", *args, "--quiet"]) == 2
    assert fragment in _one_line_error(capsys.readouterr().err)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == snapshot


def test_overlay_over_the_input_video_is_refused(
    clips: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video = tmp_path / "overlay.mp4"
    video.write_bytes(clips["six"].read_bytes())
    assert main(["run", str(video), "the red square", "--out", str(tmp_path), "--quiet"]) == 2
    assert "would overwrite the input video" in _one_line_error(capsys.readouterr().err)
    assert video.read_bytes() == clips["six"].read_bytes()


def test_rerun_into_the_same_folder_replaces_the_earlier_outputs(
    clips: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, trace = tmp_path / "out", tmp_path / "out" / "trace.jsonl"
    base = ["the red square", "--out", str(out), "--trace", str(trace), "--quiet"]
    assert main(["run", str(clips["six"]), *base]) == 0
    (out / "masks" / "mine.txt").write_text("the user's own file")
    capsys.readouterr()
    assert main(["run", str(clips["three"]), *base]) == 0
    err = capsys.readouterr().err
    assert "replacing the earlier trace" in err and "replaced the outputs of an earlier run" in err
    # Before: 00003..00005.png of the six-frame run stayed beside the three new ones.
    assert read_mask_pngs(out / "masks").shape[0] == 3
    assert (out / "masks" / "mine.txt").read_text() == "the user's own file"
    assert len(open_video(out / "overlay.mp4")) == 3
    assert not [p for p in out.iterdir() if p.name.startswith(".videoseg-partial")]


def test_replay_without_its_video_removes_the_stale_overlay(
    good_trace: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    good = tmp_path / "good.jsonl"
    good.write_text("".join(good_trace), encoding="utf-8")
    assert main(["replay", str(good), "--out", str(out)]) == 0 and (out / "overlay.mp4").exists()
    moved = tmp_path / "moved.jsonl"
    moved.write_text(
        _edit(good_trace, "run_started", video={**json.loads(good_trace[0])["video"], "path": None})
    )
    capsys.readouterr()
    assert main(["replay", str(moved), "--out", str(out)]) == 0
    assert "removed the earlier run's overlay.mp4" in capsys.readouterr().err
    assert not (out / "overlay.mp4").exists()


# --------------------------------------------------------------------------- eval and synth arguments


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--pred", "p", "--gt", "g", "--obj-ids", "abc"], "invalid object id 'abc'"),
        (["--pred", "p", "--gt", "g", "--obj-ids", "300"], "integers 1..255"),
        (["--shapes-seeds", "-5"], "invalid seed '-5'"),
        (["--shapes-seeds", "1-"], "invalid seed '1-'"),
        (["--shapes-seeds", "0-99999999999"], "at most 100000"),
        (["--shapes-seeds", "1", "--preset", "nope"], "unknown preset 'nope'"),
        (["--shapes-seeds", "1", "--families", "nope"], "unknown family 'nope'"),
    ],
)
def test_eval_argument_errors_are_usage_errors(
    capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    assert main(["eval", *args]) == 2
    assert fragment in _one_line_error(capsys.readouterr().err)


def _mask_folders(tmp_path: Path) -> tuple[Path, Path]:
    gt = np.zeros((2, 12, 16), np.uint8)
    gt[:, 2:6, 2:6] = 1
    write_mask_pngs(tmp_path / "gt", gt)
    write_mask_pngs(tmp_path / "pred", gt)
    return tmp_path / "pred", tmp_path / "gt"


def test_eval_json_never_overwrites_a_foreign_file(
    clips: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pred, gt = _mask_folders(tmp_path)
    video = tmp_path / "clip.mp4"
    video.write_bytes(clips["six"].read_bytes())
    assert main(["eval", "--pred", str(pred), "--gt", str(gt), "--json", str(video)]) == 2
    assert "refusing to overwrite" in _one_line_error(capsys.readouterr().err)
    assert video.read_bytes() == clips["six"].read_bytes()
    assert main(["eval", "--pred", str(pred), "--gt", str(gt), "--json", str(tmp_path)]) == 2
    scores = tmp_path / "scores.json"
    for _ in range(2):  # an earlier scores file is replaced
        assert main(["eval", "--pred", str(pred), "--gt", str(gt), "--json", str(scores)]) == 0
    assert json.loads(scores.read_text())["J&F"] == 1.0


def test_eval_of_a_run_or_scenario_folder_names_the_mask_folder_meant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_mask_pngs(tmp_path / "run" / "masks", np.zeros((2, 12, 16), np.uint8))
    write_mask_pngs(tmp_path / "scenario" / "Annotations", np.zeros((3, 12, 16), np.uint8))
    pred, gt = tmp_path / "run", tmp_path / "scenario"
    assert main(["eval", "--pred", str(pred), "--gt", str(gt / "Annotations")]) == 1
    assert f"did you mean {pred / 'masks'}?" in _one_line_error(capsys.readouterr().err)
    assert main(["eval", "--pred", str(pred / "masks"), "--gt", str(gt)]) == 1
    assert f"did you mean {gt / 'Annotations'}?" in _one_line_error(capsys.readouterr().err)
    assert main(["eval", "--pred", str(pred / "masks"), "--gt", str(gt / "Annotations")]) == 1
    assert "--pred has 2 masks of 16x12, --gt 3 of 16x12" in _one_line_error(capsys.readouterr().err)


def test_eval_warns_about_an_object_id_absent_from_the_ground_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pred, gt = _mask_folders(tmp_path)
    assert main(["eval", "--pred", str(pred), "--gt", str(gt), "--obj-ids", "7"]) == 0
    assert "object id 7 appears in no ground-truth frame (ids present: 1)" in capsys.readouterr().err


def test_eval_benchmark_where_every_run_fails_is_an_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(config: PipelineConfig) -> Any:
        raise RuntimeError("propagator weights missing")

    monkeypatch.setattr(pipeline, "make_propagator", broken)
    assert main(["eval", "--shapes-seeds", "4001", "--families", "turn"]) == 1
    captured = capsys.readouterr()
    assert (
        "every run failed" in _one_line_error(captured.err) and "propagator weights missing" in captured.out
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--frames", "100000"], "too large to build in memory"),
        (["--size", "100000x100000"], "each side must be at most 4096"),
        (["--size", "4096x4096"], "too large to build in memory"),
        (["--out", "{d}/afile"], "is a file, not a folder"),
        (["--out", "{d}/afile/sub"], "afile is a file, not a folder"),
        (["--out", "{d}/user"], "refusing to overwrite"),
    ],
)
def test_synth_refuses_bad_arguments_before_generating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    (tmp_path / "afile").write_text("x")
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "video.mp4").write_bytes(b"the user's video")
    args = [a.format(d=tmp_path) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "new")]
    assert main(["synth", "--seed", "1", *args]) == 2
    assert fragment in _one_line_error(capsys.readouterr().err)
    assert (tmp_path / "user" / "video.mp4").read_bytes() == b"the user's video"
    assert not (tmp_path / "new").exists()


def test_synth_into_an_earlier_scenario_replaces_it_completely(tmp_path: Path) -> None:
    from videoseg.shapes import load_scenario

    out = str(tmp_path / "s")
    assert main(["synth", "--seed", "3", "--family", "turn", "--frames", "60", "--out", out]) == 0
    assert main(["synth", "--seed", "3", "--family", "turn", "--frames", "50", "--out", out]) == 0
    assert load_scenario(out).num_frames == 50  # failed before: 60 annotation PNGs for 50 frames


def test_synth_that_cannot_place_its_objects_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from videoseg.cli import synth as synth_cli

    def crowded(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("could not build a 'turn' scenario for seed 1: could not place a red star")

    monkeypatch.setattr(synth_cli, "generate", crowded)
    assert main(["synth", "--seed", "1", "--out", str(tmp_path / "s")]) == 1
    assert "could not place a red star; try another seed" in _one_line_error(capsys.readouterr().err)


# --------------------------------------------------------------------------- video paths and masks


@pytest.mark.parametrize(
    ("path", "error", "fragment"),
    [
        ("", VideoNotFoundError, "no video given"),
        ("   ", VideoNotFoundError, "no video given"),
        ("/tmp/" + "a" * 5000 + ".mp4", VideoError, "cannot open video"),
    ],
)
def test_odd_video_paths_name_the_problem(path: str, error: type, fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        open_video(path)


@pytest.mark.parametrize(
    ("caps", "words"),
    [
        # Length caps stop the decode early: the old text named the stopping point as the video's
        # length ("this video has 7") and used the internal name only.
        (
            VideoCaps(max_frames=5),
            "video too long: it has more than 5 frames, the limit (VideoCaps.max_frames)",
        ),
        (VideoCaps(max_duration_s=0.3), "it runs more than 0.3 s, the limit (VideoCaps.max_duration_s)"),
        (VideoCaps(max_width=60), "frames too large: 64 px wide, the limit is 60 px (VideoCaps.max_width)"),
        (VideoCaps(max_height=40), "48 px high, the limit is 40 px"),
        (VideoCaps(max_pixels=1000), "3072 pixels each, the limit is 1000"),
        (VideoCaps(max_file_bytes=999), "the limit is 999 bytes (VideoCaps.max_file_bytes)"),
    ],
)
def test_caps_are_named_in_words(clips: dict[str, Path], caps: VideoCaps, words: str) -> None:
    with pytest.raises(VideoError, match=re.escape(words)):
        open_video(clips["six"], caps)


def test_ffmpeg_messages_carry_no_errno_noise(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 10)
    with pytest.raises(VideoError) as info:
        open_video(text)
    assert "Errno" not in str(info.value) and "Invalid data" in str(info.value)


def test_mask_folder_errors_name_the_folder_and_file(tmp_path: Path) -> None:
    write_mask_pngs(tmp_path / "a", np.zeros((2, 12, 16), np.uint8))
    write_mask_pngs(tmp_path / "a", np.zeros((1, 8, 8), np.uint8), start=2)
    with pytest.raises(ValueError, match=r"masks differ in size: 00002.png is 8x8, 00000.png is 16x12"):
        read_mask_pngs(tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "00000.png").write_text("not a png")
    with pytest.raises(ValueError, match=r"00000\.png is not a readable PNG image"):
        read_mask_pngs(tmp_path / "b")


def test_run_with_a_config_of_the_wrong_type_is_a_config_error(clips: dict[str, Path]) -> None:
    events = list(pipeline.run(clips["six"], "the red square", "shapes"))  # type: ignore[arg-type]
    assert [e.type for e in events] == ["run_started", "error"]
    assert (
        events[1].for_stage == "config" and "must be a PipelineConfig or a dict, got str" in events[1].message
    )
    events = list(pipeline.run(clips["six"], "the red square", None, preset="nope"))
    assert events[1].message.startswith("unknown preset 'nope'")


def test_a_failed_run_prints_its_error_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bogus = tmp_path / "clip.mp4"
    bogus.write_text("not a video\n")
    assert main(["run", str(bogus), "the red square", "--out", str(tmp_path / "o")]) == 1  # not --quiet
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "error" in line] == [
        "error [video]: clip.mp4 is not a video file FFmpeg can read (Invalid data found when processing input)"
    ]
    assert "? frames" not in err  # the run line does not pretend to know the video


def test_replay_never_writes_the_overlay_over_the_runs_own_video(
    clips: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    video = out / "overlay.mp4"  # e.g. an earlier overlay used as the input of a new run
    video.write_bytes(clips["six"].read_bytes())
    trace = tmp_path / "t.jsonl"
    assert (
        main(
            [
                "run",
                str(video),
                "the red square",
                "--out",
                str(tmp_path / "o"),
                "--trace",
                str(trace),
                "--quiet",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["replay", str(trace), "--out", str(out)]) == 0
    assert "is the run's video itself" in capsys.readouterr().err
    assert video.read_bytes() == clips["six"].read_bytes()
