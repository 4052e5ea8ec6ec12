"""Per-propagator diagnosis (paper step 3b): where masks drift, the worst frame, speed and memory.

Table-driven on synthetic mask tracks whose drift frame is known by construction, plus the plots and
the table built from them.
"""

from __future__ import annotations

import numpy as np
import pytest

from videoseg.core import events as ev
from videoseg.core.masks import encode_rle
from videoseg.core.state import RunState
from videoseg.eval.diagnosis import DRIFT_IOU, diagnose_run, track_diagnosis
from videoseg.viz.curves import DIAGNOSIS_HEADERS, diagnosis_rows, drift_figure, side_by_side

H, W = 20, 40


def _track(positions: list[int | None], size: int = 8) -> np.ndarray:
    """A square whose left edge is at ``positions[t]`` (None: no mask on that frame)."""
    masks = np.zeros((len(positions), H, W), dtype=bool)
    for t, x in enumerate(positions):
        if x is not None:
            masks[t, 6 : 6 + size, x : x + size] = True
    return masks


@pytest.mark.parametrize(
    ("positions", "keyframe", "drift"),
    [
        ([2, 3, 4, 5, 6, 7], 0, None),  # moves 1 px a frame: IoU 7/9 > 0.5 everywhere
        ([2, 3, 4, 20, 21, 22], 0, 3),  # jumps away at frame 3
        ([2, 3, 4, 5, None, None], 0, 4),  # lost at frame 4
        ([20, 20, 2, 3, 4, 5], 5, 1),  # backward from keyframe 5: frames 5..2 smooth, 1 jumps
        ([20, 2, 3, 4, 5, 30], 2, 0),  # both sides jump (frames 0 and 5): the one nearer the keyframe
        ([None, None, None], 1, None),  # empty everywhere: IoU 1, nothing drifts
    ],
)
def test_drift_starts_where_the_overlap_with_the_neighbour_drops(positions, keyframe, drift):
    d = track_diagnosis(_track(positions), keyframe)
    assert d.drift_frame == drift
    assert d.iou_prev[0] is None and len(d.iou_prev) == len(positions)
    assert d.areas == [0 if x is None else 64 for x in positions]


def test_iou_with_the_previous_frame_is_exact():
    d = track_diagnosis(_track([2, 3, 12]))
    assert d.iou_prev[1] == pytest.approx(56 / 72)  # 7 of 8 columns shared
    assert d.iou_prev[2] == 0.0
    assert DRIFT_IOU == 0.5


def test_worst_frame_without_and_with_ground_truth():
    masks = _track([2, 3, 4, 20, 21])
    d = track_diagnosis(masks, 0)
    assert d.worst_frame == 3 and "previous frame" in d.worst_reason and d.jf is None
    gt = _track([2, 3, 4, 5, 6])
    d = track_diagnosis(masks, 0, gt=gt)
    assert d.worst_reason.startswith("lowest J&F") and len(d.jf) == 5
    assert d.worst_frame in (3, 4) and d.jf[0] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("timing", "fps", "peak"),
    [
        (None, None, None),
        ({"frames_per_second": 12.5, "peak_cuda_mb": 2048.0}, 12.5, 2048.0),
        ({"frames_per_second": 3.0, "peak_rss_mb": 900.0}, 3.0, 900.0),
    ],
)
def test_speed_and_memory_come_from_the_stage_timing(timing, fps, peak):
    d = track_diagnosis(_track([1, 2]), 0, timing=timing)
    assert d.frames_per_second == fps and d.peak_memory_mb == peak


def test_bad_shape_is_refused():
    with pytest.raises(ValueError, match=r"\(T, H, W\)"):
        track_diagnosis(np.zeros((H, W), bool))


def _state(positions: list[int | None], keyframe: int) -> RunState:
    masks = _track(positions)
    events = [
        ev.RunStarted(query="q", video={"num_frames": len(masks), "width": W, "height": H}, config={}),
        ev.PropagationStarted(keyframe=keyframe, num_frames=len(masks), num_targets=1),
    ]
    events += [
        ev.PropagatedMask(
            frame_idx=t,
            direction="keyframe" if t == keyframe else "forward",
            rles=[encode_rle(m)],
            done=t + 1,
            total=len(masks),
        )
        for t, m in enumerate(masks)
    ]
    events.append(ev.StageTiming(for_stage="propagator", seconds=1.0, details={"frames_per_second": 4.0}))
    return RunState.from_events(events)


def test_a_run_state_is_diagnosed_from_its_events():
    d = diagnose_run(_state([2, 3, 20], keyframe=0))
    assert d.drift_frame == 2 and d.frames_per_second == 4.0 and d.keyframe == 0


def test_plot_table_and_side_by_side():
    diagnoses = {
        "xmem": track_diagnosis(_track([2, 3, 20]), 0),
        "edgetam <b>": track_diagnosis(_track([2, 3, 4]), 0),
    }
    fig = drift_figure(diagnoses)
    names = {t.name for t in fig.data}
    assert "xmem" in names and "edgetam &lt;b&gt;" in names  # names are data: escaped
    assert any(t.mode == "markers" for t in fig.data)  # the drift cross of xmem
    rows = diagnosis_rows(diagnoses)
    assert len(rows[0]) == len(DIAGNOSIS_HEADERS) and rows[0][3] == 2 and rows[1][3] == "none"
    image = side_by_side(
        [("a", np.zeros((20, 40, 3), np.uint8)), ("b", np.zeros((10, 10, 3), np.uint8))], height=60
    )
    assert image.shape == (82, 120 + 6 + 60, 3)
    with pytest.raises(ValueError):
        side_by_side([])
