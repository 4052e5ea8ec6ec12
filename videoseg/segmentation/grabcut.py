"""Keyframe mask from box + points with OpenCV GrabCut (paper step 3a, weights-free stand-in for SAM2).

The cues initialise GrabCut's trimap the way SAM2 reads its prompts: outside the box is background,
inside it probably foreground; the positive centre point becomes a small *sure foreground* disc and
each negative point a *sure background* disc, together with the colour region around it (a
distractor of another colour that touches the target), unless that region reaches the positive
point. A point with no box gets a box grown around it: the
colour region reachable from the point (flood fill within a colour tolerance), padded; when that
region is degenerate (a speck, or most of the frame) a fixed box of a quarter of the shorter frame
side is used instead.

Frames larger than ``WORK_SIDE`` on their longer side are downscaled for speed and the mask is
upsampled back. The score in [0, 1] is the agreement of the mask with its cues: the mean of
(positive point inside the mask), (share of negative points outside it) and (IoU of the mask's
bounding box with the box), over the cues given; an empty mask scores 0.
"""

from __future__ import annotations

import cv2
import numpy as np

from videoseg.core.config import PipelineConfig
from videoseg.core.cues import TargetCues
from videoseg.core.interfaces import BackendDescription
from videoseg.core.masks import mask_box

WORK_SIDE = 400  # GrabCut cost grows with pixels; 400 px keeps a keyframe well under a second
ITERATIONS = 4
FLOOD_TOLERANCE = 18  # per-channel colour difference accepted by the point-only flood fill
RNG_SEED = 0x5EED  # OpenCV's per-thread generator is set to this before every GrabCut call


