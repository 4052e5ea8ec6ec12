"""Optical-flow propagation: order, accuracy on moving / fast / occluded objects, empty masks, streaming."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from tests.support.fakes import moving_square_frames
from videoseg.core.config import PipelineConfig
from videoseg.io.video import ArrayVideo
from videoseg.propagation.flow import FlowPropagator
from videoseg.propagation.stage import both_ways


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return 1.0 if union == 0 else float((a & b).sum() / union)


def _run(
    video: ArrayVideo, keyframe: int, masks: np.ndarray, **cfg: object
) -> dict[int, tuple[str, np.ndarray]]:
    out: dict[int, tuple[str, np.ndarray]] = {}
    order = []
    for idx, direction, m in both_ways(FlowPropagator(PipelineConfig(**cfg)), video, keyframe, masks):
        assert idx not in out
        out[idx] = (direction, m)
        order.append(idx)
    n = len(video)
    assert order == [*range(keyframe + 1, n), *range(keyframe - 1, -1, -1)]
    return out


def test_tracks_a_moving_square_both_ways() -> None:
    frames, gt = moving_square_frames(num_frames=30, step=2)
    key = 12
    out = _run(ArrayVideo(frames, 10), key, gt[key][None])
    assert all(out[i][0] == ("forward" if i > key else "backward") for i in out)
    assert all(out[i][1].shape == (1, 72, 96) and out[i][1].dtype == bool for i in out)
    ious = [_iou(out[i][1][0], gt[i]) for i in out]
    assert min(ious) > 0.85


def test_fast_motion_is_followed_by_the_colour_model() -> None:
    # 9 px per frame for a 12 px square: more than the flow's comfortable range.
    frames, gt = moving_square_frames(num_frames=9, size=(128, 64), side=12, step=9)
    out = _run(ArrayVideo(frames, 10), 0, gt[0][None])
    ious = [_iou(out[i][1][0], gt[i]) for i in range(1, 9)]
    assert np.mean(ious) > 0.8


def _occluded_scene() -> tuple[np.ndarray, np.ndarray]:
    """A red square moving right passes fully behind a grey wall (frames 8..11) and comes out."""
    width, height, side = 120, 60, 10
    frames = np.full((24, height, width, 3), (30, 90, 140), dtype=np.uint8)
    gt = np.zeros((24, height, width), dtype=bool)
    for t in range(24):
        x0 = 5 + 4 * t
        gt[t, 25 : 25 + side, x0 : x0 + side] = True
    wall = np.zeros((height, width), dtype=bool)
    wall[:, 40:56] = True  # wider than the square: it disappears entirely for a few frames
    gt &= ~wall[None]
    frames[gt] = (220, 40, 40)
    frames[:, wall] = (128, 128, 128)
    return frames, gt


def test_recovers_after_full_occlusion() -> None:
    frames, gt = _occluded_scene()
    hidden = [t for t in range(24) if not gt[t].any()]
    assert hidden  # the scene does hide the square
    out = _run(ArrayVideo(frames, 10), 0, gt[0][None])
    for t in hidden:
        assert out[t][1][0].sum() < 0.3 * gt[0].sum()  # reported (nearly) gone, not stuck on the wall
    after = [t for t in range(max(hidden) + 2, 24)]
    assert np.mean([_iou(out[t][1][0], gt[t]) for t in after]) > 0.8


def test_two_targets_are_tracked_separately() -> None:
    frames, gt_a = moving_square_frames(num_frames=16, size=(128, 80), side=14, step=3)
    gt_b = np.zeros_like(gt_a)
    for t in range(16):
        y0, x0 = 60, 100 - 3 * t
        gt_b[t, y0 : y0 + 12, x0 : x0 + 12] = True
        frames[t][gt_b[t]] = (250, 230, 30)
    gt_a &= ~gt_b
    key = 8
    out = _run(ArrayVideo(frames, 10), key, np.stack([gt_a[key], gt_b[key]]))
    assert np.mean([_iou(out[i][1][0], gt_a[i]) for i in out]) > 0.85
    assert np.mean([_iou(out[i][1][1], gt_b[i]) for i in out]) > 0.85


def test_downscaled_work_resolution_returns_full_size_masks() -> None:
    frames, gt = moving_square_frames(num_frames=10, size=(320, 180), side=40, step=4)
    out = _run(ArrayVideo(frames, 10), 5, gt[5][None], flow_max_side=96)
    assert all(m.shape == (1, 180, 320) for _, m in out.values())
    assert np.mean([_iou(out[i][1][0], gt[i]) for i in out]) > 0.85


class _NoDecode:
    """A video that fails if any frame is decoded."""

    fps = 10.0
    size = (32, 24)

    def __len__(self) -> int:
        return 7

    def frames(self, indices: Sequence[int]) -> np.ndarray:
        raise AssertionError("decoded a frame")


def test_empty_keyframe_mask_stays_empty_without_decoding() -> None:
    masks = np.zeros((2, 24, 32), dtype=bool)
    got = list(both_ways(FlowPropagator(PipelineConfig()), _NoDecode(), 3, masks))  # type: ignore[arg-type]
    assert [i for i, _, _ in got] == [4, 5, 6, 2, 1, 0]
    assert all(m.shape == (2, 24, 32) and not m.any() for _, _, m in got)


class _Recording(ArrayVideo):
    """Records how frames are read, to check the propagator streams instead of loading everything."""

    def __init__(self, frames: np.ndarray, fps: float) -> None:
        super().__init__(frames, fps)
        self.batch_sizes: list[int] = []
        self.streams: list[tuple[int, int | None, bool]] = []

    def frames(self, indices: Sequence[int]) -> np.ndarray:
        self.batch_sizes.append(len(indices))
        return super().frames(indices)

    def iter_frames(
        self, start: int = 0, stop: int | None = None, step: int = 1, reverse: bool = False
    ) -> Iterator[tuple[int, np.ndarray]]:
        self.streams.append((start, stop, reverse))
        return super().iter_frames(start, stop, step, reverse)


def test_frames_are_streamed() -> None:
    frames, gt = moving_square_frames(num_frames=12)
    video = _Recording(frames, 10)
    _run(video, 4, gt[4][None])
    assert video.batch_sizes == [1, 1]  # only the keyframe is read directly, once per direction
    assert video.streams == [(5, 12, False), (0, 4, True)]


class _PlainSource:
    """Only the VideoSource protocol: no iter_frames."""

    def __init__(self, frames: np.ndarray) -> None:
        self._frames = frames
        self.fps = 10.0
        self.size = (frames.shape[2], frames.shape[1])

    def __len__(self) -> int:
        return len(self._frames)

    def frames(self, indices: Sequence[int]) -> np.ndarray:
        return self._frames[list(indices)]


def test_works_on_a_plain_video_source() -> None:
    # 38 frames: the fake square wraps around to the left border after frame 37 (a teleport the
    # propagator rightly refuses to follow).
    frames, gt = moving_square_frames(num_frames=38)
    got = list(both_ways(FlowPropagator(PipelineConfig()), _PlainSource(frames), 20, gt[20][None]))  # type: ignore[arg-type]
    assert [i for i, _, _ in got] == [*range(21, 38), *range(19, -1, -1)]
    assert min(_iou(m[0], gt[i]) for i, _, m in got) > 0.85


@pytest.mark.parametrize(
    ("keyframe", "shape", "message"),
    [
        (0, (1, 10, 10), "keyframe masks"),
        (99, (1, 72, 96), "outside the video"),
        (-1, (1, 72, 96), "outside"),
    ],
)
def test_bad_input_is_rejected(keyframe: int, shape: tuple[int, ...], message: str) -> None:
    frames, _ = moving_square_frames(num_frames=5)
    with pytest.raises(ValueError, match=message):
        list(
            both_ways(
                FlowPropagator(PipelineConfig()), ArrayVideo(frames, 10), keyframe, np.ones(shape, bool)
            )
        )


# --------------------------------------------------------------------------- robustness: leave, hide, distractors


def _scene(num_frames: int, width: int = 160, height: int = 80) -> np.ndarray:
    """A flat blue-grey background with a little texture (as compressed real frames have)."""
    rng = np.random.default_rng(0)
    frames = np.full((num_frames, height, width, 3), (60, 110, 150), dtype=np.int16)
    frames += rng.integers(-6, 7, size=(1, height, width, 1), dtype=np.int16)
    return frames.clip(0, 255).astype(np.uint8)


def _disc(height: int, width: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def _triangle(height: int, width: int, cx: float, cy: float, r: float) -> np.ndarray:
    import cv2

    pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], dtype=np.int32)
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [pts], 1)
    return mask > 0


def test_mask_vanishes_once_the_object_has_left_the_frame() -> None:
    # A red disc runs out through the right border at 6 px / frame; once gone, nothing must linger,
    # not even on a yellow square (a colour the keyframe never showed) that comes in afterwards.
    frames = _scene(26)
    gt = np.zeros(frames.shape[:3], dtype=bool)
    for t in range(26):
        gt[t] = _disc(80, 160, 60 + 6 * t, 40, 9)
        frames[t][gt[t]] = (220, 40, 40)
        if t >= 18:
            frames[t, 10:30, 140:160] = (230, 210, 40)
    gone = [t for t in range(26) if not gt[t].any()]
    assert len(gone) >= 5
    out = _run(ArrayVideo(frames, 10), 0, gt[0][None])
    for t in gone:
        assert not out[t][1][0].any(), f"frame {t}: mask left behind after the object went out"
    inside = [t for t in range(1, 26) if gt[t].sum() > 0.8 * gt[0].sum()]
    assert np.mean([_iou(out[t][1][0], gt[t]) for t in inside]) > 0.85


def test_occluded_object_is_reacquired_and_not_replaced_by_a_same_colour_distractor() -> None:
    # A red disc passes behind a grey wall (hidden for several frames) and comes out on the other
    # side; a red triangle (same colour, other shape, similar size) sits still near the wall. While
    # the disc is hidden its mask must stay empty (not jump to the triangle); once out it is found.
    n, height, width = 30, 80, 200
    frames = _scene(n, width, height)
    wall = np.zeros((height, width), dtype=bool)
    wall[:, 80:112] = True
    triangle = _triangle(height, width, 134, 64, 10)
    gt = np.zeros((n, height, width), dtype=bool)
    for t in range(n):
        gt[t] = _disc(height, width, 40 + 4 * t, 30, 9) & ~wall
        frames[t][gt[t]] = (220, 40, 40)
        frames[t][wall] = (128, 128, 128)
        frames[t][triangle & ~wall] = (220, 40, 40)
    hidden = [t for t in range(n) if not gt[t].any()]
    assert len(hidden) >= 3
    out = _run(ArrayVideo(frames, 10), 0, gt[0][None])
    for t in hidden:
        assert not (out[t][1][0] & triangle).any(), f"frame {t}: jumped to the same-colour triangle"
        assert out[t][1][0].sum() < 0.3 * gt[0].sum()
    back = [t for t in range(max(hidden) + 1, n) if gt[t].sum() > 0.9 * gt[0].sum()]
    assert len(back) >= 5
    assert np.mean([_iou(out[t][1][0], gt[t]) for t in back]) > 0.8
    assert not any((out[t][1][0] & triangle).any() for t in out)


def test_absent_target_is_not_replaced_by_a_same_colour_different_shape_object() -> None:
    # Backward from the keyframe the target disc pops out of existence (it "appears" at frame 12);
    # a red triangle of similar size moves nearby the whole time. Before frame 12 the mask is empty.
    n, height, width = 24, 80, 160
    frames = _scene(n, width, height)
    gt = np.zeros((n, height, width), dtype=bool)
    tri = np.zeros((n, height, width), dtype=bool)
    for t in range(n):
        tri[t] = _triangle(height, width, 40 + 2 * t, 40, 11)
        frames[t][tri[t]] = (220, 40, 40)
        if t >= 12:
            gt[t] = _disc(height, width, 110, 40, 10)
            frames[t][gt[t]] = (220, 40, 40)
    key = 18
    out = _run(ArrayVideo(frames, 10), key, gt[key][None])
    for t in range(12):
        assert not out[t][1][0].any(), f"frame {t}: picked up the triangle while the disc is absent"
    assert min(_iou(out[t][1][0], gt[t]) for t in range(12, n) if t != key) > 0.85


@pytest.mark.parametrize(
    ("shape_a", "shape_b", "same"),
    [
        ("disc", "disc", True),
        ("disc", "triangle", False),
        ("disc", "square", False),
        ("square", "triangle", False),
        ("square", "square", True),
    ],
)
def test_shape_signature_tells_shapes_apart(shape_a: str, shape_b: str, same: bool) -> None:
    from videoseg.propagation.flow import SHAPE_TOL, _shape_distance, _shape_signature

    def draw(kind: str, r: float, cx: float) -> np.ndarray:
        if kind == "disc":
            return _disc(100, 200, cx, 50, r)
        if kind == "triangle":
            return _triangle(100, 200, cx, 50, r)
        m = np.zeros((100, 200), dtype=bool)
        m[int(50 - r) : int(50 + r), int(cx - r) : int(cx + r)] = True
        return m

    # Different sizes and places: the signature must not care about either.
    a, b = _shape_signature(draw(shape_a, 12, 50)), _shape_signature(draw(shape_b, 18, 140))
    assert (_shape_distance(a, b) <= SHAPE_TOL) == same
