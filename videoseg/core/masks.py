"""Binary masks (paper step 3's output): COCO RLE (pycocotools), the form masks take in events and
traces; label maps; and the two things every consumer computes from masks, in one place: the union of
a frame's targets (what the benchmarks score) and a mask's box (extreme pixels)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """(H, W) bool mask -> JSON-ready COCO RLE ``{"size": [H, W], "counts": str}``."""
    if mask.ndim != 2:
        raise ValueError(f"expected an (H, W) mask, got shape {mask.shape}")
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """COCO RLE (as made by :func:`encode_rle`) -> (H, W) bool mask."""
    counts = rle["counts"]
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    return coco_mask.decode({"size": list(rle["size"]), "counts": counts}).astype(bool)


def empty_like_rle(height: int, width: int) -> dict[str, Any]:
    return encode_rle(np.zeros((height, width), dtype=bool))


def labels_from_masks(masks: np.ndarray) -> np.ndarray:
    """(K, H, W) bool -> (H, W) uint8 label map, target i -> value i + 1; later targets win overlaps."""
    if masks.ndim != 3:
        raise ValueError(f"expected (K, H, W), got {masks.shape}")
    out = np.zeros(masks.shape[1:], dtype=np.uint8)
    for i, m in enumerate(masks):
        out[m] = i + 1
    return out


def union(masks: np.ndarray) -> np.ndarray:
    """(K, H, W) bool -> (H, W) bool: the pixels of any target (K = 0 gives an empty mask).

    The benchmarks score an expression against the union of its objects (MeViS / ReVOS protocol),
    so every prediction written for scoring (benchmark PNGs, shapes evaluation, Compare tab,
    failure diagnosis) is this union."""
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"expected (K, H, W), got {masks.shape}")
    return masks.any(axis=0)


def union_stack(
    masks_by_frame: Mapping[int, np.ndarray], num_frames: int, height: int, width: int
) -> np.ndarray:
    """(T, H, W) bool union over targets of a run's masks (``frame_idx -> (K, H, W)``, e.g.
    ``RunState.masks``); a frame with no mask, no target or another size stays empty."""
    out = np.zeros((num_frames, height, width), dtype=bool)
    for idx in range(num_frames):
        if idx in masks_by_frame:
            masks = masks_by_frame[idx]
            if masks.shape[0] and masks.shape[1:] == (height, width):
                out[idx] = union(masks)
    return out


def mask_box(mask: np.ndarray) -> list[int] | None:
    """(H, W) bool -> [x1, y1, x2, y2], the extreme mask pixels (inclusive); None for an empty mask.

    The paper's training boxes are "extreme mask pixels" (as VisionReasoner's data); every box made
    from a mask (training targets, segmenter agreement, failure diagnosis) is this one."""
    mask = np.asarray(mask, dtype=bool)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:  # (row and column projections: a few times faster than np.nonzero on 1080p)
        return None
    return [int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])]
