"""Interactive re-segmentation is an event stream like a run (issue 11): it folds and records as one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tests.support.fakes import box_of, moving_square_frames
from videoseg.core import events as ev
from videoseg.core.config import PipelineConfig
from videoseg.core.cues import TargetCues
from videoseg.core.interfaces import BackendDescription
from videoseg.core.state import RunState
from videoseg.core.trace import read_trace, write_trace
from videoseg.io.video import ArrayVideo
from videoseg.pipeline.resegment import resegment

FRAMES, GT = moving_square_frames(num_frames=8)
VIDEO = ArrayVideo(FRAMES, 10)


def _cues(frame: int) -> TargetCues:
    box = box_of(GT[frame])
    return TargetCues(box=box, point=[(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], obj_id=1)


def test_a_correction_emits_run_events_and_folds_into_masks(tmp_path: Path) -> None:
    events = list(resegment(VIDEO, 5, [_cues(5)], PipelineConfig(), preset="shapes"))
    assert [e.type for e in events] == [
        "run_started",
        "backend",
        "cues_parsed",
        "keyframe_mask",
        "stage_timing",
        "run_finished",
    ]
    state = RunState.from_events(events)
    assert state.status == "finished" and state.keyframe == 5
    key = next(e for e in events if isinstance(e, ev.KeyframeMask))
    assert key.frame_idx == 5 and key.area > 0.5 * GT[5].sum()
    # the same events come back from a trace
    path = tmp_path / "reseg.jsonl"
    write_trace(path, events)
    assert [e.to_dict() for e in read_trace(path)] == [e.to_dict() for e in events]


def test_a_missing_target_number_is_an_empty_target() -> None:
    events = list(resegment(VIDEO, 2, [TargetCues(box=box_of(GT[2]), obj_id=2)], PipelineConfig()))
    keys = [e for e in events if isinstance(e, ev.KeyframeMask)]
    assert [k.target for k in keys] == [0, 1] and keys[0].area == 0 and keys[1].area > 0


class _Broken:
    info = BackendDescription("broken", True, "test double")

    def segment(self, frame: np.ndarray, cues: Any) -> Any:
        raise RuntimeError("segmenter exploded")


def test_bad_input_and_failures_end_in_an_error_event() -> None:
    outside = list(resegment(VIDEO, 99, [_cues(0)], PipelineConfig()))
    assert (
        outside[-1].type == "error" and outside[-1].for_stage == "input" and "outside" in outside[-1].message
    )
    none = list(resegment(VIDEO, 0, [], PipelineConfig()))
    assert none[-1].type == "error" and "no cues" in none[-1].message
    broken = list(resegment(VIDEO, 0, [_cues(0)], PipelineConfig(), segmenter=_Broken()))
    assert (
        broken[-1].type == "error"
        and broken[-1].for_stage == "segmenter"
        and "exploded" in broken[-1].message
    )