class GrabCutSegmenter:
    """Segmenter: ``segment(frame, cues) -> ((H, W) bool mask, score)`` with frame (H, W, 3) uint8 RGB."""

    def __init__(self, config: PipelineConfig | None = None) -> None:
        self.config = config
        self.info = BackendDescription(
            name="grabcut",
            weights_free=True,
            description="OpenCV GrabCut initialised from the box (probable foreground) and point discs",
            model_id=None,
        )

    def segment(self, frame: np.ndarray, cues: TargetCues) -> tuple[np.ndarray, float]:
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) frame, got shape {frame.shape}")
        height, width = frame.shape[:2]
        cues = cues.clipped(width, height)
        if cues.box is None and cues.point is None:
            return np.zeros((height, width), dtype=bool), 0.0
        scale = min(1.0, WORK_SIDE / max(height, width))
        small = frame if scale == 1.0 else _resize(frame, scale)
        small_cues = cues.scaled(scale, scale)
        mask_small = _grabcut(small, small_cues)
        if scale == 1.0:
            mask = mask_small
        else:
            up = cv2.resize(mask_small.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
            mask = up > 0.5
        return mask, agreement_score(mask, cues)


def _resize(frame: np.ndarray, scale: float) -> np.ndarray:
    h, w = frame.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def _disc_radius(height: int, width: int, box: list[float] | None) -> int:
    # Small enough to stay inside thin objects, large enough to seed GrabCut's colour model.
    side = min(height, width)
    if box is not None:
        side = min(side, box[2] - box[0], box[3] - box[1])
    return max(1, round(side * 0.08))


def grow_box(frame: np.ndarray, point: list[float]) -> list[float]:
    """A box around a point-only cue: the flood-filled colour region of the point, padded by 15 %.

    Falls back to a square of a quarter of the shorter side centred on the point when the region is
    smaller than 0.1 % or larger than 50 % of the frame (no usable colour boundary).
    """
    height, width = frame.shape[:2]
    x = min(max(round(point[0]), 0), width - 1)
    y = min(max(round(point[1]), 0), height - 1)
    region = _colour_region(frame, (x, y))
    area = 0 if region is None else int(region.sum())
    if region is not None and 0.001 * height * width <= area <= 0.5 * height * width:
        ys, xs = np.nonzero(region)
        x1, x2, y1, y2 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        pad_x, pad_y = 0.15 * (x2 - x1) + 2, 0.15 * (y2 - y1) + 2
        box = [x1 - pad_x, y1 - pad_y, x2 + pad_x, y2 + pad_y]
    else:
        half = min(height, width) / 8
        box = [x - half, y - half, x + half, y + half]
    return [max(box[0], 0.0), max(box[1], 0.0), min(box[2], width - 1.0), min(box[3], height - 1.0)]


def _grabcut(frame: np.ndarray, cues: TargetCues) -> np.ndarray:
    height, width = frame.shape[:2]
    box = cues.box if cues.box is not None else grow_box(frame, cues.point)  # type: ignore[arg-type]
    x1, y1 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
    x2, y2 = min(int(np.ceil(box[2])) + 1, width), min(int(np.ceil(box[3])) + 1, height)
    filled = np.zeros((height, width), dtype=bool)
    filled[y1:y2, x1:x2] = True
    if x2 - x1 < 4 or y2 - y1 < 4:
        return filled  # too small for a colour model; the box itself is the best guess

    trimap = np.full((height, width), cv2.GC_BGD, dtype=np.uint8)
    trimap[y1:y2, x1:x2] = cv2.GC_PR_FGD
    if filled.all():
        # A box over the whole frame leaves GrabCut no background sample: call the border
        # probably background so the colour models can start.
        trimap[[0, -1], :] = cv2.GC_PR_BGD
        trimap[:, [0, -1]] = cv2.GC_PR_BGD
    radius = _disc_radius(height, width, cues.box)
    for px, py in cues.positive_points:
        cv2.circle(trimap, (round(px), round(py)), radius, cv2.GC_FGD, -1)
    positive = np.zeros((height, width), dtype=bool)
    if cues.point is not None:
        positive = trimap == cv2.GC_FGD
    for nx, ny in cues.negatives:
        cv2.circle(trimap, (round(nx), round(ny)), radius, cv2.GC_BGD, -1)
        # A negative point names a distractor: its whole colour region (unless it reaches the
        # positive point) is background, not only the disc under the click.
        region = _colour_region(frame, (nx, ny))
        if region is not None and not (region & positive).any() and region.sum() < 0.5 * filled.sum():
            trimap[region] = cv2.GC_BGD
    if not np.isin(trimap, (cv2.GC_FGD, cv2.GC_PR_FGD)).any():
        return np.zeros((height, width), dtype=bool)

    bgr = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR)
    bgd_model = np.zeros((1, 65), np.float64)
    fgd_model = np.zeros((1, 65), np.float64)
    try:
        # GrabCut starts its colour models with k-means++ drawn from cv::theRNG(), a per-thread
        # generator every call advances: unseeded, a second run in the same (server) thread started
        # elsewhere and its masks differed. Seeding the calling thread's generator makes the mask a
        # function of the frame and cues alone (tests/pipeline/test_determinism.py).
        cv2.setRNGSeed(RNG_SEED)
        cv2.grabCut(bgr, trimap, None, bgd_model, fgd_model, ITERATIONS, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        # Degenerate colour statistics (e.g. a flat frame): fall back to the cue region.
        region = filled.copy()
        for nx, ny in cues.negatives:
            _clear_disc(region, nx, ny, radius)
        return region
    mask = np.isin(trimap, (cv2.GC_FGD, cv2.GC_PR_FGD))
    return _keep_main_parts(mask, cues.point)


def _colour_region(frame: np.ndarray, point: tuple[float, float] | list[float]) -> np.ndarray | None:
    """Pixels connected to ``point`` whose colour stays within FLOOD_TOLERANCE of it (None if empty)."""
    height, width = frame.shape[:2]
    x = min(max(round(point[0]), 0), width - 1)
    y = min(max(round(point[1]), 0), height - 1)
    blurred = cv2.GaussianBlur(frame, (5, 5), 0)
    flood = np.zeros((height + 2, width + 2), dtype=np.uint8)
    tol = (FLOOD_TOLERANCE,) * 3
    flags = 4 | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (255 << 8)
    cv2.floodFill(blurred, flood, (x, y), (0, 0, 0), tol, tol, flags)
    region = flood[1:-1, 1:-1] > 0
    return region if region.any() else None


def _clear_disc(mask: np.ndarray, x: float, y: float, radius: int) -> None:
    disc = np.zeros(mask.shape, dtype=np.uint8)
    cv2.circle(disc, (round(x), round(y)), radius, 1, -1)
    mask[disc > 0] = False


def _keep_main_parts(mask: np.ndarray, point: list[float] | None) -> np.ndarray:
    """Drop specks: keep the component under the positive point and every part >= 10 % of the largest."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 2:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = set((np.nonzero(areas >= 0.1 * areas.max())[0] + 1).tolist())
    if point is not None:
        px = min(max(round(point[0]), 0), mask.shape[1] - 1)
        py = min(max(round(point[1]), 0), mask.shape[0] - 1)
        if labels[py, px] > 0:
            keep.add(int(labels[py, px]))
    return np.isin(labels, sorted(keep))


def agreement_score(mask: np.ndarray, cues: TargetCues) -> float:
    """Agreement of a mask with its cues in [0, 1] (see module docstring); empty mask -> 0."""
    if not mask.any():
        return 0.0
    height, width = mask.shape
    terms: list[float] = []
    if cues.point is not None:
        px = min(max(round(cues.point[0]), 0), width - 1)
        py = min(max(round(cues.point[1]), 0), height - 1)
        terms.append(1.0 if mask[py, px] else 0.0)
    if cues.negatives:
        outside = 0
        for nx, ny in cues.negatives:
            qx = min(max(round(nx), 0), width - 1)
            qy = min(max(round(ny), 0), height - 1)
            outside += 0 if mask[qy, qx] else 1
        terms.append(outside / len(cues.negatives))
    if cues.box is not None:
        x1, y1, x2, y2 = mask_box(mask)  # type: ignore[misc]  # not empty: checked above
        mb = [float(x1), float(y1), float(x2 + 1), float(y2 + 1)]
        b = [cues.box[0], cues.box[1], cues.box[2] + 1, cues.box[3] + 1]
        iw = max(0.0, min(mb[2], b[2]) - max(mb[0], b[0]))
        ih = max(0.0, min(mb[3], b[3]) - max(mb[1], b[1]))
        inter = iw * ih
        union = (mb[2] - mb[0]) * (mb[3] - mb[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        terms.append(inter / union if union > 0 else 0.0)
    return float(sum(terms) / len(terms)) if terms else 0.0


__all__ = ["GrabCutSegmenter", "agreement_score", "grow_box"]
