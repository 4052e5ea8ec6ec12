"""Mask propagation by dense optical flow + colour re-segmentation (paper step 3b, weights-free).

The paper propagates the keyframe mask with XMem, forward over the frames after the keyframe and
backward over the frames before it. This stand-in does the same two passes without weights:

1. **warp**: DIS optical flow from the current frame to the previous one (OpenCV, at
   ``config.flow_max_side`` on the longer side) pulls the previous mask onto the current frame;
2. **re-segment**: a colour model of the object learnt on the keyframe (a 16^3-bin RGB histogram of
   the object against the rest of the frame) decides every pixel within a dilated band around the
   warped mask: ``0.4 * warped + 0.6 * P(object | colour) > 0.5``. The warp keeps the shape where
   colour is ambiguous; colour keeps edges sharp and follows fast motion the flow misses;
3. **occlusion**: when the mask shrinks below ``LOST_AREA`` of its keyframe area the target is
   *lost* and its mask is empty; every following frame (and that one) searches the whole frame for
   a component of object colour of plausible size, nearest the last place it was seen, and tracking
   resumes from there.

Frames are streamed with ``video.iter_frames`` (bounded memory); an empty keyframe mask stays empty
everywhere without decoding anything for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from videoseg.config import PipelineConfig
from videoseg.stages import BackendDescription, VideoSource

BINS_SHIFT = 4  # 256 >> 4 = 16 bins per channel
BINS = 256 >> BINS_SHIFT
COLOUR_EPS = 1e-4  # pseudo-density of every colour bin: a colour seen in neither histogram reads 0.5
WARP_WEIGHT = 0.4  # share of the warped mask in the per-pixel decision (colour gets the rest)
LOST_AREA = 0.15  # below this share of the keyframe area the target counts as occluded / lost
MIN_PURITY = 0.6  # mean P(object | colour) a tracked mask needs; below it the mask holds other things
SEARCH_PROB = 0.7  # colour probability a pixel needs to seed a re-detection
FULL_AREA = (0.6, 1.6)  # area of a re-detected *whole* target, relative to the keyframe area
PARTIAL_AREA = 0.25  # a partly visible target (coming out from behind something) needs this much
SHAPE_TOL = 0.35  # largest distance between log Hu moment signatures of a whole re-detected target
GATE_BASE = 1.5  # re-detection radius when just lost, in target sizes (sqrt of keyframe area)
GATE_GROWTH = 0.15  # ... growing by this many target sizes per frame the target stays lost
PARTIAL_GATE = 1.5  # partial re-detections only within this many target sizes of where it was lost


class FlowPropagator:
    """Propagator: ``propagate(video, keyframe, masks)`` yields ``(frame_idx, direction, (K, H, W) bool)``."""

    def __init__(self, config: PipelineConfig | None = None) -> None:
        self.max_side = int(config.flow_max_side) if config is not None else 480
        if self.max_side < 16:
            raise ValueError(f"flow_max_side must be at least 16, got {self.max_side}")
        self.info = BackendDescription(
            name="flow",
            weights_free=True,
            description=(
                f"DIS optical-flow warp at {self.max_side} px + keyframe colour model re-segmentation, "
                "forward then backward"
            ),
            model_id=None,
        )

    def propagate(
        self, video: VideoSource, keyframe: int, masks: np.ndarray
    ) -> Iterator[tuple[int, str, np.ndarray]]:
        """Spread keyframe masks (K, H, W) bool over the video, every frame but the keyframe once.

        Forward (keyframe+1 .. end) then backward (keyframe-1 .. 0), masks at original resolution.
        """
        num_frames = len(video)
        width, height = video.size
        masks = np.asarray(masks, dtype=bool)
        if masks.ndim != 3 or masks.shape[1:] != (height, width):
            raise ValueError(f"keyframe masks must be (K, {height}, {width}), got {masks.shape}")
        if not 0 <= keyframe < num_frames:
            raise ValueError(f"keyframe {keyframe} outside the video (0..{num_frames - 1})")
        empty = np.zeros_like(masks)
        if not masks.any():
            for idx in range(keyframe + 1, num_frames):
                yield idx, "forward", empty
            for idx in range(keyframe - 1, -1, -1):
                yield idx, "backward", empty
            return
        scale = min(1.0, self.max_side / max(width, height))
        work_size = (max(1, round(width * scale)), max(1, round(height * scale)))
        key_rgb = _frames_of(video, [keyframe])[0]
        for direction, frames in (
            ("forward", _stream(video, keyframe + 1, num_frames, reverse=False)),
            ("backward", _stream(video, 0, keyframe, reverse=True)),
        ):
            pass_ = _Pass(key_rgb, masks, work_size)
            for idx, rgb in frames:
                yield idx, direction, pass_.step(rgb)


class _Pass:
    """One direction of propagation from the keyframe."""

    def __init__(self, key_rgb: np.ndarray, masks: np.ndarray, work_size: tuple[int, int]) -> None:
        self.work_size = work_size
        self.out_size = (masks.shape[2], masks.shape[1])
        self.flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        key_small = _resize(key_rgb, work_size)
        self.prev_gray = cv2.cvtColor(key_small, cv2.COLOR_RGB2GRAY)
        bins = _colour_bins(key_small)
        w, h = work_size
        self.grid_x, self.grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        self.tracks: list[_Track | None] = []
        for m in masks:
            small = _resize(m.astype(np.float32), work_size)
            if not m.any():
                self.tracks.append(None)
                continue
            if not (small > 0.5).any():  # a target thinner than a work pixel: keep what is left
                small = (small > 0).astype(np.float32)
            fg = small > 0.5
            track = _Track(lut=_colour_lut(bins, fg), ref_area=float(fg.sum()), mask=fg.astype(np.float32))
            track.last_center = _center(fg)
            self.tracks.append(track)

    def step(self, rgb: np.ndarray) -> np.ndarray:
        """Masks (K, H, W) bool of the next frame in this pass."""
        small = _resize(rgb, self.work_size)
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        # Flow from the current frame back to the previous one: for each current pixel, where it was.
        flow = self.flow.calc(gray, self.prev_gray, None)
        map_x = self.grid_x + flow[..., 0]
        map_y = self.grid_y + flow[..., 1]
        bins = _colour_bins(small)
        out = np.zeros((len(self.tracks), self.out_size[1], self.out_size[0]), dtype=bool)
        for k, track in enumerate(self.tracks):
            if track is None:
                continue
            prob = track.lut[bins]
            mask = None
            if not track.lost:
                warped = cv2.remap(track.mask, map_x, map_y, cv2.INTER_LINEAR, borderValue=0)
                mask = _resegment(warped, prob, track.ref_area)
                if mask.sum() < LOST_AREA * track.ref_area:
                    mask = None
            if mask is None:
                mask = _search(prob, track)
            track.lost = mask is None
            if mask is None:
                track.mask = np.zeros_like(track.mask)
                continue
            track.mask = mask.astype(np.float32)
            track.last_center = _center(mask)
            if self.work_size == self.out_size:
                out[k] = mask
            else:
                up = cv2.resize(mask.astype(np.uint8) * 255, self.out_size, interpolation=cv2.INTER_LINEAR)
                out[k] = up > 127
        self.prev_gray = gray
        return out


def _resegment(warped: np.ndarray, prob: np.ndarray, ref_area: float) -> np.ndarray:
    """Per-pixel decision inside a band around the warped mask (see module docstring)."""
    core = warped > 0.5
    if not core.any():
        return core
    # The band grows with object size so that fast motion a few object-widths/10 away stays reachable.
    radius = max(3, round(0.3 * np.sqrt(max(ref_area, 1.0))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    band = cv2.dilate(core.astype(np.uint8), kernel) > 0
    score = WARP_WEIGHT * warped + (1.0 - WARP_WEIGHT) * prob
    mask = band & (score > 0.5)
    # Remove specks the colour test lets through and close pinholes.
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
    return mask


def _search(prob: np.ndarray, track: _Track) -> np.ndarray | None:
    """Re-detect a lost target: the object-coloured component of plausible size nearest its last place."""
    seeds = (prob > SEARCH_PROB).astype(np.uint8)
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(seeds, connectivity=8)
    best, best_dist = None, None
    lo, hi = SEARCH_AREA[0] * track.ref_area, SEARCH_AREA[1] * track.ref_area
    for label in range(1, count):
        area = stats[label, cv2.CC_STAT_AREA]
        if not lo <= area <= hi:
            continue
        cx, cy = centroids[label]
        dist = (cx - track.last_center[0]) ** 2 + (cy - track.last_center[1]) ** 2
        if best_dist is None or dist < best_dist:
            best, best_dist = label, dist
    if best is None:
        return None
    return labels == best


def _colour_bins(rgb: np.ndarray) -> np.ndarray:
    """(h, w) int32 index of each pixel's 16^3 RGB colour bin."""
    q = (rgb >> BINS_SHIFT).astype(np.int32)
    return (q[..., 0] * BINS + q[..., 1]) * BINS + q[..., 2]


