"""GRPO training data from ground-truth masks (paper: Training, data).

The paper trains on Ref-YouTube-VOS, MeViS and Ref-DAVIS17 with "box = extreme mask pixels, one
centre point per object". This module turns a DAVIS-style (H, W) uint8 object-id map into the
per-object targets the reward compares against, and one target frame + query into a row for a TRL
dataset (``prompt``, ``images``, ``targets``, ``target_mask``, ``budget``). :func:`shapes_dataset`
does it over the shapes world so a user can make a toy dataset without downloads.

The centre point: VisionReasoner's released reward only reads a ground-truth ``point_2d``, and its
data-preparation script is not in the code we could read, so we define the point ourselves: the
mask centroid (rounded to a pixel) when that pixel is on the mask, else (a non-convex or split
mask, e.g. a "U") the mask pixel farthest from the mask boundary (the maximum of its distance
transform, the frame border counting as boundary), which is always on the object and as central as
the shape allows.

Coordinates are integer pixels of the answer space: the frame itself, or ``answer_size`` when the
model sees a resized image (VisionReasoner / Seg-Zero: 840 x 840). The id map is resized with
nearest neighbour *before* the targets are computed, so extreme pixels are exact in that space.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import cv2
import numpy as np
from PIL import Image
from scipy.ndimage import distance_transform_edt

from videoseg.core.masks import encode_rle
from videoseg.reasoning import prompts

DEFAULT_CUE_KINDS = ("box", "point", "negative")
NEGATIVE_OFFSET = 10.0  # px from the object: well inside the rewarded (0, 40] band, yet off the object


def object_box(mask: np.ndarray) -> list[int]:
    """(H, W) bool -> [x1, y1, x2, y2], the extreme mask pixels (inclusive). Empty mask: ValueError."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        raise ValueError("cannot box an empty mask")
    return [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]


def object_point(mask: np.ndarray) -> list[int]:
    """(H, W) bool -> [x, y], one centre point on the object.

    The centroid when its pixel is on the mask; otherwise the mask pixel farthest from the boundary
    (first in row-major order on ties). Empty mask: ValueError.
    """
    mask = np.asarray(mask, dtype=bool)
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        raise ValueError("cannot place a point on an empty mask")
    cx, cy = round(float(xs.mean())), round(float(ys.mean()))
    if mask[cy, cx]:
        return [cx, cy]
    # Pad so the frame border counts as boundary: a cut-off object's centre is inside the frame.
    inner = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(inner)), inner.shape)
    return [int(x), int(y)]


def negative_point(
    id_map: np.ndarray,
    obj_id: int,
    target_ids: Sequence[int],
    max_distance: float = 40.0,
    offset: float = NEGATIVE_OFFSET,
) -> list[int] | None:
    """A negative point for object ``obj_id``: a pixel off every target, within ``max_distance`` of
    this object, that the negative-point reward pays for.

    Prefers a pixel of another, non-target object (the distractor SAM2 should not grab); among the
    candidates takes the one whose distance to the object is closest to ``offset``, then the one
    nearest the object's centre point. None when no pixel qualifies (the object fills the frame).
    """
    id_map = np.asarray(id_map)
    own = id_map == obj_id
    if not own.any():
        return None
    targets = np.isin(id_map, np.asarray(list(target_ids), dtype=id_map.dtype))
    d_own = distance_transform_edt(~own)
    ring = (d_own > 0) & (d_own <= max_distance) & ~targets
    if not ring.any():
        return None
    distractor = ring & (id_map > 0)
    pool = distractor if distractor.any() else ring
    ys, xs = np.nonzero(pool)
    cx, cy = object_point(own)
    order = np.lexsort((np.hypot(xs - cx, ys - cy), np.abs(d_own[ys, xs] - offset)))
    return [int(xs[order[0]]), int(ys[order[0]])]


def object_targets(
    id_map: np.ndarray, obj_ids: Sequence[int], with_negatives: bool = True
) -> list[dict[str, Any]]:
    """The query's targets on one frame, in the answer format: ``[{"bbox_2d", "point_2d",
    "neg_point_2d"?, "obj_id"}, ...]`` in ``obj_ids`` order. Objects absent from the frame are
    left out (they have no box to find there)."""
    id_map = np.asarray(id_map)
    if id_map.ndim != 2:
        raise ValueError(f"expected an (H, W) object-id map, got shape {id_map.shape}")
    out = []
    for obj_id in obj_ids:
        mask = id_map == obj_id
        if not mask.any():
            continue
        item: dict[str, Any] = {"bbox_2d": object_box(mask), "point_2d": object_point(mask)}
        if with_negatives:
            neg = negative_point(id_map, obj_id, obj_ids)
            if neg is not None:
                item["neg_point_2d"] = neg
        item["obj_id"] = int(obj_id)
        out.append(item)
    return out


