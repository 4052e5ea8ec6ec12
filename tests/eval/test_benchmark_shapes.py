"""Acceptance benchmark of the weights-free method (paper steps 1-3 end to end, Table 5 ordering).

Runs the ``shapes`` preset (shapes-world model + HTFS + GrabCut + optical-flow propagation) on
freshly generated shapes-world scenarios whose seeds were never used while developing or tuning
anything (development used seeds 4000-4099), and scores it against the ground truth:

- (a) mean J&F over every expression of 24 scenarios (seeds 91001-91024) is at least 0.85;
- (b) Table 5: on scenarios whose target enters after frame 0 (family ``absent_first_frame``, seeds
  92001-92006), reasoning on the first frame only (``shapes-first-frame``) scores far below full
  HTFS on the reasoning expressions whose target is absent from frame 0, since the first-frame
  sampler cannot place a cue on an object that is not in its frame; and every sampler preset of
  Table 5 runs to a finished run.

The slowest test file of the repository (about a minute on 2 cores).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from videoseg.eval.shapes import evaluate, evaluate_scenario
from videoseg.shapes.world.generator import generate

FRESH_SEEDS = range(91001, 91025)  # 24 scenarios, never used during development
TABLE5_SEEDS = range(92001, 92007)  # 6 scenarios of the absent_first_frame family
MIN_MEAN_JF = 0.85
# HTFS must beat the first-frame baseline by this much on targets absent from frame 0. A first-frame
# cue cannot land on the target, so that baseline only scores on the frames before the target enters
# (where an empty mask is right): 0.30-0.47 per expression on development seeds, against 0.95-0.98 for
# HTFS. Half that gap leaves room for an HTFS miss among the ~6 scored expressions.
TABLE5_MARGIN = 0.3


def test_shapes_preset_reaches_the_acceptance_j_and_f_on_fresh_seeds() -> None:
    result = evaluate(FRESH_SEEDS, preset="shapes")
    rows = result["per_expression"]
    assert len({r["seed"] for r in rows}) == len(FRESH_SEEDS) >= 20
    assert all(not r["errors"] for r in rows), [r["errors"] for r in rows if r["errors"]]
    overall = result["overall"]
    assert overall["count"] == len(rows)
    assert overall["J&F"] == pytest.approx(np.mean([r["J&F"] for r in rows]))
    assert overall["J&F"] >= MIN_MEAN_JF, result["per_family"]


def _absent_from_first_frame_rows(preset: str) -> list[dict[str, Any]]:
    """Rows of the reasoning expressions whose target is not in frame 0, over TABLE5_SEEDS."""
    rows = []
    for seed in TABLE5_SEEDS:
        scenario = generate(seed, "absent_first_frame")
        absent = {
            e.text
            for e in scenario.expressions
            if e.type == "reasoning" and not scenario.expression_mask(e)[0].any()
        }
        rows += [r for r in evaluate_scenario(scenario, preset) if r["text"] in absent]
    return rows


def test_htfs_beats_first_frame_reasoning_when_the_target_is_absent_from_frame_0() -> None:
    htfs = _absent_from_first_frame_rows("shapes")
    first = _absent_from_first_frame_rows("shapes-first-frame")
    assert len(htfs) == len(first) >= 4  # the family does yield such expressions
    assert [r["text"] for r in htfs] == [r["text"] for r in first]
    # The first-frame sampler reasons on frame 0, where the target is not: its keyframe is 0.
    assert all(r["target_frame"] == 0 and not r["target_frame_has_gt"] for r in first)
    htfs_jf = float(np.mean([r["J&F"] for r in htfs]))
    first_jf = float(np.mean([r["J&F"] for r in first]))
    assert htfs_jf > first_jf + TABLE5_MARGIN, (htfs_jf, first_jf)


@pytest.mark.parametrize("preset", ["shapes-target-only", "shapes-random-key", "shapes-first-frame"])
def test_every_sampler_preset_finishes_a_run(preset: str) -> None:
    from videoseg.core.config import preset as make_preset
    from videoseg.core.state import RunState
    from videoseg.io.video import ArrayVideo
    from videoseg.pipeline.orchestrator import run

    scenario = generate(TABLE5_SEEDS[0], "absent_first_frame", frames=48)
    video = ArrayVideo(scenario.frames, scenario.fps)
    expression = scenario.expressions[0]
    state = RunState.from_events(run(video, expression.text, make_preset(preset), preset=preset))
    assert state.status == "finished", state.errors
    assert not state.errors
    assert state.keyframe is not None and 0 <= state.keyframe < len(video)
    # Every frame gets a mask (possibly empty) of the run's targets.
    assert sorted(state.masks) == list(range(len(video)))


COVERAGE_SEEDS = range(93001, 93003)  # the two families the fresh seeds above happen not to draw
TABLE5_PRESETS = ("shapes", "shapes-first-frame", "shapes-target-only", "shapes-random-key")


def test_multi_target_and_long_videos_reach_the_acceptance_j_and_f() -> None:
    result = evaluate(COVERAGE_SEEDS, preset="shapes", families=["multi_target", "long"])
    rows = result["per_expression"]
    assert {r["family"] for r in rows} == {"multi_target", "long"}
    assert any(len(r["obj_ids"]) > 1 for r in rows)  # multi-target expressions are scored
    assert result["overall"]["J&F"] >= MIN_MEAN_JF, result["per_family"]


def test_table5_full_htfs_is_the_best_row() -> None:
    rows = {
        p: evaluate(TABLE5_SEEDS, preset=p, families=["absent_first_frame"])["per_expression"]
        for p in TABLE5_PRESETS
    }
    means = {p: float(np.mean([r["J&F"] for r in rs])) for p, rs in rows.items()}
    assert means["shapes"] >= max(means.values()) - 0.02, means
    assert means["shapes-first-frame"] == min(means.values()), means
    # Only the target frame, without the key segment: a query about an event ("the shape that
    # enters the scene") cannot be resolved from one frame, so that row loses on reasoning queries.
    reasoning = {
        p: float(np.mean([r["J&F"] for r in rs if r["type"] == "reasoning"])) for p, rs in rows.items()
    }
    assert reasoning["shapes"] > reasoning["shapes-target-only"] + 0.1, reasoning
