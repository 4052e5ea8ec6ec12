"""GRPO rewards of the reasoner (paper: Training; only the language model is trained).

The paper's reward is VisionReasoner's (think format + answer format + Hungarian-matched accuracy +
non-repetition) plus its own negative-point term, all multiplied by a difficulty-aware soft length
factor (PixelThink's formula). This module reproduces the official reward code *exactly, quirks
included*, under the names the training issue (#13) fixed, so a policy trained here is rewarded for
what the released checkpoints were rewarded for, never for something kinder:

* VisionReasoner -- ``verl/utils/reward_score/vision_reasoner.py`` of dvlab-research/Seg-Zero (the
  ``vision_reasoner`` score; VisionReasoner's training code): :func:`think_format`,
  :func:`seg_format`, :func:`format_reward`, :func:`accuracy`, :func:`non_repeat`, :func:`total`.
* Seg-Zero strict -- ``verl/utils/reward_score/seg_restrict.py`` of the same repository (the
  ``seg_strict`` score): :func:`segzero_format`, :func:`segzero_iou`, :func:`segzero_box_l1`,
  :func:`segzero_point`, :func:`segzero_total`.
* PixelThink -- ``verl/utils/reward_score/seg_pixelthink.py`` and ``length.py`` of songw-zju/PixelThink
  (its training recipe ``training_scripts/qwen25vl_7b_refcocog.yaml`` uses ``seg_pixelthink`` with
  the defaults below): :func:`length_words`, :func:`reasoning_words`, :func:`length_factor`,
  :func:`pixelthink_total`, and :func:`pixelthink_uncertainty` (its rollout's uncertainty score,
  ``verl/workers/rollout/vllm_rollout/vllm_rollout_spmd.py``).
* The paper's own terms -- :func:`negative_point_reward` (1/K per negative point whose distance to the
  target mask is in (0, 40] px), :func:`soft_length_factor` (5-axis difficulty D -> budget ->
  ``s = clamp(1 - beta * (L_used - L_budget), 0, 1)``) and :func:`videoseg_r1_total`, which composes
  them as the paper does: ``R = s * (VisionReasoner total + r_neg)``.

``completion`` is always the decoded response text (the official managers decode with
``skip_special_tokens=True`` and never strip it), ``gt`` the ground-truth string exactly as the
official datasets store it: VisionReasoner a JSON list of ``{"bbox_2d": [x1, y1, x2, y2],
"point_2d": [x, y]}``; Seg-Zero ``<box>(x1,y1),(x2,y2)</box><points>(x1,y1),(x2,y2)</points>``.
Coordinates are absolute pixels of the image as the model saw it.

The official functions wrap their work in ``try: ... except Exception: pass``: whatever raises scores
what was accumulated so far (usually 0). We keep that contract (every term is total: it never
raises on any string) and mirror the operations that decide *whether* something raises (numpy
broadcasting, ``len`` of a JSON value, ``int()`` of a point coordinate), so odd answers score as
they score there. :func:`trl_reward_funcs` wraps the terms for TRL's ``GRPOTrainer``; it is a thin
layer that calls the functions above, never a second implementation.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.ndimage import distance_transform_edt
from scipy.optimize import linear_sum_assignment

from videoseg.core.config import PipelineConfig
from videoseg.core.masks import decode_rle
from videoseg.reasoning.difficulty import DEFAULT_BETA, budget_for, difficulty_level, rate
from videoseg.reasoning.difficulty import length_factor as _budget_length_factor

# --------------------------------------------------------------------------- shared patterns

# Both official scores: the whole response, DOTALL, no strip (a leading space or trailing newline fails).
THINK_ANSWER_PATTERN = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
# VisionReasoner: the first <answer> block, inner whitespace trimmed by the pattern itself.
ANSWER_PATTERN = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)
# Seg-Zero: the first brace group anywhere in the response (even inside <think>), no nesting.
SEGZERO_JSON_PATTERN = re.compile(r"{[^}]+}")
# Seg-Zero ground truth: integers only, no spaces ("\d" also matches other Unicode digits, as there).
SEGZERO_GT_BOX = re.compile(r"<box>\((\d+),(\d+)\),\((\d+),(\d+)\)</box>")
SEGZERO_GT_POINTS = re.compile(r"<points>\((\d+),(\d+)\),\((\d+),(\d+)\)</points>")
THINK_PATTERN = re.compile(r"<think>(.*?)</think>", re.DOTALL)

# VisionReasoner accuracy (vision_reasoner.py).
MAX_OBJECTS = 120  # both lists are cut to their first 120 items before matching
IOU_THRESHOLD = 0.5  # box IoU must exceed this
BOX_L1_THRESHOLD = 10.0  # mean |coordinate difference| must be below this, px
POINT_THRESHOLD = 30.0  # point distance must be below this, px (and the point inside its own box)
# Seg-Zero strict (seg_restrict.py): same IoU / L1 thresholds; the two-point distance threshold.
SEGZERO_POINT_THRESHOLD = 100.0

# PixelThink (seg_pixelthink.py PixelThinkRewardParams; its recipe sets beta 0.002 = 1/500).
PIXELTHINK_BETA = 1 / 500.0
PIXELTHINK_MEDIUM_FROM = 3.5  # D below: easy budget
PIXELTHINK_HARD_FROM = 5.0  # D at or above: hard budget (+ uncertainty); between: no penalty
PIXELTHINK_EASY_BUDGET = 96.0
PIXELTHINK_HARD_BUDGET = 256.0
PIXELTHINK_UNCERTAINTY_SCALE = 25.0  # hard budget grows by 25 words per unit of uncertainty
PIXELTHINK_DEFAULT_DIFFICULTY = 2.0  # seg_pixelthink_compute_score's default (its dataset's: 3.0)

# The paper's negative-point term (MISSION "Training").
NEGATIVE_MAX_DISTANCE = 40.0
# Our answer key for negative points (MISSION: "ours to name"); one [x, y] or a list of them.
NEGATIVE_KEY = "neg_point_2d"

MAX_TOTAL = {"visionreasoner": 7.0, "segzero": 5.0, "pixelthink": 5.0, "videoseg-r1": 8.0}


# --------------------------------------------------------------------------- VisionReasoner


def think_format(completion: str) -> float:
    """1.0 when the *whole* completion matches ``<think>.*?</think>\\s*<answer>.*?</answer>`` (DOTALL).

    ``re.fullmatch`` on the text as decoded, never stripped: a leading space, a trailing newline or
    any text after ``</answer>`` gives 0. (``vision_reasoner_format_reward``; the same pattern is
    ``seg_thinking_format_reward`` of seg_restrict.py and seg_pixelthink.py.)
    """
    return 1.0 if THINK_ANSWER_PATTERN.fullmatch(completion) else 0.0


def seg_format(completion: str) -> float:
    """Answer format, in [0, 2]: ``sum over the n items of ([bbox_2d ok] + [point_2d ok]) / n``.

    Official (``segmentation_format`` inside ``vision_reasoner_format_reward``): the first
    ``<answer>\\s*(.*?)\\s*</answer>`` block is read with strict ``json.loads`` (a code fence, single
    quotes or a trailing comma: 0); ``n = len(data)``; for each item, +1 when ``"bbox_2d" in item``
    and its value is a ``list`` of length 4, +1 when ``"point_2d" in item`` and it is a ``list`` of
    length 2 (the numbers themselves are not checked), each item's part divided by n. Quirks kept:

    * an empty list scores 0; a JSON object (not a list) iterates over its keys, and a key named
      ``"bbox_2d"`` then raises (indexing a string): 0; a JSON string scores 0;
    * the loop runs inside one ``try``: when an item raises (an item that is a number or ``null``,
      a string containing ``"bbox_2d"``), the items *before it* keep their share.
    """
    score = 0.0
    match = ANSWER_PATTERN.search(completion)
    if not match:
        return score
    try:
        data = json.loads(match.group(1))
        n = len(data)
        for item in data:
            part = 0.0
            if "bbox_2d" in item:
                box = item["bbox_2d"]
                if isinstance(box, list) and len(box) == 4:
                    part += 1.0
            if "point_2d" in item:
                point = item["point_2d"]
                if isinstance(point, list) and len(point) == 2:
                    part += 1.0
            score += part / n
    except Exception:  # official: the partial sum stands
        pass
    return score


def format_reward(completion: str) -> float:
    """:func:`think_format` + :func:`seg_format`, in [0, 3] (``vision_reasoner_format_reward``)."""
    return think_format(completion) + seg_format(completion)


@dataclass
class Matching:
    """VisionReasoner's accuracy computation laid out for display (and the score itself).

    pred / gt: the (capped) boxes (M, 4) / (N, 4) and points (M, 2) / (N, 2) as numpy made them;
    iou, l1, dist: (M, N) matrices; inside: (M,) predicted point inside its own predicted box;
    criteria: (M, N) per-pair sum of the three 0/1 criteria; pairs: the Hungarian matching
    [(pred index, gt index)]; score: sum of the matched criteria / max(M, N).
    """

    pred_boxes: np.ndarray
    pred_points: np.ndarray
    gt_boxes: np.ndarray
    gt_points: np.ndarray
    iou: np.ndarray
    l1: np.ndarray
    dist: np.ndarray
    inside: np.ndarray
    criteria: np.ndarray
    pairs: list[tuple[int, int]]
    score: float


def _boxes_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # vision_reasoner.py batch_iou: inclusive-pixel areas (w = x2 - x1 + 1), boxes taken as written
    # (an inverted box is not reordered), split with np.split so odd shapes raise where they raise there.
    ax1, ay1, ax2, ay2 = np.split(a, 4, axis=1)
    bx1, by1, bx2, by2 = np.split(b, 4, axis=1)
    ix1 = np.maximum(ax1, bx1.T)
    iy1 = np.maximum(ay1, by1.T)
    ix2 = np.minimum(ax2, bx2.T)
    iy2 = np.minimum(ay2, by2.T)
    inter = np.maximum(0, ix2 - ix1 + 1) * np.maximum(0, iy2 - iy1 + 1)
    area_a = (ax2 - ax1 + 1) * (ay2 - ay1 + 1)
    area_b = (bx2 - bx1 + 1) * (by2 - by1 + 1)
    return inter / (area_a + area_b.T - inter)


def visionreasoner_matching(completion: str, gt: str) -> Matching:
    """The Hungarian matching behind :func:`accuracy`; raises whatever the official code would
    swallow (a ValueError / KeyError / TypeError ... meaning "accuracy 0").

    Per pair: ``[IoU > 0.5] + [mean |box diff| < 10] + [point distance < 30 and the predicted point
    inside the *predicted* box]``; ``linear_sum_assignment`` on ``3 - criteria``; the score is
    ``(3 * #pairs - matched cost) / max(M, N)`` after cutting both lists to 120 items.
    """
    gt_items = json.loads(gt)
    gt_boxes = [item["bbox_2d"] for item in gt_items]
    gt_points = [item["point_2d"] for item in gt_items]
    match = ANSWER_PATTERN.search(completion)
    if not match:
        raise ValueError("no <answer>...</answer> block")
    items = json.loads(match.group(1))
    pred_boxes = [item["bbox_2d"] for item in items]
    pred_points = [item["point_2d"] for item in items]
    pb = np.array(pred_boxes[:MAX_OBJECTS])
    pp = np.array(pred_points[:MAX_OBJECTS])
    gb = np.array(gt_boxes[:MAX_OBJECTS])
    gp = np.array(gt_points[:MAX_OBJECTS])
    with np.errstate(all="ignore"):  # 0/0 IoU of degenerate boxes is NaN there too, just silent here
        iou = _boxes_iou(pb, gb)
        l1 = np.mean(np.abs(pb[:, np.newaxis, :] - gb[np.newaxis, :, :]), axis=2)
        dist = np.sqrt(np.sum((pp[:, np.newaxis, :] - gp[np.newaxis, :, :]) ** 2, axis=2))
        inside = (
            (pp[:, 0] >= pb[:, 0]) & (pp[:, 0] <= pb[:, 2]) & (pp[:, 1] >= pb[:, 1]) & (pp[:, 1] <= pb[:, 3])
        )
        criteria = (
            (iou > IOU_THRESHOLD).astype(float)
            + (l1 < BOX_L1_THRESHOLD).astype(float)
            + ((dist < POINT_THRESHOLD) & inside[:, np.newaxis]).astype(float)
        )
    cost = 3.0 - criteria
    rows, cols = linear_sum_assignment(cost)
    matched = len(rows) * 3.0 - cost[rows, cols].sum()
    score = float(matched / max(len(pb), len(gb)))
    return Matching(
        pred_boxes=pb,
        pred_points=pp,
        gt_boxes=gb,
        gt_points=gp,
        iou=iou,
        l1=l1,
        dist=dist,
        inside=inside,
        criteria=criteria,
        pairs=[(int(r), int(c)) for r, c in zip(rows, cols)],
        score=score,
    )


def accuracy(completion: str, gt: str) -> float:
    """Hungarian-matched accuracy, in [0, 3] (``vision_reasoner_accuracy_reward``).

    ``sum over matched pairs of ([IoU > 0.5] + [mean box L1 < 10] + [point distance < 30 and point in
    its own predicted box]) / max(#pred, #gt)``, both lists first cut to :data:`MAX_OBJECTS` (120).
    IoU counts inclusive pixels (``x2 - x1 + 1``) and takes boxes as written: an inverted box is not
    reordered (its "area" may come out positive, negative or zero). Quirks kept (all give 0):
    a ground truth that is not strict JSON or lacks a key; no ``<answer>`` block; an answer that is
    not strict JSON, not a list of objects, or an item without ``bbox_2d`` / ``point_2d``; boxes or
    points of mixed lengths or non-numbers (numpy refuses them); an **empty answer, even against an
    empty ground truth** (``np.split`` of an empty array raises). Extra predictions or ground truths
    only grow the denominator.
    """
    try:
        return visionreasoner_matching(completion, gt).score
    except Exception:  # official: every failure scores 0
        return 0.0


def non_repeat(completion: str) -> float:
    """0 once two sentences repeat an earlier one, else 1 (``vision_reasoner_non_repeat_reward``).

    Sentences: the whole completion (tags and answer included) split on ``"."``, stripped, empty
    pieces dropped; a sentence equal to one seen before counts a repeat; a single repeat is free.
    """
    seen: set[str] = set()
    repeats = 0
    for sentence in (s.strip() for s in completion.split(".")):
        if not sentence:
            continue
        if sentence in seen:
            repeats += 1
        if repeats >= 2:
            return 0.0
        seen.add(sentence)
    return 1.0


def total(completion: str, gt: str) -> float:
    """VisionReasoner's reward, in [0, 7]: :func:`format_reward` + :func:`accuracy` + :func:`non_repeat`
    (``vision_reasoner_compute_score``)."""
    return format_reward(completion) + accuracy(completion, gt) + non_repeat(completion)


# --------------------------------------------------------------------------- Seg-Zero strict


def _segzero_answer(completion: str) -> Any:
    """The first ``{...}`` group (no nested braces) of the completion, strictly JSON-decoded; raises."""
    match = SEGZERO_JSON_PATTERN.search(completion)
    if not match:
        raise ValueError("no {...} group")
    return json.loads(match.group(0))


def _segzero_gt_box(gt: str) -> list[int]:
    match = SEGZERO_GT_BOX.search(gt.strip())
    if not match:
        raise ValueError("no <box>(x1,y1),(x2,y2)</box> in the ground truth")
    return [int(v) for v in match.groups()]


def _segzero_gt_points(gt: str) -> list[list[int]]:
    match = SEGZERO_GT_POINTS.search(gt)
    if not match:
        raise ValueError("no <points>(x1,y1),(x2,y2)</points> in the ground truth")
    x1, y1, x2, y2 = (int(v) for v in match.groups())
    return [[x1, y1], [x2, y2]]


def segzero_format(completion: str) -> float:
    """Seg-Zero's answer format, 0 or 1 (``seg_segmentation_format_reward`` of seg_restrict.py).

    1 when the first ``{...}`` group anywhere in the completion (no nested braces; even one inside
    ``<think>``) is strict JSON with keys ``bbox`` (a list of 4), ``points_1`` and ``points_2``
    (lists of 2); the values' types are not checked. The think/answer tags are a separate term,
    :func:`think_format` (the identical pattern, ``seg_thinking_format_reward``), so
    :func:`segzero_total` = think_format + segzero_format + iou + box L1 + point.
    """
    try:
        data = _segzero_answer(completion)
        for key in ("bbox", "points_1", "points_2"):
            if key not in data:
                return 0.0
        box = data["bbox"]
        if not isinstance(box, list) or len(box) != 4:
            return 0.0
        for key in ("points_1", "points_2"):
            if not isinstance(data[key], list) or len(data[key]) != 2:
                return 0.0
        return 1.0
    except Exception:
        return 0.0


def _segzero_iou(a: Sequence[Any], b: Sequence[Any]) -> float:
    # seg_restrict.py iou(): the intersection counts only when strictly positive in both axes (a
    # touching pair has none), then with inclusive pixels; a zero union raises (ZeroDivisionError).
    ix1, iy1 = max(a[0], b[0]), max(a[1], b[1])
    ix2, iy2 = min(a[2], b[2]), min(a[3], b[3])
    inter = (ix2 - ix1 + 1) * (iy2 - iy1 + 1) if ix1 < ix2 and iy1 < iy2 else 0
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return float(inter) / (area_a + area_b - inter)


def segzero_box_iou(completion: str, gt: str) -> float | None:
    """The IoU :func:`segzero_iou` thresholds (None where the official code would fail)."""
    try:
        gt_box = _segzero_gt_box(gt)
        box = _segzero_answer(completion)["bbox"]
        return _segzero_iou(box, gt_box) if len(box) == 4 else None
    except Exception:
        return None


def segzero_iou(completion: str, gt: str) -> float:
    """1 when the answer's ``bbox`` has IoU > 0.5 with the ground-truth box, else 0 (``seg_iou_reward``).

    The ground-truth box is the first ``<box>(x1,y1),(x2,y2)</box>`` (non-negative integers, no
    spaces) of ``gt.strip()``; the prediction the ``bbox`` of the first ``{...}`` group. The
    intersection is 0 unless ``ix1 < ix2 and iy1 < iy2`` (so boxes that only share an edge have
    none), otherwise ``(ix2 - ix1 + 1) * (iy2 - iy1 + 1)``; areas are inclusive; boxes are taken as
    written (an inverted box is not reordered). A missing key, a ``bbox`` that is not 4 long,
    non-numbers, a zero union, or a missing ground-truth box: 0.
    """
    iou = segzero_box_iou(completion, gt)
    return 1.0 if iou is not None and iou > IOU_THRESHOLD else 0.0


def segzero_box_l1(completion: str, gt: str) -> float:
    """1 when the mean |difference| of the four box coordinates is below 10 px, else 0
    (``seg_box_l1_reward``; parsing and failures as :func:`segzero_iou`)."""
    try:
        gt_box = _segzero_gt_box(gt)
        box = _segzero_answer(completion)["bbox"]
        if len(box) == 4:
            l1 = (
                abs(box[0] - gt_box[0])
                + abs(box[1] - gt_box[1])
                + abs(box[2] - gt_box[2])
                + abs(box[3] - gt_box[3])
            ) / 4
            if l1 < BOX_L1_THRESHOLD:
                return 1.0
    except Exception:
        pass
    return 0.0


def segzero_points_distance(points: Sequence[Sequence[float]], gt_points: Sequence[Sequence[float]]) -> float:
    """Mean distance of two points to two ground-truth points under the better of the two pairings
    (``points_distance`` of seg_restrict.py: ``min(d(p1,g1) + d(p2,g2), d(p1,g2) + d(p2,g1)) / 2``)."""
    (ax, ay), (bx, by) = points[0], points[1]
    (gx1, gy1), (gx2, gy2) = gt_points[0], gt_points[1]
    straight = math.sqrt((ax - gx1) ** 2 + (ay - gy1) ** 2) + math.sqrt((bx - gx2) ** 2 + (by - gy2) ** 2)
    crossed = math.sqrt((ax - gx2) ** 2 + (ay - gy2) ** 2) + math.sqrt((bx - gx1) ** 2 + (by - gy1) ** 2)
    return min(straight, crossed) / 2


def segzero_point(completion: str, gt: str, threshold: float = SEGZERO_POINT_THRESHOLD) -> float:
    """1 when both answer points lie in the answer's box and their matched mean distance to the
    ground-truth points is below 100 px, else 0 (``seg_point_l1_reward`` of seg_restrict.py).

    ``points_1`` / ``points_2`` are cut to ``[int(p[0]), int(p[1])]`` (truncation toward zero; a
    longer list is read from its first two numbers, a digit string like ``"12"`` as ``[1, 2]``);
    "in the box" is ``x1 <= x <= x2 and y1 <= y <= y2`` on the box as written (an inverted box
    contains nothing); the ``bbox`` must be 4 long. Any failure: 0. ``threshold``: PixelThink passes
    its own (same default).
    """
    try:
        gt_points = _segzero_gt_points(gt)
        data = _segzero_answer(completion)
        box = data["bbox"]
        if len(box) != 4:
            return 0.0  # official: the box variable is never bound, the NameError scores 0
        p1, p2 = data["points_1"], data["points_2"]
        p1 = [int(p1[0]), int(p1[1])]
        p2 = [int(p2[0]), int(p2[1])]

        def inside(p: list[int]) -> bool:
            return box[0] <= p[0] <= box[2] and box[1] <= p[1] <= box[3]

        if inside(p1) and inside(p2) and segzero_points_distance([p1, p2], gt_points) < threshold:
            return 1.0
    except Exception:
        pass
    return 0.0


def segzero_total(completion: str, gt: str) -> float:
    """Seg-Zero's strict reward, in [0, 5] (``seg_strict_compute_score``): :func:`think_format` +
    :func:`segzero_format` + :func:`segzero_iou` + :func:`segzero_point` + :func:`segzero_box_l1`.
    PixelThink's accuracy (``pixelthink_accuracy_reward``) is the same sum with the same thresholds."""
    return (
        segzero_iou(completion, gt)
        + think_format(completion)
        + segzero_format(completion)
        + segzero_point(completion, gt)
        + segzero_box_l1(completion, gt)
    )


# --------------------------------------------------------------------------- PixelThink


def length_words(completion: str) -> int:
    """Whitespace-separated words of the whole response: PixelThink's default length ``L_used``
    (``count_response_word_tokens``; its recipe's ``length_counting_mode`` is ``reward_word_tokens``)."""
    return len(completion.split()) if completion else 0


def reasoning_text(completion: str) -> str:
    """The first ``<think>...</think>`` content, stripped; "" without one (``extract_reasoning``)."""
    if not completion:
        return ""
    match = THINK_PATTERN.search(completion)
    return match.group(1).strip() if match else ""


def reasoning_words(completion: str) -> int:
    """Whitespace-separated words inside the first ``<think>...</think>`` (0 without one)
    (``count_reasoning_word_tokens``)."""
    reasoning = reasoning_text(completion)
    return len(reasoning.split()) if reasoning else 0


def reasoning_tokens(completion: str, tokenizer: Any) -> int:
    """Tokens of :func:`reasoning_text` without special tokens (``count_reasoning_tokens``, PixelThink's
    ``reward_reasoning_tokens`` mode); 0 without a ``<think>`` block."""
    reasoning = reasoning_text(completion)
    if not reasoning:
        return 0
    try:
        ids = tokenizer(reasoning, add_special_tokens=False)
    except TypeError:
        ids = tokenizer(reasoning)
    if isinstance(ids, Mapping) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return len(ids)


def pixelthink_budget(difficulty: float, uncertainty: float = 0.0) -> float | None:
    """PixelThink's length budget (``pixelthink_length_budget``): ``256 + 25 * uncertainty`` when
    D >= 5.0; None (no penalty) when 3.5 <= D < 5.0; 96 below 3.5. Uncertainty only moves the hard budget."""
    if difficulty >= PIXELTHINK_HARD_FROM:
        return PIXELTHINK_HARD_BUDGET + PIXELTHINK_UNCERTAINTY_SCALE * uncertainty
    if difficulty >= PIXELTHINK_MEDIUM_FROM:
        return None
    return PIXELTHINK_EASY_BUDGET


def length_factor(n_tokens: int, difficulty: float, uncertainty: float = 0.0) -> float:
    """PixelThink's length score (``pixelthink_length_score``), in [0, 1].

    ``delta = n_tokens - budget(difficulty, uncertainty)``; ``1 - beta * delta`` over budget,
    ``1 + beta * |delta|`` under it (so 1 after the clamp), clamped to [0, 1]; 1 without a budget.
    beta = 1/500 = 0.002. Zero at ``budget + 500``: 596 words for an easy task.
    """
    budget = pixelthink_budget(difficulty, uncertainty)
    if budget is None:
        return 1.0
    delta = n_tokens - budget
    step = -PIXELTHINK_BETA * delta if delta > 0 else PIXELTHINK_BETA * abs(delta)
    return max(0.0, min(1.0, 1 + step))


def pixelthink_total(
    completion: str,
    gt: str,
    difficulty: float = PIXELTHINK_DEFAULT_DIFFICULTY,
    uncertainty: float = 0.0,
    *,
    length_used: int | None = None,
) -> float:
    """PixelThink's reward, in [0, 5] (``seg_pixelthink_compute_score``):
    ``segzero_total(completion, gt) * length_factor(L_used, difficulty, uncertainty)``.

    ``L_used`` defaults to :func:`length_words` (the whole response's words, the recipe's mode);
    pass ``length_used`` for its ``reward_reasoning_tokens`` mode (:func:`reasoning_tokens`).
    Its dataset fills a missing difficulty with 3.0 (easy: budget 96); the function's default is 2.0.
    """
    used = length_words(completion) if length_used is None else length_used
    return segzero_total(completion, gt) * length_factor(used, difficulty, uncertainty)


def pixelthink_uncertainty(top_logprobs: Sequence[Sequence[float]]) -> float:
    """PixelThink's response uncertainty (``compute_uncertainty_from_logprob_dict``), in [0, 1].

    ``top_logprobs``: per generated token, its candidates' log-probabilities in rank order (vLLM's
    ``logprobs``). Per token with at least two: ``u = clamp(1 - (exp(l1) - exp(l2)), 0, 1)`` in
    float32 (torch, as there); the mean over those tokens; 0 when none has two.
    """
    import torch  # lazily: the rewards are imported by the explorer, which may not need torch

    values = []
    for token in top_logprobs or []:
        if token is None or len(token) < 2:
            continue
        p1 = torch.exp(torch.tensor(float(token[0])))
        p2 = torch.exp(torch.tensor(float(token[1])))
        values.append(float(torch.clamp(1.0 - (p1 - p2), 0.0, 1.0).item()))
    return float(sum(values) / len(values)) if values else 0.0


# --------------------------------------------------------------------------- the paper's terms


def mask_distance(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool -> (H, W) float Euclidean distance of each pixel to the nearest mask pixel (0 on it)."""
    return distance_transform_edt(~np.asarray(mask, dtype=bool))


def answer_negatives(completion: str) -> list[list[float]]:
    """The negative points of a completion, read as strictly as :func:`accuracy` reads the answer.

    The first ``<answer>`` block, strict JSON, a list of objects; each object's ``neg_point_2d`` is
    one ``[x, y]`` or a list of them. Anything else (no answer, not JSON, an item that is not an
    object, a point that is not two numbers) gives no negative points.
    """
    match = ANSWER_PATTERN.search(completion)
    if not match:
        return []
    try:
        items = json.loads(match.group(1))
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return []
    if not isinstance(items, list):
        return []
    points: list[list[float]] = []
    for item in items:
        if not isinstance(item, dict):
            return []
        value = item.get(NEGATIVE_KEY)
        if value is None or value == []:
            continue
        many = isinstance(value, list) and value and all(isinstance(v, list) for v in value)
        for p in value if many else [value]:
            if not (isinstance(p, list) and len(p) == 2 and all(_is_number(v) for v in p)):
                return []
            points.append([float(p[0]), float(p[1])])
    return points


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def negative_distances(negatives: Sequence[Sequence[float]], mask: np.ndarray) -> list[float | None]:
    """Distance (px) of each negative point to the target mask, read at the point rounded to the nearest
    pixel of the distance transform; None for a point outside the image."""
    mask = np.asarray(mask, dtype=bool)
    dist = mask_distance(mask)
    h, w = mask.shape
    out: list[float | None] = []
    for q in negatives:
        x, y = round(float(q[0])), round(float(q[1]))
        out.append(float(dist[y, x]) if 0 <= x < w and 0 <= y < h else None)
    return out


def negative_point_reward(
    negatives: Sequence[Sequence[float]], mask: np.ndarray | None, max_distance: float = NEGATIVE_MAX_DISTANCE
) -> float:
    """The paper's negative-point term, in [0, 1]: ``(1/K) * #{q : 0 < d(q, target mask) <= 40 px}``.

    K = number of predicted negative points (0 when K = 0). ``d`` is the Euclidean distance to the
    nearest pixel of the target mask (the union of the query's targets, so a point on another target
    earns nothing) at the rounded pixel; a point on the mask (d = 0), outside the image, or any point
    when the mask is empty or missing (None) earns nothing.
    """
    if len(negatives) == 0 or mask is None:
        return 0.0
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return 0.0
    good = sum(1 for d in negative_distances(negatives, mask) if d is not None and 0 < d <= max_distance)
    return good / len(negatives)


def difficulty_budget(
    difficulty: float | Mapping[str, float] | None,
    budget: int | None = None,
    config: PipelineConfig | None = None,
) -> int | None:
    """The paper's reasoning budget: an explicit ``budget`` wins; else the difficulty D (a number, or
    the five axis scores 1..10 whose clamped mean is D) -> level -> budget (defaults PixelThink's:
    96 below 3.5, none from 3.5 to 5.0, 256 from 5.0; :class:`PipelineConfig` fields); None: no budget."""
    if budget is not None:
        return int(budget)
    if difficulty is None:
        return None
    cfg = config or PipelineConfig()
    if isinstance(difficulty, Mapping):
        return rate(difficulty, cfg).budget
    return budget_for(difficulty_level(float(difficulty), cfg.easy_below, cfg.hard_from), cfg)


def soft_length_factor(
    n_tokens: int,
    difficulty: float | Mapping[str, float] | None,
    beta: float = DEFAULT_BETA,
    *,
    budget: int | None = None,
    config: PipelineConfig | None = None,
) -> float:
    """The paper's soft length factor: ``s = clamp(1 - beta * (L_used - L_budget), 0, 1)`` when the
    reasoning is over budget, else 1; the budget from :func:`difficulty_budget` (None: s = 1).
    beta 0.002 (PixelThink's; the paper's is unpublished). Unlike PixelThink's, the budget does not
    depend on the model's uncertainty and L_used is the reasoning length (see :func:`videoseg_r1_total`)."""
    return _budget_length_factor(int(n_tokens), difficulty_budget(difficulty, budget, config), beta)


def videoseg_r1_total(
    completion: str,
    gt: str,
    mask: np.ndarray | None = None,
    difficulty: float | Mapping[str, float] | None = None,
    *,
    n_tokens: int | None = None,
    budget: int | None = None,
    beta: float = DEFAULT_BETA,
    config: PipelineConfig | None = None,
) -> float:
    """The paper's reward, in [0, 8]: ``s * (total(completion, gt) + negative_point_reward)``.

    VisionReasoner's reward (:func:`total`, exact) plus the negative-point term on the target ``mask``
    (the answer's ``neg_point_2d`` points, :func:`answer_negatives`; 0 without a mask), times
    :func:`soft_length_factor`. ``L_used`` is ``n_tokens`` when given (reasoning tokens counted by the
    policy's tokenizer, :func:`reasoning_tokens`), else :func:`reasoning_words`. No difficulty and
    no budget: s = 1.
    """
    used = reasoning_words(completion) if n_tokens is None else n_tokens
    s = soft_length_factor(used, difficulty, beta, budget=budget, config=config)
    return s * (total(completion, gt) + negative_point_reward(answer_negatives(completion), mask))


# --------------------------------------------------------------------------- breakdown (view, logs)

KINDS = ("visionreasoner", "segzero", "pixelthink", "videoseg-r1")


@dataclass
class Breakdown:
    """Every term of one completion under one reward kind, the length factor and the total."""

    kind: str
    terms: dict[str, float]
    factor: float = 1.0
    length_used: int | None = None
    budget: float | None = None
    total: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "terms": dict(self.terms),
            "length_factor": self.factor,
            "length_used": self.length_used,
            "budget": self.budget,
            "total": self.total,
            "max_total": MAX_TOTAL[self.kind],
            "notes": list(self.notes),
        }


def pixelthink_difficulty(difficulty: float | Mapping[str, float] | None) -> float:
    """A number for PixelThink's budget: D itself, the mean of five clamped axis scores, or the
    function's default 2.0 when unknown."""
    if difficulty is None:
        return PIXELTHINK_DEFAULT_DIFFICULTY
    if isinstance(difficulty, Mapping):
        return rate(difficulty, PipelineConfig()).difficulty
    return float(difficulty)


def check_kind(kind: str) -> str:
    """A reward kind name (case / underscore tolerant) or ValueError naming the known ones."""
    k = str(kind).strip().lower().replace("_", "-")
    k = {"vision-reasoner": "visionreasoner", "seg-zero": "segzero", "videosegr1": "videoseg-r1"}.get(k, k)
    if k not in KINDS:
        raise ValueError(f"unknown reward kind {kind!r}; use one of {', '.join(KINDS)}")
    return k


def breakdown(
    completion: str,
    gt: str,
    kind: str = "videoseg-r1",
    *,
    mask: np.ndarray | None = None,
    difficulty: float | Mapping[str, float] | None = None,
    uncertainty: float = 0.0,
    n_tokens: int | None = None,
    budget: int | None = None,
) -> Breakdown:
    """Each term of ``kind`` for one completion, computed by the named functions above; ``total``
    equals the kind's total function (:func:`total`, :func:`segzero_total`, :func:`pixelthink_total`,
    :func:`videoseg_r1_total`) on the same arguments."""
    kind = check_kind(kind)
    if kind in ("visionreasoner", "videoseg-r1"):
        terms = {
            "think_format": think_format(completion),
            "seg_format": seg_format(completion),
            "accuracy": accuracy(completion, gt),
            "non_repeat": non_repeat(completion),
        }
        if kind == "visionreasoner":
            return Breakdown(kind, terms, total=total(completion, gt))
        terms["negative_point"] = negative_point_reward(answer_negatives(completion), mask)
        used = reasoning_words(completion) if n_tokens is None else n_tokens
        b = difficulty_budget(difficulty, budget)
        s = soft_length_factor(used, difficulty, budget=budget)
        value = videoseg_r1_total(completion, gt, mask, difficulty, n_tokens=used, budget=budget)
        return Breakdown(kind, terms, factor=s, length_used=used, budget=b, total=value)
    terms = {
        "think_format": think_format(completion),
        "segzero_format": segzero_format(completion),
        "segzero_iou": segzero_iou(completion, gt),
        "segzero_box_l1": segzero_box_l1(completion, gt),
        "segzero_point": segzero_point(completion, gt),
    }
    if kind == "segzero":
        return Breakdown(kind, terms, total=segzero_total(completion, gt))
    d = pixelthink_difficulty(difficulty)
    used = length_words(completion) if n_tokens is None else n_tokens
    return Breakdown(
        kind,
        terms,
        factor=length_factor(used, d, uncertainty),
        length_used=used,
        budget=pixelthink_budget(d, uncertainty),
        total=pixelthink_total(completion, gt, d, uncertainty, length_used=used),
    )


# --------------------------------------------------------------------------- ground truth from rows


def _targets_list(targets: Any) -> list[Mapping[str, Any]]:
    if isinstance(targets, str):
        targets = json.loads(targets) if targets.strip() else []
    if isinstance(targets, Mapping):
        targets = [targets]
    return list(targets or [])


def row_solution(row: Mapping[str, Any], kind: str) -> str:
    """The ground-truth string of a training row for ``kind``, as the official datasets store it.

    VisionReasoner / videoseg-r1: the ``solution`` column, else ``targets`` (our list of
    ``{"bbox_2d", "point_2d", ...}`` or its JSON) as JSON. Seg-Zero / PixelThink: ``solution_segzero``,
    else a ``solution`` holding ``<box>``, else the first target written
    ``<box>(x1,y1),(x2,y2)</box><points>(x,y),(x,y)</points>`` (Seg-Zero is single-object and has two
    points per object; ours has one centre point, written twice -- the rule of
    :func:`videoseg.training.data.segzero_solution`). "" when the row has none (every term that needs
    it then scores 0, as the official code does on a bad ground truth).
    """
    kind = check_kind(kind)
    solution = row.get("solution")
    if kind in ("visionreasoner", "videoseg-r1"):
        if isinstance(solution, str):
            return solution
        targets = row.get("targets")
        return targets if isinstance(targets, str) else json.dumps([dict(t) for t in _targets_list(targets)])
    if isinstance(row.get("solution_segzero"), str):
        return row["solution_segzero"]
    if isinstance(solution, str) and "<box>" in solution:
        return solution
    targets = _targets_list(row.get("targets"))
    if not targets:
        return ""
    x1, y1, x2, y2 = (round(float(v)) for v in targets[0]["bbox_2d"])
    px, py = (round(float(v)) for v in targets[0]["point_2d"])
    return f"<box>({x1},{y1}),({x2},{y2})</box><points>({px},{py}),({px},{py})</points>"


# --------------------------------------------------------------------------- TRL reward functions


def completion_text(completion: Any) -> str:
    """The generated text of one TRL completion: a string (standard format) or a list of messages
    (conversational) whose ``content`` is a string or a list of ``{"type": "text", "text"}`` parts."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        completion = [completion]
    if isinstance(completion, Sequence):
        texts = []
        for message in completion:
            content = message.get("content", "") if isinstance(message, Mapping) else message
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, Sequence):
                texts.extend(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
        return "".join(texts)
    raise TypeError(f"cannot read a completion of type {type(completion).__name__}")


def as_mask(value: Any) -> np.ndarray | None:
    """A dataset cell -> (H, W) bool: a COCO RLE dict (``videoseg.core.masks``) or an array / nested list."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return decode_rle(dict(value))
    return np.asarray(value, dtype=bool)


# Terms per kind, in TRL's logging order. Their sum is the kind's total; for the two kinds with a length
# factor s the last one is "length_penalty" = (s - 1) * (sum of the others), so the terms keep their
# own unscaled curves and TRL's weighted sum (weights 1) is still s * (sum) -- the official total.
TRL_TERMS: dict[str, tuple[str, ...]] = {
    "visionreasoner": ("think_format", "seg_format", "accuracy", "non_repeat"),
    "segzero": ("think_format", "segzero_format", "segzero_iou", "segzero_box_l1", "segzero_point"),
    "pixelthink": (
        "think_format",
        "segzero_format",
        "segzero_iou",
        "segzero_box_l1",
        "segzero_point",
        "length_penalty",
    ),
    "videoseg-r1": (
        "think_format",
        "seg_format",
        "accuracy",
        "non_repeat",
        "negative_point",
        "length_penalty",
    ),
}
LENGTH_MODES = ("words", "reasoning_words", "reasoning_tokens")
_SIMPLE_TERMS: dict[str, Callable[[str], float]] = {
    "think_format": think_format,
    "seg_format": seg_format,
    "non_repeat": non_repeat,
    "segzero_format": segzero_format,
}
_GT_TERMS: dict[str, Callable[[str, str], float]] = {
    "accuracy": accuracy,
    "segzero_iou": segzero_iou,
    "segzero_box_l1": segzero_box_l1,
    "segzero_point": segzero_point,
}


class RewardTerm:
    """One reward term as a TRL reward function: ``f(completions, **columns) -> list[float]``.

    Picklable (a plain class, no closures); ``__name__`` is the term's name, which TRL logs as
    ``rewards/<name>``. Columns read per completion (TRL repeats each dataset column per generation):
    ``solution`` / ``solution_segzero`` / ``targets`` (:func:`row_solution`); ``target_mask`` (RLE or
    array) for the negative-point term; ``difficulty`` (D, or the five axis scores), ``budget`` (wins
    over the difficulty for videoseg-r1) and, for PixelThink, ``uncertainty``.
    """

    def __init__(
        self, kind: str, term: str, *, tokenizer: Any = None, length_mode: str | None = None
    ) -> None:
        self.kind = check_kind(kind)
        if term not in TRL_TERMS[self.kind] and term != "length_factor":
            raise ValueError(f"{kind} has no term {term!r}; it has {', '.join(TRL_TERMS[self.kind])}")
        self.term = term
        self.tokenizer = tokenizer
        default_mode = {"pixelthink": "words"}.get(
            self.kind, "reasoning_tokens" if tokenizer is not None else "reasoning_words"
        )
        self.length_mode = length_mode or default_mode
        if self.length_mode not in LENGTH_MODES:
            raise ValueError(f"length_mode must be one of {LENGTH_MODES}, got {self.length_mode!r}")
        if self.length_mode == "reasoning_tokens" and tokenizer is None:
            raise ValueError("length_mode 'reasoning_tokens' needs a tokenizer")
        self.__name__ = term

    def __repr__(self) -> str:
        return f"RewardTerm({self.kind!r}, {self.term!r})"

    def _used(self, text: str) -> int:
        if self.length_mode == "words":
            return length_words(text)
        if self.length_mode == "reasoning_words":
            return reasoning_words(text)
        return reasoning_tokens(text, self.tokenizer)

    def _gt(self, row: Mapping[str, Any]) -> str:
        try:
            return row_solution(row, self.kind)
        except (ValueError, TypeError, KeyError, IndexError):
            return ""  # an unreadable ground truth scores 0, as in the official code

    def score(self, text: str, row: Mapping[str, Any]) -> float:
        """This term for one completion text and its row's columns."""
        simple = _SIMPLE_TERMS.get(self.term)
        if simple is not None:  # one term: call its function alone
            return simple(text)
        gt = self._gt(row)
        if self.term in _GT_TERMS:
            return _GT_TERMS[self.term](text, gt)
        if self.term == "negative_point":
            return negative_point_reward(answer_negatives(text), as_mask(row.get("target_mask")))
        b = breakdown(
            text,
            gt,
            self.kind,
            mask=as_mask(row.get("target_mask")) if self.kind == "videoseg-r1" else None,
            difficulty=row.get("difficulty"),
            uncertainty=float(row.get("uncertainty") or 0.0),
            n_tokens=self._used(text) if self.kind in ("pixelthink", "videoseg-r1") else None,
            budget=row.get("budget") if self.kind == "videoseg-r1" else None,
        )
        if self.term == "length_factor":
            return b.factor
        if self.term == "length_penalty":
            return (b.factor - 1.0) * sum(b.terms.values())
        return b.terms[self.term]

    def __call__(self, completions: Sequence[Any], **columns: Any) -> list[float]:
        n = len(completions)
        out = []
        for i, completion in enumerate(completions):
            row = {k: v[i] for k, v in columns.items() if isinstance(v, (list, tuple)) and len(v) == n}
            out.append(float(self.score(completion_text(completion), row)))
        return out


def trl_reward_funcs(
    kind: str, *, tokenizer: Any = None, length_mode: str | None = None, log_length_factor: bool = False
) -> list[RewardTerm]:
    """TRL reward functions for ``kind`` (visionreasoner | segzero | pixelthink | videoseg-r1), one per
    term (:data:`TRL_TERMS`); with TRL's default weights (1 each) their sum is the kind's official total.

    ``tokenizer``: counts reasoning tokens for the length factor (videoseg-r1 then uses
    ``reasoning_tokens``; without one, ``reasoning_words``); PixelThink counts the response's words
    unless ``length_mode="reasoning_tokens"``. ``log_length_factor`` appends a ``length_factor``
    function for logging only: give it weight 0 (:func:`trl_reward_weights`).
    """
    kind = check_kind(kind)
    funcs = [RewardTerm(kind, t, tokenizer=tokenizer, length_mode=length_mode) for t in TRL_TERMS[kind]]
    if log_length_factor and kind in ("pixelthink", "videoseg-r1"):
        funcs.append(RewardTerm(kind, "length_factor", tokenizer=tokenizer, length_mode=length_mode))
    return funcs


def trl_reward_weights(kind: str, *, log_length_factor: bool = False) -> list[float]:
    """``GRPOConfig.reward_weights`` matching :func:`trl_reward_funcs` (1 per term, 0 for the logged factor)."""
    kind = check_kind(kind)
    weights = [1.0] * len(TRL_TERMS[kind])
    if log_length_factor and kind in ("pixelthink", "videoseg-r1"):
        weights.append(0.0)
    return weights


REWARD_FUNCTIONS: dict[str, Callable[..., float]] = {
    "visionreasoner": total,
    "segzero": segzero_total,
    "pixelthink": pixelthink_total,
    "videoseg-r1": videoseg_r1_total,
}

__all__ = [
    "BOX_L1_THRESHOLD",
    "IOU_THRESHOLD",
    "KINDS",
    "MAX_OBJECTS",
    "MAX_TOTAL",
    "NEGATIVE_KEY",
    "NEGATIVE_MAX_DISTANCE",
    "PIXELTHINK_BETA",
    "POINT_THRESHOLD",
    "REWARD_FUNCTIONS",
    "SEGZERO_POINT_THRESHOLD",
    "TRL_TERMS",
    "Breakdown",
    "Matching",
    "RewardTerm",
    "accuracy",
    "answer_negatives",
    "as_mask",
    "breakdown",
    "check_kind",
    "completion_text",
    "difficulty_budget",
    "format_reward",
    "length_factor",
    "length_words",
    "mask_distance",
    "negative_distances",
    "negative_point_reward",
    "non_repeat",
    "pixelthink_budget",
    "pixelthink_difficulty",
    "pixelthink_total",
    "pixelthink_uncertainty",
    "reasoning_text",
    "reasoning_tokens",
    "reasoning_words",
    "row_solution",
    "seg_format",
    "segzero_box_iou",
    "segzero_box_l1",
    "segzero_format",
    "segzero_iou",
    "segzero_point",
    "segzero_points_distance",
    "segzero_total",
    "soft_length_factor",
    "think_format",
    "total",
    "trl_reward_funcs",
    "trl_reward_weights",
    "videoseg_r1_total",
    "visionreasoner_matching",
]
