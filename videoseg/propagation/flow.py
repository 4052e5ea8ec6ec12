"""Mask propagation by dense optical flow + colour re-segmentation (paper step 3b, weights-free).

The paper propagates the keyframe mask with XMem, forward over the frames after the keyframe and
backward over the frames before it. This stand-in does the same two passes without weights:

1. **warp**: DIS optical flow from the current frame to the previous one (OpenCV, at
   ``config.flow_max_side`` on the longer side) pulls the previous mask onto the current frame;
2. **re-segment**: a colour model of the object learnt on the keyframe (16^3-bin RGB densities of
   the object and of the rest of the frame, P(object | colour) with equal priors; a colour seen in
   neither reads 0.5) decides every pixel within a dilated band around the warped mask:
   ``0.4 * warped + 0.6 * P(object | colour) > 0.5``. The warp keeps the shape where colour is
   ambiguous; colour keeps edges sharp and follows fast motion the flow misses. Only the pieces the
   warp supports are kept, so a same-coloured neighbour brushing the band is not annexed;
3. **lost**: when the mask shrinks below ``LOST_AREA`` of its keyframe area (hidden, or gone out
   through the border) or what is left is mostly not of the object's colour, the target is *lost*
   and its mask is EMPTY: it vanishes rather than lingers or jumps to another object;
4. **re-acquire**: while lost, each frame looks for a connected component of object colour that is
   either the *whole* target (area within ``FULL_AREA`` of the keyframe's and the same shape:
   rotation/scale-invariant descriptors within ``SHAPE_TOL``) no farther from where it should be
   than a radius growing with the frames spent lost, or a *partly visible* target close to where it
   should be (coming out from behind an occluder). "Where it should be" spans from the last sighting
   to where its last motion (learnt from whole views only) would have carried it.

Everything the propagator knows about the target comes from the keyframe mask (colour, area,
shape) and the track itself; nothing is specific to a data set.

Frames are streamed with ``video.iter_frames`` (bounded memory); an empty keyframe mask stays empty
everywhere without decoding anything for it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from videoseg.core.config import PipelineConfig
from videoseg.core.cues import TargetCues
from videoseg.core.interfaces import BackendDescription, VideoSource
from videoseg.propagation.stage import check_start

BINS_SHIFT = 4  # 256 >> 4 = 16 bins per channel
BINS = 256 >> BINS_SHIFT
COLOUR_EPS = 1e-4  # pseudo-density of every colour bin: a colour seen in neither histogram reads 0.5
WARP_WEIGHT = 0.4  # share of the warped mask in the per-pixel decision (colour gets the rest)
LOST_AREA = 0.15  # below this share of the keyframe area the target counts as occluded / lost
MIN_PURITY = 0.6  # mean P(object | colour) a tracked mask needs; below it the mask holds other things
SEARCH_PROB = 0.7  # colour probability a pixel needs to seed a re-detection
FULL_AREA = (0.6, 1.6)  # area of a re-detected *whole* target, relative to the keyframe area
WHOLE_AREA = 0.7  # a mask this share of the keyframe area is a whole view (to learn the motion from)
PARTIAL_AREA = 0.25  # a partly visible target (coming out from behind something) needs this much
SHAPE_TOL = 0.15  # largest difference of shape descriptors (see _shape_signature) of a whole re-detection
GATE_BASE = 1.5  # re-detection radius when just lost, in target sizes (sqrt of keyframe area)
GATE_GROWTH = 0.15  # ... growing by this many target sizes per frame the target stays lost
PARTIAL_GATE = 1.5  # partial re-detections only within this many target sizes of where it was lost


@dataclass
class _Track:
    """Per-target state of one propagation pass (all at work resolution)."""

    lut: np.ndarray  # (BINS^3,) float32: P(object | colour bin)
    ref_area: float  # keyframe area in work pixels
    ref_shape: np.ndarray  # shape descriptors of the keyframe mask (_shape_signature)
    mask: np.ndarray  # (h, w) float32 in [0, 1]: the last mask (soft after warping)
    lost: bool = False
    lost_frames: int = 0  # frames since the target was last seen
    last_center: tuple[float, float] = (0.0, 0.0)
    last_area: float = 0.0  # area of the last mask
    velocity: tuple[float, float] = (0.0, 0.0)  # smoothed motion of the centre, work pixels per frame

    @property
    def size(self) -> float:
        return float(np.sqrt(max(self.ref_area, 1.0)))


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
        self,
        video: VideoSource,
        start: int,
        masks: np.ndarray,
        direction: str,
        cues: Sequence[TargetCues] | None = None,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Carry the masks (K, H, W) bool of frame ``start`` one way through the video (see
        :class:`~videoseg.core.interfaces.Propagator`); masks at original resolution. Cues are not used."""
        num_frames = len(video)
        width, height = video.size
        masks = np.asarray(masks, dtype=bool)
        check_start(video, start, masks, direction)
        scale = min(1.0, self.max_side / max(width, height))
        work_size = (max(1, round(width * scale)), max(1, round(height * scale)))
        key_rgb = _frames_of(video, [start])[0]
        if direction == "forward":
            frames = _stream(video, start + 1, num_frames, reverse=False)
        else:
            frames = _stream(video, 0, start, reverse=True)
        pass_ = _Pass(key_rgb, masks, work_size)
        for idx, rgb in frames:
            yield idx, pass_.step(rgb)


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
            track = _Track(
                lut=_colour_lut(bins, fg),
                ref_area=float(fg.sum()),
                ref_shape=_shape_signature(fg),
                mask=fg.astype(np.float32),
            )
            track.last_center = _center(fg)
            track.last_area = track.ref_area
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
                # Lost when too little is left (hidden, or gone through the border) or when what is
                # left is mostly not of the object's colour (the band slid onto an occluder's edge).
                if mask.sum() < LOST_AREA * track.ref_area or float(prob[mask].mean()) < MIN_PURITY:
                    mask = None
            if mask is None:
                mask = _search(prob, track)
            if mask is None:
                track.lost = True
                track.lost_frames += 1
                track.mask = np.zeros_like(track.mask)
                continue
            center, area = _center(mask), float(mask.sum())
            # Learn the motion only from whole views: while the target slides behind something the
            # centre of its visible part moves backwards.
            whole = min(area, track.last_area) >= WHOLE_AREA * track.ref_area
            if not track.lost and whole:
                vx, vy = track.velocity
                dx, dy = center[0] - track.last_center[0], center[1] - track.last_center[1]
                track.velocity = (0.7 * vx + 0.3 * dx, 0.7 * vy + 0.3 * dy)
            track.lost, track.lost_frames = False, 0
            track.mask = mask.astype(np.float32)
            track.last_center, track.last_area = center, area
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
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    # Keep only the pieces the warp supports: a same-coloured neighbour entering the band is another
    # object, not part of this one.
    count, labels = cv2.connectedComponents(mask, connectivity=8)
    if count <= 2:
        return mask > 0
    support = np.bincount(labels[core], minlength=count)
    support[0] = 0
    return np.isin(labels, np.flatnonzero(support))


