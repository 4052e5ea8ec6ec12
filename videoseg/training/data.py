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

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image
from scipy.ndimage import distance_transform_edt

from videoseg.core.masks import encode_rle, mask_box
from videoseg.reasoning import prompts

DEFAULT_CUE_KINDS = ("box", "point", "negative")
NEGATIVE_OFFSET = 10.0  # px from the object: well inside the rewarded (0, 40] band, yet off the object


def object_box(mask: np.ndarray) -> list[int]:
    """(H, W) bool -> [x1, y1, x2, y2], the extreme mask pixels (inclusive). Empty mask: ValueError."""
    box = mask_box(mask)  # the one mask-to-box rule (videoseg.core.masks)
    if box is None:
        raise ValueError("cannot box an empty mask")
    return box


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


# --------------------------------------------------------------------------- video rows (the trainer's)
#
# The reasoner of the paper sees the key segment, a few global reference frames and the target
# frame (paper step 2). In training HTFS is not run: where to look comes from the ground truth, so
# every row shows the policy a correct key segment and target frame (an oracle sampler) and the
# reward judges the reasoning and the cues only. Our choices, stated because the paper gives none:
#
# - key segment = first .. last frame on which any of the query's objects is visible;
# - target frame = the frame of that segment where the objects show most (largest union area);
# - key frames = ``num_key_frames`` spread evenly over the key segment, the one nearest the target
#   replaced by it (``htfs.key_frames_with_target``, the rule inference uses);
# - reference frames = ``num_reference_frames`` spread evenly over the whole video;
# - the counts default to the pipeline's (PipelineConfig), so training shows what inference shows.
#
# The chat messages come from the model profile (``get_profile(name).reason_messages``), the function
# the inference backend prompts with, so a trained checkpoint is asked exactly as in training. TRL
# wants the images outside the messages: each becomes an ``{"type": "image"}`` placeholder and the
# images go to the ``images`` column, in order.

DISTRACTOR_ID = 254  # benchmark id maps: annotated objects the query does not name (negative points)


class TrainingDataError(ValueError):
    """The training data cannot be built (the message says which example and why)."""


@dataclass(frozen=True)
class FramePlan:
    """Which frames one training row shows (indices into the video)."""

    key_segment: tuple[int, int]
    target: int
    key_frames: list[int]
    reference_frames: list[int]


def visible_span(masks: np.ndarray, obj_ids: Sequence[int]) -> tuple[int, int] | None:
    """(first, last) frame on which any of ``obj_ids`` has a pixel in (T, H, W) id maps; None if never."""
    present = np.isin(masks, np.asarray(list(obj_ids), dtype=masks.dtype)).any(axis=(1, 2))
    idx = np.flatnonzero(present)
    if idx.size == 0:
        return None
    return int(idx[0]), int(idx[-1])


def oracle_plan(
    masks: np.ndarray, obj_ids: Sequence[int], num_key_frames: int, num_reference_frames: int
) -> FramePlan | None:
    """The ground-truth frame plan of one expression (see the section comment); None when its objects
    never show."""
    from videoseg.sampling.htfs import key_frames_with_target, uniform_indices

    span = visible_span(masks, obj_ids)
    if span is None:
        return None
    start, end = span
    target = start + int(target_frame_for(masks[start : end + 1], obj_ids) or 0)
    return FramePlan(
        key_segment=span,
        target=target,
        key_frames=key_frames_with_target(start, end, num_key_frames, target),
        reference_frames=uniform_indices(0, len(masks) - 1, num_reference_frames),
    )