def to_answer_space(
    frame: np.ndarray, id_map: np.ndarray, answer_size: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Resize the frame (area / linear) and the id map (nearest) to ``answer_size`` (width, height)."""
    if answer_size is None or (frame.shape[1], frame.shape[0]) == tuple(answer_size):
        return frame, id_map
    w, h = int(answer_size[0]), int(answer_size[1])
    if w < 1 or h < 1:
        raise ValueError(f"answer_size must be positive, got {answer_size}")
    shrink = w * h < frame.shape[0] * frame.shape[1]
    frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    id_map = cv2.resize(id_map, (w, h), interpolation=cv2.INTER_NEAREST)
    return frame, id_map


def training_example(
    frame: np.ndarray,
    masks: np.ndarray,
    obj_ids: Sequence[int],
    query: str,
    *,
    budget: int | None = None,
    difficulty: float | dict[str, float] | None = None,
    answer_size: tuple[int, int] | None = None,
    with_negatives: bool = True,
    cue_kinds: Sequence[str] = DEFAULT_CUE_KINDS,
    time: float = 0.0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One GRPO row for the target frame.

    frame: (H, W, 3) uint8 RGB; masks: (H, W) uint8 object ids (DAVIS style, 0 background);
    obj_ids: the ids the query names. Returns a dict with the columns TRL's GRPOTrainer passes to
    the reward functions: ``prompt`` (conversational, one image then the reasoner's instructions),
    ``images`` ([PIL image in the answer space]), ``targets`` (answer-format list), ``target_mask``
    (COCO RLE of the union of the targets, answer space), ``budget``, ``difficulty``, plus
    ``query``, ``obj_ids``, ``width``, ``height`` and whatever ``extra`` holds.
    """
    frame = np.asarray(frame)
    masks = np.asarray(masks)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    if masks.shape != frame.shape[:2]:
        raise ValueError(f"mask shape {masks.shape} does not match the frame {frame.shape[:2]}")
    if not isinstance(query, str) or not query.strip():
        raise ValueError("the query is empty")
    if masks.dtype != np.uint8:
        masks = masks.astype(np.uint8)
    frame, masks = to_answer_space(frame, masks, answer_size)
    height, width = masks.shape
    obj_ids = [int(i) for i in obj_ids]
    targets = object_targets(masks, obj_ids, with_negatives=with_negatives)
    text = prompts.TARGET_HEADER.format(time=time, width=width, height=height) + prompts.reason_instructions(
        query, cue_kinds, budget
    )
    row = {
        "prompt": [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]},
        ],
        "images": [Image.fromarray(frame)],
        "targets": targets,
        "target_mask": encode_rle(np.isin(masks, np.asarray(obj_ids, dtype=np.uint8))),
        "budget": budget,
        "difficulty": difficulty,
        "query": query.strip(),
        "obj_ids": obj_ids,
        "width": int(width),
        "height": int(height),
    }
    row.update(extra or {})
    return row


def target_frame_for(masks: np.ndarray, obj_ids: Sequence[int]) -> int | None:
    """The frame where the query's objects show most (largest union area; earliest on ties), None
    when they never show. (T, H, W) id maps. A stand-in for HTFS's target frame in toy data."""
    area = np.isin(masks, np.asarray(list(obj_ids), dtype=masks.dtype)).sum(axis=(1, 2))
    if area.max(initial=0) == 0:
        return None
    return int(np.argmax(area))


def shapes_dataset(
    seeds: Iterable[int],
    *,
    family: str | None = None,
    size: tuple[int, int] | None = None,
    answer_size: tuple[int, int] | None = None,
    budget: int | None = None,
    with_negatives: bool = True,
) -> list[dict[str, Any]]:
    """Toy GRPO rows from the shapes world: one row per expression of each generated scenario, on
    the frame where its objects show most. Wrap with ``datasets.Dataset.from_list`` for TRL."""
    from videoseg.shapes import generate

    rows = []
    for seed in seeds:
        scenario = generate(int(seed), family, size=size)
        for expr in scenario.expressions:
            t = target_frame_for(scenario.masks, expr.obj_ids)
            if t is None:
                continue
            rows.append(
                training_example(
                    scenario.frames[t],
                    scenario.masks[t],
                    expr.obj_ids,
                    expr.text,
                    budget=budget,
                    answer_size=answer_size,
                    with_negatives=with_negatives,
                    time=t / scenario.fps,
                    extra={
                        "seed": int(seed),
                        "family": scenario.family,
                        "expression_id": expr.id,
                        "expression_type": expr.type,
                        "frame_idx": t,
                    },
                )
            )
    return rows


__all__ = [
    "DEFAULT_CUE_KINDS",
    "negative_point",
    "object_box",
    "object_point",
    "object_targets",
    "shapes_dataset",
    "target_frame_for",
    "to_answer_space",
    "training_example",
]
