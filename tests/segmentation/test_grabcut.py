"""GrabCut keyframe segmentation from box / point / negative cues, and its agreement score."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from videoseg.core.cues import TargetCues
from videoseg.segmentation.grabcut import GrabCutSegmenter, agreement_score, grow_box


def _scene(width: int = 160, height: int = 120, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Textured greenish background so that GrabCut has real colour statistics to learn.
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    frame[..., 1] = 120
    frame[..., 2] = 60
    noise = rng.integers(-25, 25, size=(height, width, 3))
    return np.clip(frame.astype(int) + noise, 0, 255).astype(np.uint8)


def _disc(
    frame: np.ndarray, center: tuple[int, int], radius: int, colour: tuple[int, int, int]
) -> np.ndarray:
    mask = np.zeros(frame.shape[:2], dtype=np.uint8)
    cv2.circle(mask, center, radius, 1, -1)
    frame[mask > 0] = colour
    return mask > 0


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_box_and_point_give_the_object() -> None:
    frame = _scene()
    gt = _disc(frame, (70, 60), 22, (230, 40, 40))
    cues = TargetCues(box=[46, 36, 94, 84], point=[70, 60])
    mask, score = GrabCutSegmenter().segment(frame, cues)
    assert mask.shape == gt.shape and mask.dtype == bool
    assert _iou(mask, gt) > 0.85
    assert score > 0.8


def test_negative_point_removes_a_touching_neighbour() -> None:
    frame = _scene()
    left = _disc(frame, (60, 60), 18, (230, 40, 40))
    right = _disc(frame, (96, 60), 18, (40, 40, 230))
    box = [40.0, 40.0, 116.0, 80.0]  # a sloppy box around both
    with_neg, _ = GrabCutSegmenter().segment(frame, TargetCues(box=box, point=[60, 60], negatives=[[96, 60]]))
    assert _iou(with_neg, left) > 0.75
    assert (with_neg & right).sum() < 0.1 * right.sum()


def test_point_only_grows_a_box_around_the_colour_region() -> None:
    frame = _scene()
    gt = _disc(frame, (100, 50), 15, (240, 220, 30))
    mask, score = GrabCutSegmenter().segment(frame, TargetCues(point=[100, 50]))
    assert _iou(mask, gt) > 0.8
    assert score == 1.0  # only a point: it is inside the mask


def test_large_frames_are_downscaled_and_the_mask_upsampled() -> None:
    frame = _scene(1280, 720)
    gt = _disc(frame, (640, 360), 150, (230, 40, 40))
    mask, _ = GrabCutSegmenter().segment(frame, TargetCues(box=[480, 200, 800, 520], point=[640, 360]))
    assert mask.shape == (720, 1280)
    assert _iou(mask, gt) > 0.9


def test_degenerate_cues_do_not_crash() -> None:
    seg = GrabCutSegmenter()
    frame = _scene()
    # A box over the whole frame: GrabCut has no background sample unless the border is lent as one.
    whole, _ = seg.segment(frame, TargetCues(box=[0, 0, 159, 119]))
    assert whole.shape == (120, 160)
    # A flat frame: no colour statistics at all.
    flat = np.full((60, 80, 3), 128, dtype=np.uint8)
    mask, score = seg.segment(flat, TargetCues(box=[10, 10, 50, 40], point=[30, 25]))
    assert mask.shape == (60, 80) and 0.0 <= score <= 1.0
    # A box of 2 pixels is returned as is.
    tiny, _ = seg.segment(frame, TargetCues(box=[5, 5, 6, 6]))
    assert tiny.sum() == 4
    # Cues entirely outside the frame: nothing to segment.
    none, score = seg.segment(frame, TargetCues(negatives=[[3, 3]]))
    assert not none.any() and score == 0.0


def test_rejects_a_non_rgb_frame() -> None:
    with pytest.raises(ValueError, match="frame"):
        GrabCutSegmenter().segment(np.zeros((10, 10), np.uint8), TargetCues(point=[1, 1]))


def test_grow_box_falls_back_to_a_fixed_square_on_a_flat_frame() -> None:
    flat = np.full((100, 200, 3), 90, dtype=np.uint8)
    # The whole frame floods: too big to be the object -> a square of a quarter of the shorter side.
    assert grow_box(flat, [100, 50]) == pytest.approx([87.5, 37.5, 112.5, 62.5])


_M = np.zeros((20, 20), dtype=bool)
_M[5:15, 5:15] = True


@pytest.mark.parametrize(
    ("cues", "expected"),
    [
        (TargetCues(point=[10, 10]), 1.0),
        (TargetCues(point=[1, 1]), 0.0),
        (TargetCues(box=[5, 5, 14, 14]), 1.0),  # box equals the mask's bounding box
        (TargetCues(box=[5, 5, 24, 14]), 0.5),  # box twice as wide as the mask: IoU 0.5
        (TargetCues(point=[10, 10], negatives=[[1, 1], [10, 12]]), 0.75),  # (1 + 0.5) / 2
    ],
)
def test_agreement_score(cues: TargetCues, expected: float) -> None:
    assert agreement_score(_M, cues) == pytest.approx(expected)
    assert agreement_score(np.zeros_like(_M), cues) == 0.0