def reason_request(
    frames: Callable[[list[int]], np.ndarray],
    fps: float,
    num_frames: int,
    plan: FramePlan,
    query: str,
    *,
    budget: int | None = None,
    max_new_tokens: int = 1024,
    cue_kinds: Sequence[str] = DEFAULT_CUE_KINDS,
) -> Any:
    """The :class:`~videoseg.core.interfaces.ReasonRequest` the pipeline would build for this plan.

    ``frames(indices)`` returns (N, H, W, 3) uint8 RGB frames of the video (a VideoSource's
    ``frames``), so a benchmark video decodes only the frames shown.
    """
    from videoseg.core.interfaces import Clip, ReasonRequest

    key = np.asarray(frames(list(plan.key_frames)))
    key_clip = Clip(frames=key, frame_indices=list(plan.key_frames), fps=fps, window=plan.key_segment)
    reference_clip = None
    if plan.reference_frames:
        ref = np.asarray(frames(list(plan.reference_frames)))
        reference_clip = Clip(
            frames=ref, frame_indices=list(plan.reference_frames), fps=fps, window=(0, num_frames - 1)
        )
    return ReasonRequest(
        query=query.strip(),
        key_clip=key_clip,
        target_frame=key[plan.key_frames.index(plan.target)],
        target_index=plan.target,
        reference_clip=reference_clip,
        max_new_tokens=int(max_new_tokens),
        budget=budget,
        cue_kinds=tuple(cue_kinds),
    )


def trl_prompt(messages: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[Image.Image]]:
    """Chat messages with images inside -> (messages with ``{"type": "image"}`` placeholders, images).

    An image may be a PIL image or an (H, W, 3) uint8 array. A video item is refused: TRL's
    GRPOTrainer passes images only, so a profile that shows frames as a video cannot be trained here.
    """
    prompt: list[dict[str, Any]] = []
    images: list[Image.Image] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            prompt.append({"role": message["role"], "content": [{"type": "text", "text": content}]})
            continue
        items: list[dict[str, Any]] = []
        for item in content or []:
            kind = item.get("type")
            if kind == "text":
                items.append({"type": "text", "text": str(item.get("text", ""))})
            elif kind == "image":
                image = item.get("image")
                if image is None:
                    raise TrainingDataError("a profile message has an image item without its image")
                if not isinstance(image, Image.Image):
                    image = Image.fromarray(np.ascontiguousarray(np.asarray(image, dtype=np.uint8)))
                images.append(image.convert("RGB"))
                items.append({"type": "image"})
            else:
                raise TrainingDataError(
                    f"the profile shows a {kind!r} item; the GRPO trainer takes text and images only "
                    "(TRL passes a list of images per prompt)"
                )
        prompt.append({"role": message["role"], "content": items})
    return prompt, images


def visionreasoner_solution(targets: Sequence[Mapping[str, Any]]) -> str:
    """The ground truth as VisionReasoner's datasets store it: a JSON list of ``{"bbox_2d", "point_2d"}``."""
    return json.dumps([{"bbox_2d": list(t["bbox_2d"]), "point_2d": list(t["point_2d"])} for t in targets])


def segzero_solution(targets: Sequence[Mapping[str, Any]]) -> str:
    """The ground truth as Seg-Zero's datasets store it: ``<box>(x1,y1),(x2,y2)</box><points>(x,y),...
    </points>``. Seg-Zero is single-object: the first target's box, and its centre point (Seg-Zero's
    data gives two points per object; we have one centre point per object, so it is written twice).
    Empty string without targets."""
    if not targets:
        return ""
    x1, y1, x2, y2 = targets[0]["bbox_2d"]
    px, py = targets[0]["point_2d"]
    return f"<box>({x1},{y1}),({x2},{y2})</box><points>({px},{py}),({px},{py})</points>"


