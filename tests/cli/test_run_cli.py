"""``python -m videoseg run`` / ``replay`` end to end on a generated shapes-world video (weights-free)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from videoseg.cli.main import main
from videoseg.cli.run import no_target_reason
from videoseg.core import events as ev
from videoseg.core.masks import encode_rle
from videoseg.core.state import RunState
from videoseg.io.video import open_video, read_mask_pngs
from videoseg.pipeline import orchestrator as pipeline
from videoseg.runtime import loading as models
from videoseg.runtime import weights
from videoseg.shapes import generate


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
    assert "no target found" not in captured.err

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


# ------------------------------------------------------------------ weights missing, hub unreachable


class _Started(Exception):
    """Raised by the stand-in pipeline: the command got as far as starting the run."""


def _no_run(*args: object, **kwargs: object) -> None:
    raise _Started


@pytest.fixture
def unreachable_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """No connection to the hub; only files that exist count as present weights."""
    monkeypatch.setattr(models, "hub_reachable", lambda: False)
    monkeypatch.setattr(models, "url_reachable", lambda url: False)  # XMem's server
    monkeypatch.setattr(weights, "locate", lambda model_id: (Path(model_id).exists(), "not here"))
    monkeypatch.setattr(pipeline, "run", _no_run)


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_a_real_preset_without_weights_names_them_all_before_any_work(
    scenario_dir: tuple[Path, object],
    tmp_path: Path,
    unreachable_hub: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory, _ = scenario_dir
    out = tmp_path / "out"
    code = main(
        ["run", str(directory / "video.mp4"), "the red square", "--preset", "paper", "--out", str(out)]
    )
    line = _one_error_line(capsys.readouterr().err)
    assert code == 2  # refused before the (stand-in) pipeline started
    for model_id in ("Qwen/Qwen2.5-VL-7B-Instruct", "facebook/sam2.1-hiera-large", "XMem.pth"):
        assert f"`{model_id}`" in line, line
    assert "--vlm / --sam2 / --xmem" in line and not out.exists()


def test_overrides_decide_which_weights_are_missing(
    scenario_dir: tuple[Path, object],
    tmp_path: Path,
    unreachable_hub: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory, _ = scenario_dir
    qwen = tmp_path / "my-qwen"
    qwen.mkdir()
    xmem = tmp_path / "XMem.pth"
    xmem.write_bytes(b"w")
    base = ["run", str(directory / "video.mp4"), "q", "--preset", "paper", "--out", str(tmp_path / "o")]
    assert main([*base, "--vlm", str(qwen), "--xmem", str(xmem), "--sam2", "tiny"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "segmenter `facebook/sam2.1-hiera-tiny`" in line and "--sam2 PATH" in line
    assert "Qwen" not in line and "XMem" not in line and "--vlm" not in line
    # every stage's weights here (or no stage needing any): the run starts
    sam2 = tmp_path / "sam2"
    sam2.mkdir()
    with pytest.raises(_Started):
        main([*base, "--vlm", str(qwen), "--xmem", str(xmem), "--sam2", str(sam2)])
    with pytest.raises(_Started):
        main([*base, "--vlm", "shapes", "--segmenter", "grabcut", "--propagator", "flow"])


def test_with_a_reachable_hub_missing_weights_are_left_to_download(
    scenario_dir: tuple[Path, object], tmp_path: Path, unreachable_hub: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, _ = scenario_dir
    monkeypatch.setattr(models, "hub_reachable", lambda: True)
    monkeypatch.setattr(models, "url_reachable", lambda url: True)  # XMem's server
    with pytest.raises(_Started):
        main(["run", str(directory / "video.mp4"), "q", "--preset", "paper", "--out", str(tmp_path / "o")])


def test_a_weights_free_run_never_probes_the_hub(
    scenario_dir: tuple[Path, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, _ = scenario_dir

    def probe() -> bool:
        raise AssertionError("a weights-free run probed the hub")

    monkeypatch.setattr(models, "hub_reachable", probe)

    monkeypatch.setattr(models, "url_reachable", lambda url: probe())
    monkeypatch.setattr(pipeline, "run", _no_run)
    with pytest.raises(_Started):
        main(["run", str(directory / "video.mp4"), "q", "--preset", "shapes", "--out", str(tmp_path / "o")])


# ------------------------------------------------------------------ a run that finds nothing


def test_a_run_that_finds_no_target_warns_and_so_does_its_replay(
    scenario_dir: tuple[Path, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, _ = scenario_dir
    trace = tmp_path / "t.jsonl"
    args = ["run", str(directory / "video.mp4"), "the zebra", "--out", str(tmp_path / "o"), "--quiet"]
    assert main([*args, "--trace", str(trace)]) == 0  # the run worked; it found nothing
    warning = "warning: no target found: the reasoner named none for this query; every mask is empty"
    assert warning in capsys.readouterr().err.splitlines()
    assert not read_mask_pngs(tmp_path / "o" / "masks").any()
    assert main(["replay", str(trace)]) == 0
    assert warning in capsys.readouterr().err.splitlines()


def _state(*events: ev.Event) -> RunState:
    started = ev.RunStarted(query="q", video={"num_frames": 2, "width": 8, "height": 6}, config={})
    return RunState.from_events([started, *events])


_EMPTY = encode_rle(np.zeros((6, 8), dtype=bool))
_SOME = encode_rle(np.pad(np.ones((2, 2), dtype=bool), ((2, 2), (3, 3))))
_CUE = {"obj_id": 1, "box": [1, 1, 4, 4]}


def _keyframe(area: int) -> ev.KeyframeMask:
    return ev.KeyframeMask(frame_idx=0, target=0, rle=_EMPTY if area == 0 else _SOME, score=0.5, cues=_CUE,
                           area=area)  # fmt: skip


def _frames(*rles: dict) -> list[ev.PropagatedMask]:
    return [ev.PropagatedMask(i, "forward", [r], i + 1, len(rles)) for i, r in enumerate(rles)]


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([ev.ParseError(message="no <answer> tag", raw="hm"), ev.RunFinished(2, 0, 1.0)],
         "no target found: the reasoner's answer could not be read (no <answer> tag); every mask is empty"),
        ([ev.CuesParsed(0, [], ["box"]), ev.RunFinished(2, 0, 1.0)],
         "no target found: the reasoner named none for this query; every mask is empty"),
        ([ev.RunFinished(2, 0, 1.0)], "no target found; every mask is empty"),
        ([ev.CuesParsed(0, [_CUE], ["box"]), _keyframe(0), *_frames(_EMPTY, _EMPTY), ev.RunFinished(2, 1, 1.0)],
         "no target found: the reasoner named 1 target(s) but the segmenter's keyframe masks are empty; "
         "every mask is empty"),
        ([ev.CuesParsed(0, [_CUE], ["box"]), _keyframe(4), *_frames(_EMPTY, _EMPTY), ev.RunFinished(2, 1, 1.0)],
         "no target found: the reasoner named 1 target(s) but every mask is empty"),
        # something found: no warning, even where the keyframe mask alone is empty
        ([ev.CuesParsed(0, [_CUE], ["box"]), _keyframe(4), *_frames(_SOME, _EMPTY), ev.RunFinished(2, 1, 1.0)],
         None),
        ([ev.CuesParsed(0, [_CUE], ["box"]), _keyframe(0), *_frames(_EMPTY, _SOME), ev.RunFinished(2, 1, 1.0)],
         None),
    ],
)  # fmt: skip
def test_no_target_reason(events: list[ev.Event], expected: str | None) -> None:
    assert no_target_reason(_state(*events)) == expected
