"""Task difficulty -> reasoning budget, and the soft length factor (paper: training reward, step 2).

The paper has an MLLM rate five axes (scene complexity, segmentation challenge, temporal ambiguity,
motion complexity, linguistic ambiguity) from 1 to 10; the difficulty D is their mean. Easy / medium /
hard levels map to reasoning-token budgets, and the reward is multiplied by a soft length factor
``s = clamp(1 - beta * (L_used - L_budget), 0, 1)`` when the reasoning is over budget (else 1).
The paper's constants are unpublished; the defaults in :class:`~videoseg.core.config.PipelineConfig` are
PixelThink's (same formula): beta 0.002, 96 tokens below D = 3.5, no penalty from 3.5 to 5.0, 256
tokens at D >= 5.0.

At inference the budget only shapes the prompt ("keep the thinking short: at most about N tokens");
it never cuts generation, whose cap is the reasoner profile's (:func:`max_new_tokens_for`), so a model
that reasons longer still writes its answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from videoseg.core.config import PipelineConfig
from videoseg.sampling.answers import DIFFICULTY_AXES

DEFAULT_BETA = 0.002  # PixelThink


@dataclass
class Difficulty:
    """A rating: the five clamped scores, their mean D, the level and its budget (None: no budget)."""

    scores: dict[str, float]
    difficulty: float
    level: str  # "easy" | "medium" | "hard"
    budget: int | None


def clamp_score(value: float) -> float:
    """Scores live in 1..10; anything else the model writes is pulled to the nearest end."""
    return min(max(float(value), 1.0), 10.0)


def difficulty_level(d: float, easy_below: float = 3.5, hard_from: float = 5.0) -> str:
    """D below ``easy_below`` is easy, at or above ``hard_from`` hard, medium between."""
    if d < easy_below:
        return "easy"
    if d >= hard_from:
        return "hard"
    return "medium"


def budget_for(level: str, config: PipelineConfig) -> int | None:
    """The reasoning-token budget of a level (None: no budget, PixelThink's medium band)."""
    budgets = {"easy": config.easy_budget, "medium": config.medium_budget, "hard": config.hard_budget}
    if level not in budgets:
        raise ValueError(f"unknown difficulty level {level!r}")
    return budgets[level]


def rate(scores: Mapping[str, float], config: PipelineConfig) -> Difficulty:
    """Five axis scores -> :class:`Difficulty`. Missing axes raise ValueError; scores are clamped to 1..10."""
    missing = [a for a in DIFFICULTY_AXES if a not in scores]
    if missing:
        raise ValueError(f"difficulty rating lacks {missing}")
    clamped = {a: clamp_score(scores[a]) for a in DIFFICULTY_AXES}
    d = sum(clamped.values()) / len(clamped)
    level = difficulty_level(d, config.easy_below, config.hard_from)
    return Difficulty(scores=clamped, difficulty=d, level=level, budget=budget_for(level, config))


def length_factor(used_tokens: int, budget: int | None, beta: float = DEFAULT_BETA) -> float:
    """Soft length factor s = clamp(1 - beta * (L_used - L_budget), 0, 1) when over budget, else 1.

    ``budget`` None means no penalty (s = 1). Pure; the GRPO reward multiplies by it.
    """
    if budget is None or used_tokens <= budget:
        return 1.0
    return min(max(1.0 - beta * (used_tokens - budget), 0.0), 1.0)


def max_new_tokens_for(budget: int | None, config: PipelineConfig) -> int:
    """The reasoning token cap: ``config.max_new_tokens`` when set, else the profile's.

    The budget never cuts an answer (issue 12): it shapes the prompt (and, in training, the reward);
    a model that reasons past it still finishes. ``budget`` is accepted so callers read the same.
    """
    if config.max_new_tokens is not None:
        return int(config.max_new_tokens)
    from videoseg.reasoning.profiles import get_profile

    return int(get_profile(config.profile).max_new_tokens)


__all__ = [
    "DEFAULT_BETA",
    "Difficulty",
    "budget_for",
    "clamp_score",
    "difficulty_level",
    "length_factor",
    "max_new_tokens_for",
    "rate",
]
