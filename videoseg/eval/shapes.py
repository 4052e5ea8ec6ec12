"""Score a preset on freshly generated shapes-world scenarios (the whole method, steps 1-3, vs ground truth).

:func:`evaluate` generates one scenario per seed (and per family when families are given), saves it
as an H.264 video (so the model sees compressed pixels, as with any real video), runs
:func:`videoseg.pipeline.orchestrator.run` for every expression, and scores the propagated masks against the
union of the expression's ground-truth objects with :func:`videoseg.eval.metrics.expression_scores`
(MeViS / ReVOS protocol: J and F averaged over the frames, then over expressions).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from videoseg.shapes.world.generator import Scenario, generate


def _predicted_masks(state: Any, num_frames: int, height: int, width: int) -> np.ndarray:
    """(T, H, W) bool union over targets of a finished run's masks (empty where a frame is missing),
    computed where every scored prediction's union is (:func:`videoseg.core.masks.union_stack`)."""
    from videoseg.core.masks import union_stack

    return union_stack(state.masks, num_frames, height, width)


def evaluate_scenario(
    scenario: Scenario,
    preset: str = "shapes",
    config_overrides: dict[str, Any] | None = None,
    workdir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Run and score every expression of one scenario; one row per expression."""
    from videoseg.core.config import preset as make_preset
    from videoseg.core.state import RunState
    from videoseg.eval.metrics import expression_scores
    from videoseg.pipeline.orchestrator import run

    config = make_preset(preset, **(config_overrides or {}))
    rows = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        scenario.save(tmp)
        video = Path(tmp) / "video.mp4"
        T = scenario.num_frames
        W, H = scenario.size
        for expr in scenario.expressions:
            start = time.perf_counter()
            state = RunState.from_events(run(video, expr.text, config, preset=preset))
            pred = _predicted_masks(state, T, H, W)
            score = expression_scores(
                pred, scenario.masks, expr.obj_ids, expr_id=f"{scenario.seed}/{expr.id}", expr_type=expr.type
            )
            row = score.to_dict()
            gt_frames = [int(f) for f in np.flatnonzero(scenario.expression_mask(expr).any(axis=(1, 2)))]
            row.update(
                family=scenario.family,
                seed=scenario.seed,
                text=expr.text,
                obj_ids=list(expr.obj_ids),
                target_frame=state.keyframe,
                target_frame_has_gt=state.keyframe in set(gt_frames),
                keyframe_j=float(score.j[state.keyframe]) if state.keyframe is not None else None,
                errors=[e.message for e in state.errors],
                seconds=time.perf_counter() - start,
            )
            rows.append(row)
    return rows


def evaluate(
    seeds: Iterable[int],
    preset: str = "shapes",
    config_overrides: dict[str, Any] | None = None,
    *,
    families: Sequence[str] | None = None,
    frames: int | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Mean J, F, J&F over the expressions of generated scenarios.

    seeds: one scenario per seed (family drawn from the seed), or per (seed, family) when
    ``families`` is given; frames: override the number of frames. ``progress`` is called with
    each expression's row. Returns ``per_expression`` rows (J, F, J&F, family, type, seed, text,
    target frame ...), ``overall`` / ``referring`` / ``reasoning`` / ``revos`` means (as
    :func:`videoseg.eval.metrics.aggregate_expressions`), ``per_family`` means and the ``preset``.
    """
    from videoseg.eval.metrics import aggregate_expressions

    rows: list[dict[str, Any]] = []
    for seed in seeds:
        for family in families or [None]:
            scenario = generate(int(seed), family, frames=frames)
            for row in evaluate_scenario(scenario, preset, config_overrides):
                rows.append(row)
                if progress is not None:
                    progress(row)
    if not rows:
        raise ValueError("no scenarios to evaluate (empty seeds)")
    summary = aggregate_expressions(rows)
    per_family: dict[str, dict[str, float]] = {}
    for fam in sorted({r["family"] for r in rows}):
        sub = [r for r in rows if r["family"] == fam]
        per_family[fam] = {
            "J": float(np.mean([r["J"] for r in sub])),
            "F": float(np.mean([r["F"] for r in sub])),
            "J&F": float(np.mean([r["J&F"] for r in sub])),
            "count": len(sub),
        }
    summary["per_expression"] = rows
    summary["per_family"] = per_family
    summary["preset"] = preset
    return summary