def video_training_row(
    request: Any,
    target_ids: np.ndarray,
    obj_ids: Sequence[int],
    profile: Any,
    *,
    difficulty: float | None = None,
    difficulty_scores: Mapping[str, float] | None = None,
    key: str = "",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One GRPO row for a video expression: the profile's prompt and images, and the ground truth on
    the target frame in the answer space of the profile.

    target_ids: (H, W) uint8 id map of the target frame (the query's objects have ``obj_ids``, other
    annotated objects any other non-zero id, which negative points prefer). Columns: ``prompt``,
    ``images``, ``solution`` (VisionReasoner ground-truth string), ``solution_segzero``, ``targets``
    (JSON list with ``neg_point_2d`` and ``obj_id``), ``target_mask`` (COCO RLE of the targets' union,
    answer space), ``difficulty`` (D in [1, 10] or None), ``difficulty_scores`` (JSON), ``budget``,
    ``query``, ``key``, ``target_index``, ``width`` / ``height`` (answer space) and ``extra``.
    """
    target = np.asarray(request.target_frame)
    target_ids = np.asarray(target_ids)
    if target_ids.shape != target.shape[:2]:
        raise TrainingDataError(
            f"{key}: mask shape {target_ids.shape} does not match the target frame {target.shape[:2]}"
        )
    width, height = profile.answer_size(int(target.shape[1]), int(target.shape[0]))
    _, ids = to_answer_space(target, target_ids.astype(np.uint8), (int(width), int(height)))
    obj_ids = [int(i) for i in obj_ids]
    targets = object_targets(ids, obj_ids, with_negatives=True)
    prompt, images = trl_prompt(profile.reason_messages(request))
    if not images:
        raise TrainingDataError(f"{key}: the profile's prompt holds no image")
    row = {
        "prompt": prompt,
        "images": images,
        "solution": visionreasoner_solution(targets),
        "solution_segzero": segzero_solution(targets),
        "targets": json.dumps(targets),
        "target_mask": encode_rle(np.isin(ids, np.asarray(obj_ids, dtype=np.uint8))),
        "difficulty": None if difficulty is None else float(difficulty),
        "difficulty_scores": json.dumps(dict(difficulty_scores or {})),
        "budget": request.budget,
        "query": request.query,
        "key": key,
        "target_index": int(request.target_index),
        "width": int(width),
        "height": int(height),
    }
    row.update(extra or {})
    return row


def benchmark_id_maps(bench: Any, expr: Any, size: tuple[int, int]) -> tuple[np.ndarray, list[int]]:
    """(T, H, W) uint8 object-id maps of one benchmark expression and the ids of its objects.

    Ref-YouTube-VOS / Ref-DAVIS17 annotations are already id maps (palette PNGs, the expression's
    ``obj_ids``; the void label 255 is cleared). MeViS / ReVOS store one mask per annotated object
    (``anno_id``): object k of the expression gets id k + 1, and ReVOS's other annotated foreground gets
    :data:`DISTRACTOR_ID`. Read with the benchmark readers (:mod:`videoseg.eval.datasets`).
    """
    from dataclasses import replace

    if bench.layout == "refytvos":
        gt = bench.ground_truth(expr, size)
        labels = gt.labels.copy()
        if gt.void_label is not None:
            labels[labels == gt.void_label] = 0
        return labels, [int(i) for i in gt.obj_ids]
    if len(expr.anno_ids) >= DISTRACTOR_ID:
        raise TrainingDataError(f"{expr.key}: {len(expr.anno_ids)} objects is more than we can label")
    labels = None
    for k, anno in enumerate(expr.anno_ids):
        gt = bench.ground_truth(replace(expr, anno_ids=(anno,)), size)
        if labels is None:
            labels = np.where(gt.labels == 2, DISTRACTOR_ID, 0).astype(np.uint8)
        labels[gt.labels == 1] = k + 1
    if labels is None:
        raise TrainingDataError(f"{expr.key}: the expression names no annotated object")
    return labels, list(range(1, len(expr.anno_ids) + 1))


__all__ = [
    "DEFAULT_CUE_KINDS",
    "DISTRACTOR_ID",
    "FramePlan",
    "TrainingDataError",
    "benchmark_id_maps",
    "negative_point",
    "object_box",
    "object_point",
    "object_targets",
    "oracle_plan",
    "reason_request",
    "segzero_solution",
    "shapes_dataset",
    "target_frame_for",
    "to_answer_space",
    "training_example",
    "trl_prompt",
    "video_training_row",
    "visible_span",
    "visionreasoner_solution",
]
