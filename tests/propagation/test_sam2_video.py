"""SAM2 video propagation (paper step 3b alternative) on a tiny random Sam2VideoModel.

The protocol is what is tested: every frame but the keyframe exactly once, forward then backward,
(K, H, W) bool at original resolution, empty keyframe masks stay empty, bounded reads and memory, and
that dropping old session state changes no model output.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.support.tiny_models import tiny_sam2_video_dir, torch_single_thread  # noqa: F401  (fixtures)
from videoseg.core.config import PipelineConfig
from videoseg.io.video import ArrayVideo
from videoseg.propagation.sam2_video import READ_CHUNK, Sam2VideoPropagator
from videoseg.propagation.stage import both_ways

H, W = 48, 64


def _video(n: int, seed: int = 0) -> ArrayVideo:
    frames = np.random.default_rng(seed).integers(0, 256, (n, H, W, 3), dtype=np.uint8)
    return ArrayVideo(frames, fps=10.0)


def _masks(k: int = 2) -> np.ndarray:
    masks = np.zeros((k, H, W), dtype=bool)
    masks[0, 10:30, 12:40] = True
    if k > 1:
        masks[1, 5:15, 45:60] = True
    return masks


@pytest.fixture(scope="module")
def config(tiny_sam2_video_dir):  # noqa: F811
    return PipelineConfig(propagator="sam2", sam2_model=str(tiny_sam2_video_dir), device="cpu")


@pytest.fixture(scope="module")
def propagator(config):
    return Sam2VideoPropagator(config)


@pytest.mark.parametrize(("n", "keyframe"), [(7, 3), (5, 0), (5, 4)])
def test_every_frame_once_forward_then_backward(propagator, n, keyframe):
    out = list(both_ways(propagator, _video(n), keyframe, _masks()))
    order = [(idx, direction) for idx, direction, _ in out]
    expected = [(i, "forward") for i in range(keyframe + 1, n)]
    expected += [(i, "backward") for i in range(keyframe - 1, -1, -1)]
    assert order == expected
    for _, _, masks in out:
        assert masks.shape == (2, H, W) and masks.dtype == bool


def test_empty_keyframe_stays_empty_without_running_the_model(propagator):
    calls = []
    hook = propagator.model.register_forward_hook(lambda *a: calls.append(1))
    try:
        out = list(both_ways(propagator, _video(5), 2, np.zeros((2, H, W), dtype=bool)))
    finally:
        hook.remove()
    assert not calls
    assert [i for i, _, _ in out] == [3, 4, 1, 0]
    assert all(not m.any() and m.shape == (2, H, W) for _, _, m in out)


def test_an_empty_target_stays_empty_beside_a_tracked_one(propagator):
    masks = _masks()
    masks[0] = False
    logits = []
    hook = propagator.model.register_forward_hook(lambda m, a, out: logits.append(out.pred_masks))
    try:
        out = list(both_ways(propagator, _video(5), 2, masks))
    finally:
        hook.remove()
    assert all(t.shape[0] == 1 for t in logits)  # only the non-empty target is tracked
    assert all(not m[0].any() for _, _, m in out)


def test_bad_masks_are_clear_errors(propagator):
    with pytest.raises(ValueError, match="keyframe masks must be"):
        list(both_ways(propagator, _video(4), 1, np.ones((2, H + 1, W), dtype=bool)))
    with pytest.raises(ValueError, match="outside"):
        list(both_ways(propagator, _video(4), 4, _masks()))


def test_frames_are_read_in_bounded_chunks_in_tracking_order(propagator):
    video = _video(2 * READ_CHUNK + 3)
    reads = []
    original = video.frames

    def spy(indices):
        reads.append(list(indices))
        return original(indices)

    video.frames = spy
    keyframe = READ_CHUNK + 1
    list(both_ways(propagator, video, keyframe, _masks()))
    assert all(len(r) <= READ_CHUNK for r in reads)
    flat = [i for r in reads for i in r]
    forward = [keyframe, *range(keyframe + 1, len(video))]
    backward = [keyframe, *range(keyframe - 1, -1, -1)]
    assert flat == forward + backward


def _run_logits(config, window, n=20):
    propagator = Sam2VideoPropagator(config, memory_window=window)
    logits = []
    sessions = []
    forget = propagator._forget

    def remember(session, step):  # the last session each direction leaves behind
        forget(session, step)
        sessions.append(session)

    propagator._forget = remember
    hook = propagator.model.register_forward_hook(lambda m, a, out: logits.append(out.pred_masks.clone()))
    try:
        masks = [m for _, _, m in both_ways(propagator, _video(n, seed=4), 0, _masks())]
    finally:
        hook.remove()
    return propagator, torch.stack(logits), masks, sessions[-1]


def test_forgetting_old_state_changes_no_output_and_bounds_memory(config):
    reference, ref_logits, ref_masks, full_session = _run_logits(config, window=None)
    pruned, logits, masks, session = _run_logits(config, window="auto")
    assert pruned.memory_window == 15  # tiny config: 7 memory frames, 16 object pointers -> reach 15
    assert reference.memory_window is None
    assert torch.allclose(logits, ref_logits)
    assert all(np.array_equal(a, b) for a, b in zip(masks, ref_masks))
    # What the pruned session still holds: one frame of pixels, memory_window frames of outputs.
    assert len(session.processed_frames) <= 1
    for per_obj in session.output_dict_per_obj.values():
        assert len(per_obj["non_cond_frame_outputs"]) <= pruned.memory_window + 1
    full = full_session.output_dict_per_obj[0]["non_cond_frame_outputs"]
    assert len(full) == 19


def test_small_window_keeps_few_outputs(config):
    _, _, masks, session = _run_logits(config, window=3, n=10)
    assert len(masks) == 9
    for per_obj in session.output_dict_per_obj.values():
        assert sorted(per_obj["non_cond_frame_outputs"]) == [6, 7, 8, 9]
