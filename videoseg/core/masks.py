"""Binary masks <-> COCO RLE (pycocotools), the form masks take in events and traces."""

from __future__ import annotations

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
