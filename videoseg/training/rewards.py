"""GRPO reward of the reasoner (paper: Training; only the language model is trained).

The paper's reward is VisionReasoner's (think format + answer format + Hungarian-matched accuracy +
non-repetition) plus a negative-point term, all multiplied by a soft length factor from the task
difficulty. Each term is a small pure function with its formula in the docstring; the factory
:func:`make_reward_funcs` wraps them as picklable callables with TRL's reward signature
``(completions, **kwargs) -> list[float]``.

Facts taken from VisionReasoner's reward (``verl/utils/reward_score/vision_reasoner.py`` of the
Seg-Zero / VisionReasoner training code, read as vendored unchanged in xVI-group-SCU/Dr-Seg):

* think format: 1 when the whole output matches ``<think>.*?</think>\\s*<answer>.*?</answer>``;
* answer format: for each of the n answer items, +1 for a 4-number ``bbox_2d`` and +1 for a
  2-number ``point_2d``, each divided by n (so at most 2; an empty list scores 0);
* accuracy: per (prediction, ground truth) pair three 0/1 criteria, box IoU > 0.5 (areas with the
  inclusive-pixel ``+1`` convention), mean absolute difference of the four box coordinates < 10 px,
  point distance < 30 px *and* the predicted point inside the *predicted* box; Hungarian matching
  (``scipy.optimize.linear_sum_assignment``) on the cost ``3 - (sum of criteria)``; the criteria of
  the matched pairs are summed and divided by max(#pred, #gt) (so at most 3);
* non-repetition: the whole output split on ``"."``, stripped, empty pieces dropped; 0 once two
  sentences repeat an earlier one, else 1;
* the score is the plain sum of the terms (at most 7 there).

Our additions (MISSION "Training"): the negative-point term (at most 1) and the length factor
``s`` (:func:`videoseg.reasoning.difficulty.length_factor`). ``total = s * (sum of the terms)``, at
most 8. Where VisionReasoner's code only gave 0 through a caught exception we say what we do:
a target without a box (or point) scores 0 on the box (or point) criteria instead of zeroing the
whole answer, and an empty answer for an empty ground truth scores the full accuracy (a correct
"no target"). All coordinates are in the answer space (the image as the model saw it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.ndimage import distance_transform_edt
from scipy.optimize import linear_sum_assignment

from videoseg.core.config import PipelineConfig
from videoseg.core.cues import CueParseError, TargetCues, parse_answer, split_think_answer
from videoseg.core.masks import decode_rle
from videoseg.reasoning.difficulty import DEFAULT_BETA, budget_for, difficulty_level, length_factor, rate

MAX_THINK_FORMAT = 1.0
MAX_ANSWER_FORMAT = 2.0
MAX_ACCURACY = 3.0
MAX_NON_REPEAT = 1.0
MAX_NEGATIVE = 1.0

_THINK_ANSWER_RE = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.S)
_ANSWER_OPEN = "<answer>"


@dataclass
class RewardConfig:
    """Thresholds of the reward terms and how the length factor is computed."""

    iou_threshold: float = field(default=0.5, metadata={"help": "box IoU must exceed this (VisionReasoner)"})
    l1_threshold: float = field(
        default=10.0, metadata={"help": "mean |box coordinate difference| must be below this, px"}
    )
    point_threshold: float = field(
        default=30.0, metadata={"help": "point distance to the GT point must be below this, px"}
    )
    point_in_gt_box: bool = field(
        default=False,
        metadata={
            "help": "require the predicted point inside the GT box instead of its own predicted box "
            "(VisionReasoner checks the predicted box)"
        },
    )
    negative_max_distance: float = field(
        default=40.0, metadata={"help": "a negative point scores when 0 < distance to the mask <= this, px"}
    )
    beta: float = field(default=DEFAULT_BETA, metadata={"help": "soft length penalty per token over budget"})
    use_length_factor: bool = field(
        default=True, metadata={"help": "multiply every term by the length factor (paper: yes)"}
    )
    pipeline: PipelineConfig = field(
        default_factory=PipelineConfig,
        metadata={"help": "difficulty thresholds and budgets (easy_below, hard_from, *_budget)"},
    )
    tokenizer: Any = field(
        default=None,
        metadata={
            "help": "counts reasoning tokens (a HF tokenizer or a callable text -> list); "
            "None counts whitespace-separated words"
        },
    )

    def __post_init__(self) -> None:
        for name in ("iou_threshold", "l1_threshold", "point_threshold", "negative_max_distance", "beta"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.iou_threshold > 1:
            raise ValueError(f"iou_threshold must be <= 1, got {self.iou_threshold}")


# --------------------------------------------------------------------------- completion text


def completion_text(completion: Any) -> str:
    """The generated text of one TRL completion.

    TRL gives a plain string (standard format) or a list of messages (conversational format) whose
    last assistant ``content`` is a string or a list of ``{"type": "text", "text": ...}`` parts.
    """
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


def reasoning_text(text: str) -> str:
    """The reasoning whose length is budgeted: the ``<think>`` part, or, when the model wrote no
    ``<think>`` tag, everything before ``<answer>`` (so skipping the tags does not dodge the penalty)."""
    think, _ = split_think_answer(text)
    if "<think>" in text:
        return think
    cut = text.find(_ANSWER_OPEN)
    return (text if cut < 0 else text[:cut]).strip()


def count_tokens(text: str, tokenizer: Any = None) -> int:
    """Tokens of ``text``: ``tokenizer.encode`` / ``tokenizer(text)`` when given, else whitespace words."""
    if not text:
        return 0
    if tokenizer is None:
        return len(text.split())
    if hasattr(tokenizer, "encode"):
        return len(tokenizer.encode(text, add_special_tokens=False))
    out = tokenizer(text)
    if isinstance(out, Mapping):
        out = out["input_ids"]
    return len(out)


# --------------------------------------------------------------------------- the terms


def think_format_reward(text: str) -> float:
    """r_think = 1 if ``text.strip()`` fully matches ``<think>.*?</think>\\s*<answer>.*?</answer>``, else 0.

    Outer whitespace is ignored (decoders leave a trailing newline); any other text before
    ``<think>`` or after ``</answer>`` fails, as in VisionReasoner.
    """
    return 1.0 if _THINK_ANSWER_RE.fullmatch(text.strip()) else 0.0


def answer_format_reward(text: str) -> float:
    """r_answer = (1/n) * sum over the n answer items of ([has bbox_2d] + [has point_2d]), in [0, 2].

    The answer is read by :func:`videoseg.core.cues.parse_answer`, the parser the pipeline uses, so the
    reward pays for exactly what inference can consume. An unparsable answer (no ``<answer>``, not
    a list, a box that is not 4 numbers, a point that is not 2 numbers, an item with neither) and an
    empty list score 0.
    """
    try:
        targets = parse_answer(text).targets
    except CueParseError:
        return 0.0
    if not targets:
        return 0.0
    return sum((t.box is not None) + (t.point is not None) for t in targets) / len(targets)


def box_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(M, 4) x (N, 4) boxes [x1, y1, x2, y2] -> (M, N) IoU, areas counted in inclusive pixels
    (w = x2 - x1 + 1), VisionReasoner's convention, which suits extreme-pixel ground-truth boxes."""
    ix1 = np.maximum(pred[:, None, 0], gt[None, :, 0])
    iy1 = np.maximum(pred[:, None, 1], gt[None, :, 1])
    ix2 = np.minimum(pred[:, None, 2], gt[None, :, 2])
    iy2 = np.minimum(pred[:, None, 3], gt[None, :, 3])
    inter = np.maximum(ix2 - ix1 + 1, 0) * np.maximum(iy2 - iy1 + 1, 0)
    area_p = (pred[:, 2] - pred[:, 0] + 1) * (pred[:, 3] - pred[:, 1] + 1)
    area_g = (gt[:, 2] - gt[:, 0] + 1) * (gt[:, 3] - gt[:, 1] + 1)
    union = area_p[:, None] + area_g[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def criteria_matrix(
    pred: Sequence[TargetCues], gt: Sequence[TargetCues], config: RewardConfig | None = None
) -> np.ndarray:
    """(M, N) per-pair score = [IoU > 0.5] + [mean |box diff| < 10] + [|p - p_gt| < 30 and p in box].

    "p in box" is inside the prediction's own box (VisionReasoner) unless ``point_in_gt_box``.
    A prediction without a box scores 0 on both box criteria, one without a point 0 on the point
    criterion (and a point criterion needing the predicted box fails without one).
    """
    cfg = config or RewardConfig()
    m, n = len(pred), len(gt)
    score = np.zeros((m, n))
    nan_box = [np.nan] * 4
    pb = np.array([p.box if p.box is not None else nan_box for p in pred], dtype=float).reshape(m, 4)
    gb = np.array([g.box if g.box is not None else nan_box for g in gt], dtype=float).reshape(n, 4)
    pp = np.array([p.point if p.point is not None else [np.nan] * 2 for p in pred], dtype=float).reshape(m, 2)
    gp = np.array([g.point if g.point is not None else [np.nan] * 2 for g in gt], dtype=float).reshape(n, 2)
    with np.errstate(invalid="ignore"):
        # NaN compares False, so a missing box / point simply fails its criteria.
        score += box_iou(pb, gb) > cfg.iou_threshold
        score += np.abs(pb[:, None, :] - gb[None, :, :]).mean(axis=2) < cfg.l1_threshold
        dist = np.linalg.norm(pp[:, None, :] - gp[None, :, :], axis=2)
        ref = np.broadcast_to(gb[None, :, :], (m, n, 4)) if cfg.point_in_gt_box else pb[:, None, :]
        x, y = pp[:, None, 0], pp[:, None, 1]
        inside = (x >= ref[..., 0]) & (x <= ref[..., 2]) & (y >= ref[..., 1]) & (y <= ref[..., 3])
        score += (dist < cfg.point_threshold) & inside
    return score


def accuracy_reward(
    pred: Sequence[TargetCues], gt: Sequence[TargetCues], config: RewardConfig | None = None
) -> float:
    """r_acc = (sum over Hungarian-matched pairs of the criteria) / max(#pred, #gt), in [0, 3].

    The matching minimises ``3 - criteria`` (VisionReasoner), i.e. maximises the summed criteria,
    so the order of the predicted targets does not matter; unmatched predictions or ground truths
    only grow the denominator. Both empty: 3 (a correct "no target"); exactly one empty: 0.
    """
    if not pred and not gt:
        return MAX_ACCURACY
    if not pred or not gt:
        return 0.0
    score = criteria_matrix(pred, gt, config)
    rows, cols = linear_sum_assignment(MAX_ACCURACY - score)
    return float(score[rows, cols].sum()) / max(len(pred), len(gt))


def non_repeat_reward(text: str) -> float:
    """r_rep = 0 if at least two '.'-separated sentences repeat an earlier one, else 1.

    Sentences are the stripped, non-empty pieces of ``text.split(".")`` over the whole output
    (VisionReasoner); a single repeat is tolerated.
    """
    seen: set[str] = set()
    repeats = 0
    for sentence in (s.strip() for s in text.split(".")):
        if not sentence:
            continue
        if sentence in seen:
            repeats += 1
            if repeats >= 2:
                return 0.0
        seen.add(sentence)
    return 1.0


def mask_distance(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool -> (H, W) float Euclidean distance of each pixel to the nearest mask pixel (0 on it)."""
    return distance_transform_edt(~mask.astype(bool))


def negative_point_reward(
    negatives: Sequence[Sequence[float]],
    mask: np.ndarray,
    max_distance: float = 40.0,
    distance: np.ndarray | None = None,
) -> float:
    """r_neg = (1/K) * #{negative points q : 0 < d(q, mask) <= 40 px}, in [0, 1]; 0 when K = 0.

    ``d`` is the Euclidean distance transform of the complement of the target mask (the union of
    all the query's targets, so a negative point on another target earns nothing), read at the
    point rounded to the nearest pixel; a point outside the image or an empty mask earns nothing.
    ``distance`` may pass a precomputed :func:`mask_distance`.
    """
    if len(negatives) == 0:
        return 0.0
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return 0.0
    dist = mask_distance(mask) if distance is None else distance
    h, w = mask.shape
    good = 0
    for q in negatives:
        x, y = round(float(q[0])), round(float(q[1]))
        if 0 <= x < w and 0 <= y < h and 0 < dist[y, x] <= max_distance:
            good += 1
    return good / len(negatives)


# --------------------------------------------------------------------------- budget and total


def row_budget(
    budget: int | None = None,
    difficulty: float | Mapping[str, float] | None = None,
    config: PipelineConfig | None = None,
) -> int | None:
    """The reasoning budget of a training row: ``budget`` if given, else from the difficulty
    (five axis scores -> :func:`~videoseg.reasoning.difficulty.rate`, or a mean D -> its level's
    budget); None (no penalty) when neither is known."""
    if budget is not None:
        return int(budget)
    if difficulty is None:
        return None
    cfg = config or PipelineConfig()
    if isinstance(difficulty, Mapping):
        return rate(difficulty, cfg).budget
    return budget_for(difficulty_level(float(difficulty), cfg.easy_below, cfg.hard_from), cfg)


def parse_targets(targets: Any) -> list[TargetCues]:
    """Ground-truth targets from a dataset cell: a list of dicts (``bbox_2d`` / ``point_2d`` keys or
    :meth:`TargetCues.to_dict` keys), its JSON string, or TargetCues."""
    if targets is None:
        return []
    if isinstance(targets, str):
        targets = json.loads(targets)
    if isinstance(targets, Mapping):
        targets = [targets]
    return [t if isinstance(t, TargetCues) else TargetCues.from_dict(dict(t)) for t in targets]


def as_mask(mask: Any) -> np.ndarray | None:
    """A dataset cell -> (H, W) bool: an array / nested list, or a COCO RLE dict (``videoseg.core.masks``)."""
    if mask is None:
        return None
    if isinstance(mask, Mapping):
        return decode_rle(dict(mask))
    return np.asarray(mask, dtype=bool)


def predicted_targets(text: str) -> list[TargetCues]:
    """The completion's targets, or [] when the answer does not parse."""
    try:
        return parse_answer(text).targets
    except CueParseError:
        return []


def reward_terms(
    text: str,
    gt_targets: Sequence[TargetCues],
    gt_mask: np.ndarray | None = None,
    config: RewardConfig | None = None,
) -> dict[str, float]:
    """The five unscaled terms of one completion (the names :func:`make_reward_funcs` uses)."""
    cfg = config or RewardConfig()
    pred = predicted_targets(text)
    negatives = [q for t in pred for q in t.negatives]
    return {
        "think_format": think_format_reward(text),
        "answer_format": answer_format_reward(text),
        "accuracy": accuracy_reward(pred, gt_targets, cfg),
        "non_repeat": non_repeat_reward(text),
        "negative_point": 0.0
        if gt_mask is None
        else negative_point_reward(negatives, gt_mask, cfg.negative_max_distance),
    }


def completion_length_factor(text: str, budget: int | None, config: RewardConfig | None = None) -> float:
    """s = clamp(1 - beta * (L_used - L_budget), 0, 1) when L_used > L_budget else 1, with L_used the
    token count of :func:`reasoning_text` (delegates to ``difficulty.length_factor``)."""
    cfg = config or RewardConfig()
    used = count_tokens(reasoning_text(text), cfg.tokenizer)
    return length_factor(used, budget, cfg.beta)


def total_reward(
    text: str,
    gt_targets: Sequence[TargetCues],
    gt_mask: np.ndarray | None = None,
    budget: int | None = None,
    config: RewardConfig | None = None,
) -> float:
    """R = s * (r_think + r_answer + r_acc + r_rep + r_neg), in [0, 8] (paper: reward x length factor).

    Without a ground-truth mask r_neg is 0; ``use_length_factor=False`` sets s = 1.
    """
    cfg = config or RewardConfig()
    s = completion_length_factor(text, budget, cfg) if cfg.use_length_factor else 1.0
    return s * sum(reward_terms(text, gt_targets, gt_mask, cfg).values())


# --------------------------------------------------------------------------- TRL callables


class _RewardFunc:
    """Base of the TRL reward callables: per completion, read the row's columns, score, scale by s.

    TRL calls ``f(prompts=..., completions=..., completion_ids=..., **dataset_columns)`` with one
    value per completion in every column; it names each function by ``__name__`` in its logs.
    Columns read: ``targets`` (ground-truth list, answer space), ``target_mask`` (RLE or array, for
    the negative term), ``budget`` and/or ``difficulty`` (for the length factor).
    """

    name = "reward"

    def __init__(self, config: RewardConfig | PipelineConfig | None = None) -> None:
        self.config = _reward_config(config)
        self.__name__ = self.name

    def __call__(self, completions: Sequence[Any], **kwargs: Any) -> list[float]:
        out = []
        for i, completion in enumerate(completions):
            row = {k: v[i] for k, v in kwargs.items() if _is_column(v, len(completions))}
            text = completion_text(completion)
            value = self.score(text, row)
            if self.config.use_length_factor:
                budget = row_budget(row.get("budget"), row.get("difficulty"), self.config.pipeline)
                value *= completion_length_factor(text, budget, self.config)
            out.append(float(value))
        return out

    def score(self, text: str, row: Mapping[str, Any]) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ThinkFormatReward(_RewardFunc):
    """s * :func:`think_format_reward`."""

    name = "think_format"

    def score(self, text: str, row: Mapping[str, Any]) -> float:
        return think_format_reward(text)


class AnswerFormatReward(_RewardFunc):
    """s * :func:`answer_format_reward`."""

    name = "answer_format"

    def score(self, text: str, row: Mapping[str, Any]) -> float:
        return answer_format_reward(text)


class AccuracyReward(_RewardFunc):
    """s * :func:`accuracy_reward` against the row's ``targets``."""

    name = "accuracy"

    def score(self, text: str, row: Mapping[str, Any]) -> float:
        return accuracy_reward(predicted_targets(text), parse_targets(row.get("targets")), self.config)


class NonRepeatReward(_RewardFunc):
    """s * :func:`non_repeat_reward`."""

    name = "non_repeat"

    def score(self, text: str, row: Mapping[str, Any]) -> float:
        return non_repeat_reward(text)


class NegativePointReward(_RewardFunc):
    """s * :func:`negative_point_reward` against the row's ``target_mask`` (0 without one)."""

    name = "negative_point"

    def score(self, text: str, row: Mapping[str, Any]) -> float:
        mask = as_mask(row.get("target_mask"))
        if mask is None:
            return 0.0
        negatives = [q for t in predicted_targets(text) for q in t.negatives]
        return negative_point_reward(negatives, mask, self.config.negative_max_distance)


class TotalReward(_RewardFunc):
    """:func:`total_reward` as one callable (one logged curve instead of five)."""

    name = "videoseg_r1"

    def score(self, text: str, row: Mapping[str, Any]) -> float:
        return sum(
            reward_terms(
                text, parse_targets(row.get("targets")), as_mask(row.get("target_mask")), self.config
            ).values()
        )


REWARD_CLASSES: tuple[type[_RewardFunc], ...] = (
    ThinkFormatReward,
    AnswerFormatReward,
    AccuracyReward,
    NonRepeatReward,
    NegativePointReward,
)


def make_reward_funcs(config: RewardConfig | PipelineConfig | None = None) -> list[_RewardFunc]:
    """The five terms as TRL reward functions, each already multiplied by the length factor.

    TRL adds its reward functions (weights 1 by default), and ``s*a + s*b + ... = s*(a + b + ...)``,
    so the sum TRL optimises is exactly :func:`total_reward` while each term keeps its own curve.
    Use ``[TotalReward(config)]`` for a single function. The callables are picklable (no lambdas).
    """
    cfg = _reward_config(config)
    return [cls(cfg) for cls in REWARD_CLASSES]


def _reward_config(config: RewardConfig | PipelineConfig | None) -> RewardConfig:
    if config is None:
        return RewardConfig()
    if isinstance(config, PipelineConfig):
        return RewardConfig(pipeline=config)
    if isinstance(config, RewardConfig):
        return config
    raise TypeError(f"expected RewardConfig or PipelineConfig, got {type(config).__name__}")


def _is_column(value: Any, n: int) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == n


__all__ = [
    "MAX_ACCURACY",
    "MAX_ANSWER_FORMAT",
    "MAX_NEGATIVE",
    "MAX_NON_REPEAT",
    "MAX_THINK_FORMAT",
    "REWARD_CLASSES",
    "AccuracyReward",
    "AnswerFormatReward",
    "NegativePointReward",
    "NonRepeatReward",
    "RewardConfig",
    "ThinkFormatReward",
    "TotalReward",
    "accuracy_reward",
    "answer_format_reward",
    "as_mask",
    "box_iou",
    "completion_length_factor",
    "completion_text",
    "count_tokens",
    "criteria_matrix",
    "make_reward_funcs",
    "mask_distance",
    "negative_point_reward",
    "non_repeat_reward",
    "parse_targets",
    "predicted_targets",
    "reasoning_text",
    "reward_terms",
    "row_budget",
    "think_format_reward",
    "total_reward",
]
