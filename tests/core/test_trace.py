"""Trace record / replay (JSON Lines) and the RunState fold: a replay reproduces the run exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.support.fakes import ScriptedVideoQA, answer_for_mask, moving_square_frames
from videoseg.core import events as ev
from videoseg.core.config import PipelineConfig
from videoseg.core.interfaces import Backends
from videoseg.core.state import RunState
from videoseg.core.trace import TraceError, TraceWriter, read_trace, tee, write_trace
from videoseg.io.video import ArrayVideo
from videoseg.pipeline import orchestrator as pipeline

FRAMES, GT = moving_square_frames(num_frames=16, step=2)
CFG = PipelineConfig(delta=0.5, num_interval_answers=2, num_percent_answers=2, frames_per_question=4)


def _live_events(monkeypatch: pytest.MonkeyPatch) -> list[ev.Event]:
    # "1.0 to 1.5 s" at 10 fps -> frames 10..15; 50 % of 6 frames -> frame 13.
    qa = ScriptedVideoQA(
        intervals=[["from 1.0 to 1.5 seconds"]],
        percents=["50%"],
        reasoning=["<think>", "red", "</think>", answer_for_mask(GT[13])],
    )
    return list(
        pipeline.run(
            ArrayVideo(FRAMES, 10), "the red square", CFG, preset="shapes", backends=Backends(vqa=qa)
        )
    )


def test_write_then_read_gives_identical_events_and_masks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    live = _live_events(monkeypatch)
    path = tmp_path / "run.jsonl"
    assert write_trace(path, live) == len(live)
    lines = path.read_text().splitlines()
    assert len(lines) == len(live) and all("type" in json.loads(line) for line in lines)
    replayed = list(read_trace(path))
    assert [e.to_dict() for e in replayed] == [e.to_dict() for e in live]
    a, b = RunState.from_events(live), RunState.from_events(replayed)
    assert sorted(a.masks) == sorted(b.masks) == list(range(16))
    for i in range(16):
        assert np.array_equal(a.masks[i], b.masks[i])
        assert np.array_equal(a.label_map(i), b.label_map(i))
    assert a.text == b.text and a.cues == b.cues and a.timings == b.timings


def test_tee_records_while_passing_events_through(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    live = _live_events(monkeypatch)
    path = tmp_path / "sub" / "tee.jsonl"
    passed = list(tee(iter(live), path))
    assert passed == live
    assert [e.type for e in read_trace(path)] == [e.type for e in live]


def test_a_partial_trace_keeps_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "partial.jsonl"
    with TraceWriter(path) as writer:
        writer.write(ev.RunStarted(query="q", video={}, config={}))
        # Flushed per event: readable before the writer closes (a crashed run leaves a useful trace).
        assert [e.type for e in read_trace(path)] == ["run_started"]
        writer.write(ev.RunError(for_stage="video", message="bad"))
    assert [e.type for e in read_trace(path)] == ["run_started", "error"]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('{"type": "run_started", "query": "q", "video": {}, "config": {}}\nnot json\n', ":2: not JSON"),
        ("[1, 2]\n", "expected an event object"),
        ('{"type": "teleport"}\n', "unknown event type"),
        ('{"type": "run_started", "query": "q", "video": {}, "config": {}, "colour": 3}\n', "unknown fields"),
        ('{"type": "stage_timing"}\n', ":1:"),  # required fields missing
    ],
)
def test_bad_traces_name_the_line(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(TraceError, match=fragment):
        list(read_trace(path))


def test_missing_trace_file(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot open"):
        list(read_trace(tmp_path / "nope.jsonl"))


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "blank.jsonl"
    path.write_text('\n{"type": "warning", "for_stage": "x", "message": "m"}\n\n')
    assert [e.type for e in read_trace(path)] == ["warning"]


def test_run_state_fold(monkeypatch: pytest.MonkeyPatch) -> None:
    live = _live_events(monkeypatch)
    state = RunState()
    statuses = set()
    for e in live:
        state.apply(e)
        statuses.add(state.status)
    assert statuses == {"running", "finished"}
    assert state.query == "the red square" and state.preset == "shapes"
    assert state.num_frames == 16 and state.video["width"] == 96
    assert set(state.backends) == {"sampler", "reasoner", "segmenter", "propagator"}
    assert len(state.sampler_levels) == 1 and state.sampler_percent is not None
    assert state.sampler_result is not None and state.sampler_result.target_frame == 13
    assert state.difficulty is not None and state.difficulty.level == "easy"
    assert state.text == state.reasoning.raw_text and state.tokens[1] == "red"
    assert state.keyframe == 13 and list(state.keyframe_masks) == [0]
    assert (
        state.progress == (16, 16)
        and state.directions[13] == "keyframe"
        and state.directions[0] == "backward"
    )
    assert set(state.timings) == {"sampler", "difficulty", "reasoner", "segmenter", "propagator"}
    assert state.frames_decoded == len(state.decoded_frames) > 0
    labels = list(state.iter_label_maps())
    assert len(labels) == 16 and labels[13].dtype == np.uint8 and set(np.unique(labels[13])) == {0, 1}


def test_run_state_reports_errors_and_incomplete_masks() -> None:
    state = RunState.from_events(
        [
            ev.RunStarted(query="q", video={"num_frames": 2, "width": 4, "height": 3}, config={}),
            ev.RunWarning(for_stage="difficulty", message="w"),
            ev.RunError(for_stage="video", message="broken"),
        ]
    )
    assert state.status == "error" and state.errors[0].message == "broken" and len(state.warnings) == 1
    with pytest.raises(KeyError, match="frame 0"):
        list(state.iter_label_maps())
