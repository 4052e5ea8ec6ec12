"""``python -m videoseg run`` / ``replay`` end to end on a generated shapes-world video (weights-free)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from videoseg.cli import main
from videoseg.shapes import generate
from videoseg.video import open_video, read_mask_pngs


@pytest.fixture(scope="module")
def scenario_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    scenario = generate(3, "distractor_colour")
    directory = tmp_path_factory.mktemp("scenario")
    scenario.save(directory)
    return directory, scenario


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return 1.0 if union == 0 else float((a & b).sum() / union)


def test_run_writes_outputs_and_replay_reproduces_them(
    scenario_dir: tuple[Path, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, scenario = scenario_dir
    expression = scenario.expressions[0]
    out, trace = tmp_path / "out", tmp_path / "run.jsonl"
    code = main(
        [
            "run",
            str(directory / "video.mp4"),
            expression.text,
            "--preset",
            "shapes",
            "--out",
            str(out),
            "--trace",
            str(trace),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "sampler [htfs]" in captured.err and "finished" in captured.err  # the log goes to stderr

    masks = read_mask_pngs(out / "masks")
    num_frames = len(scenario.frames)
    assert masks.shape == (num_frames, *scenario.frames.shape[1:3])
    gt = np.isin(scenario.masks, expression.obj_ids)
    assert np.mean([_jaccard(masks[t] > 0, gt[t]) for t in range(num_frames)]) > 0.7
    with open_video(out / "overlay.mp4") as overlay:
        assert len(overlay) == num_frames
    cues = json.loads((out / "cues.json").read_text())
    assert cues["query"] == expression.text and len(cues["targets"]) == len(expression.obj_ids)
    assert "<answer>" in (out / "reasoning.txt").read_text()

    replay_out = tmp_path / "replay"
    assert main(["replay", str(trace), "--out", str(replay_out)]) == 0
    log = capsys.readouterr().out
    assert log.splitlines()[0].startswith("run: ") and "cues on frame" in log and "finished:" in log
    assert np.array_equal(read_mask_pngs(replay_out / "masks"), masks)
    assert (replay_out / "overlay.mp4").exists()
    assert json.loads((replay_out / "cues.json").read_text()) == cues


def test_a_relative_video_path_is_recorded_absolute_so_replay_elsewhere_writes_the_overlay(
    scenario_dir: tuple[Path, object],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory, scenario = scenario_dir
    monkeypatch.chdir(directory)
    trace = tmp_path / "run.jsonl"
    args = ["run", "video.mp4", scenario.expressions[0].text, "--preset", "shapes", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "out"), "--trace", str(trace)]) == 0
    started = json.loads(trace.read_text().splitlines()[0])
    assert started["video"]["path"] == str(directory / "video.mp4")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["replay", str(trace), "--out", "again"]) == 0
    assert "overlay.mp4 not written" not in capsys.readouterr().err
    with open_video(elsewhere / "again" / "overlay.mp4") as overlay:
        assert len(overlay) == len(scenario.frames)


def test_bad_video_exits_non_zero_with_the_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bogus = tmp_path / "clip.mp4"
    bogus.write_bytes(b"\x00" * 100)
    code = main(["run", str(bogus), "the circle", "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "error [video]" in err
    assert not (tmp_path / "o" / "masks").exists()


def test_unknown_preset_and_bad_overrides_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "v.mp4", "q", "--preset", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown preset" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # argparse rejects a propagator it does not know
        main(["run", "v.mp4", "q", "--propagator", "raft", "--out", str(tmp_path)])
    assert exc.value.code == 2


def test_help_lists_the_presets(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "shapes-first-frame" in text and "paper-box-only" in text and "--propagator" in text


def test_replay_of_a_broken_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text("{oops\n")
    assert main(["replay", str(path)]) == 2
    assert "not JSON" in capsys.readouterr().err
    path.write_text(json.dumps({"type": "run_started", "query": "q", "video": {}, "config": {}}) + "\n")
    assert main(["replay", str(path)]) == 1  # a trace that stops before RunFinished
    assert "without finishing" in capsys.readouterr().err