def _colour_lut(bins: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """P(object | bin) from object vs rest-of-frame histograms, each normalised (equal priors)."""
    size = BINS**3
    fg_hist = np.bincount(bins[fg], minlength=size).astype(np.float64)
    bg_hist = np.bincount(bins[~fg], minlength=size).astype(np.float64)
    # Smooth so that unseen colours read 0.5 (no evidence) instead of 0/0.
    fg_p = (fg_hist + 0.5) / (fg_hist.sum() + 0.5 * size)
    bg_p = (bg_hist + 0.5) / (bg_hist.sum() + 0.5 * size)
    return (fg_p / (fg_p + bg_p)).astype(np.float32)


def _center(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return (float(xs.mean()), float(ys.mean())) if len(xs) else (0.0, 0.0)


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (image.shape[1], image.shape[0]) == size:
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _frames_of(video: VideoSource, indices: list[int]) -> np.ndarray:
    return video.frames(indices)


def _stream(video: VideoSource, start: int, stop: int, reverse: bool) -> Iterator[tuple[int, np.ndarray]]:
    """Frames start..stop-1 (reversed when asked), sequentially and with bounded memory."""
    if stop <= start:
        return
    wanted = range(stop - 1, start - 1, -1) if reverse else range(start, stop)
    expected = iter(wanted)
    iter_frames = getattr(video, "iter_frames", None)
    if iter_frames is not None:
        for idx, frame in iter_frames(start, stop, reverse=reverse):
            if idx == next(expected, None):
                yield int(idx), frame
            else:
                raise RuntimeError(f"video.iter_frames yielded frame {idx} out of order")
        return
    # A plain VideoSource: read in small chunks.
    chunk = 16
    order = list(wanted)
    for i in range(0, len(order), chunk):
        part = order[i : i + chunk]
        for idx, frame in zip(part, video.frames(part)):
            yield idx, frame


__all__ = ["FlowPropagator"]