def _search(prob: np.ndarray, track: _Track) -> np.ndarray | None:
    """Re-detect a lost target, or None (it stays absent rather than jump to another object).

    A candidate is a connected component of object colour. It is taken as the *whole* target when
    its area and shape (:func:`_shape_signature`) match the keyframe mask and it lies within a radius,
    growing with the frames spent lost, of the path from the last sighting along the last motion; or
    as a *partly visible* target (coming out from behind an occluder) when it is close to that path.
    Among accepted candidates the nearest wins.
    """
    # Opening drops the ragged, 8-connected specks that compression noise glues to a component.
    seeds = cv2.morphologyEx((prob > SEARCH_PROB).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(seeds, connectivity=8)
    if count <= 1:
        return None
    size = track.size
    lost = track.lost_frames + 1
    # Where the target may be now: anywhere between where it was last seen (it stopped behind
    # something) and where its last motion would have carried it (it kept moving).
    x0, y0 = track.last_center
    x1, y1 = x0 + track.velocity[0] * lost, y0 + track.velocity[1] * lost
    gate = (GATE_BASE + GATE_GROWTH * lost) * size
    partial_gate = PARTIAL_GATE * size
    best, best_dist = None, None
    for label in range(1, count):
        area = float(stats[label, cv2.CC_STAT_AREA])
        if area < PARTIAL_AREA * track.ref_area or area > FULL_AREA[1] * track.ref_area:
            continue
        cx, cy = centroids[label]
        dist = _segment_distance(cx, cy, x0, y0, x1, y1)
        if dist > gate or (best_dist is not None and dist >= best_dist):
            continue
        whole = area >= FULL_AREA[0] * track.ref_area
        if whole:
            x, y, w, h = stats[label, :4]
            piece = labels[y : y + h, x : x + w] == label
            whole = _shape_distance(_shape_signature(piece), track.ref_shape) <= SHAPE_TOL
        if not whole and dist > partial_gate:
            continue
        best, best_dist = label, dist
    if best is None:
        return None
    return labels == best


def _segment_distance(px: float, py: float, x0: float, y0: float, x1: float, y1: float) -> float:
    """Distance of point p from the segment (x0, y0)-(x1, y1)."""
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else min(1.0, max(0.0, ((px - x0) * dx + (py - y0) * dy) / length2))
    return float(np.hypot(px - (x0 + t * dx), py - (y0 + t * dy)))


def _shape_signature(mask: np.ndarray) -> np.ndarray:
    """Shape descriptors of a binary mask, invariant to position, scale and rotation.

    Circularity of the convex hull (4 pi area / perimeter^2), solidity (area / hull area),
    rectangularity (area / minimum-area rectangle) and the rectangle's log elongation, of the largest
    outer contour. Unlike high-order Hu moments or the raw perimeter, they stay stable on small,
    pixelated, symmetric shapes with ragged edges.
    """
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return np.zeros(4)
    contour = max(contours, key=cv2.contourArea)
    hull = cv2.convexHull(contour)
    area = max(float(cv2.contourArea(contour)), 1.0)
    hull_area = max(float(cv2.contourArea(hull)), 1.0)
    hull_perimeter = max(float(cv2.arcLength(hull, True)), 1.0)
    (_, _), (rw, rh), _ = cv2.minAreaRect(contour)
    rect = max(rw * rh, 1.0)
    elongation = np.log(max(rw, rh, 1.0) / max(min(rw, rh), 1.0))
    return np.array([4 * np.pi * hull_area / hull_perimeter**2, area / hull_area, area / rect, elongation])


def _shape_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)))


def _colour_bins(rgb: np.ndarray) -> np.ndarray:
    """(h, w) int32 index of each pixel's 16^3 RGB colour bin."""
    q = (rgb >> BINS_SHIFT).astype(np.int32)
    return (q[..., 0] * BINS + q[..., 1]) * BINS + q[..., 2]


def _colour_lut(bins: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """P(object | bin) from object vs rest-of-frame colour densities (equal priors).

    Both densities get the same small pseudo-density, so a colour seen in neither reads 0.5 (no
    evidence), and a colour the keyframe never showed on the object cannot pass for it.
    """
    size = BINS**3
    fg_p = np.bincount(bins[fg], minlength=size) / max(1, int(fg.sum())) + COLOUR_EPS
    bg_p = np.bincount(bins[~fg], minlength=size) / max(1, int((~fg).sum())) + COLOUR_EPS
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
