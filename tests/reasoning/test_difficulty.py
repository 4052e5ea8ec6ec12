"""Difficulty D -> level -> budget, the soft length factor, and the generation cap (table-driven)."""

from __future__ import annotations

import pytest

from videoseg.core.config import PipelineConfig
from videoseg.reasoning.difficulty import (
    budget_for,
    difficulty_level,
    length_factor,
    max_new_tokens_for,
    rate,
)

AXES = ("scene", "segmentation", "temporal", "motion", "linguistic")


@pytest.mark.parametrize(
    ("d", "level"),
    [(1.0, "easy"), (3.49, "easy"), (3.5, "medium"), (4.99, "medium"), (5.0, "hard"), (10.0, "hard")],
)
def test_levels_follow_pixelthink_thresholds(d: float, level: str) -> None:
    assert difficulty_level(d) == level


@pytest.mark.parametrize(
    ("scores", "d", "level", "budget"),
    [
        ((1, 2, 3, 4, 5), 3.0, "easy", 96),
        ((3, 4, 4, 4, 4), 3.8, "medium", None),  # PixelThink: no penalty between 3.5 and 5
        ((5, 5, 5, 5, 5), 5.0, "hard", 256),
        ((0, -3, 0, 0, 0), 1.0, "easy", 96),  # clamped up to 1
        ((15, 10, 10, 10, 99), 10.0, "hard", 256),  # clamped down to 10
    ],
)
def test_rate(scores: tuple[float, ...], d: float, level: str, budget: int | None) -> None:
    rating = rate(dict(zip(AXES, scores)), PipelineConfig())
    assert rating.difficulty == pytest.approx(d)
    assert rating.level == level
    assert rating.budget == budget
    assert all(1.0 <= v <= 10.0 for v in rating.scores.values())


def test_rate_uses_the_configured_thresholds_and_budgets() -> None:
    cfg = PipelineConfig(easy_below=2.0, hard_from=3.0, easy_budget=10, medium_budget=20, hard_budget=30)
    assert [rate(dict.fromkeys(AXES, v), cfg).budget for v in (1.5, 2.5, 3.5)] == [10, 20, 30]
    assert budget_for("medium", cfg) == 20
    with pytest.raises(ValueError, match="unknown difficulty level"):
        budget_for("extreme", cfg)


def test_rate_rejects_missing_axes() -> None:
    with pytest.raises(ValueError, match="lacks"):
        rate({"scene": 3}, PipelineConfig())


@pytest.mark.parametrize(
    ("used", "budget", "beta", "expected"),
    [
        (50, 96, 0.002, 1.0),  # under budget
        (96, 96, 0.002, 1.0),  # exactly on budget
        (196, 96, 0.002, 0.8),  # 100 over: 1 - 0.2
        (596, 96, 0.002, 0.0),  # 500 over: clamped at 0
        (1000, 96, 0.002, 0.0),
        (300, 256, 0.01, 0.56),
        (5000, None, 0.002, 1.0),  # no budget: no penalty
    ],
)
def test_length_factor(used: int, budget: int | None, beta: float, expected: float) -> None:
    assert length_factor(used, budget, beta) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("budget", "profile", "max_new", "expected"),
    [
        (96, "qwen2.5-vl", None, 1024),  # the budget never cuts: the profile's cap
        (None, "qwen2.5-vl", None, 1024),
        (256, "visionreasoner", None, 2048),  # VisionReasoner's reference cap
        (96, "seg-zero", None, 1024),  # Seg-Zero's
        (96, "qwen2.5-vl", 300, 300),  # the config's cap, when set, wins
    ],
)
def test_generation_cap(budget: int | None, profile: str, max_new: int | None, expected: int) -> None:
    cfg = PipelineConfig(profile=profile, max_new_tokens=max_new)
    assert max_new_tokens_for(budget, cfg) == expected


def test_retired_budget_cap_settings_still_load_from_old_traces() -> None:
    old = {**PipelineConfig().to_dict(), "cap_generation_by_budget": True, "answer_allowance": 160}
    assert PipelineConfig.from_dict(old) == PipelineConfig()
