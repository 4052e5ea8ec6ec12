"""Per-frame J&F curves (the benchmarks' score, frame by frame) for comparing runs and inspecting failures.

:func:`per_frame_scores` computes J (region IoU) and F (DAVIS boundary F-measure) per frame with
:mod:`videoseg.eval.metrics`, the same code the evaluation uses; :func:`jf_curves_figure` plots one J&F
curve per run, marking each run's target frame (the frame its cues were placed on, paper step 2), so
a drop of quality away from the keyframe (propagation decay, step 3b) is visible at a glance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

# Run colours differ from target colours on purpose: here a colour is a preset, not an object.
_RUN_COLOURS = ("#0a84ff", "#ff9f0a", "#30d158", "#bf5af2")


def per_frame_scores(pred: np.ndarray, gt: np.ndarray) -> dict[str, list[float]]:
    """pred, gt: (T, H, W) bool -> {"J": [...], "F": [...], "J&F": [...]} per frame."""
    from videoseg.eval.metrics import boundary_f, jaccard

    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in frames or size")
    j = [float(v) for v in np.asarray(jaccard(pred, gt)).reshape(-1)]
    f = [float(v) for v in np.asarray(boundary_f(pred, gt)).reshape(-1)]
    return {"J": j, "F": f, "J&F": [(a + b) / 2 for a, b in zip(j, f, strict=True)]}


def summarise(scores: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Means over frames (how an expression's J, F and J&F are reported)."""
    return {k: float(np.mean(v)) if len(v) else float("nan") for k, v in scores.items()}


def jf_curves_figure(
    series: Mapping[str, Mapping[str, Sequence[float]]],
    target_frames: Mapping[str, int | None] | None = None,
    title: str = "per-frame J&F",
    worst: Sequence[int] | None = None,
) -> go.Figure:
    """One J&F line per named run (``series[name]["J&F"]``), its target frame as a star.

    ``worst``: frame indices to mark with vertical lines (the Inspect tab's worst frames).
    """
    fig = go.Figure()
    for i, (name, scores) in enumerate(series.items()):
        jf = list(scores.get("J&F", []))
        colour = _RUN_COLOURS[i % len(_RUN_COLOURS)]
        mean = float(np.mean(jf)) if jf else float("nan")
        fig.add_trace(
            go.Scatter(
                x=list(range(len(jf))),
                y=jf,
                mode="lines",
                name=f"{name} (mean {mean:.3f})",
                line={"color": colour, "width": 2},
                hovertemplate=f"{name}<br>frame %{{x}}: J&F %{{y:.3f}}<extra></extra>",
            )
        )
        tf = (target_frames or {}).get(name)
        if tf is not None and 0 <= tf < len(jf):
            fig.add_trace(
                go.Scatter(
                    x=[tf],
                    y=[jf[tf]],
                    mode="markers",
                    showlegend=False,
                    marker={
                        "symbol": "star",
                        "size": 14,
                        "color": colour,
                        "line": {"width": 1, "color": "black"},
                    },
                    hovertemplate=f"{name}: target frame {tf}, J&F %{{y:.3f}}<extra></extra>",
                )
            )
    for f in worst or []:
        fig.add_vline(x=f, line={"color": "rgba(255,59,48,0.5)", "dash": "dot", "width": 1})
    fig.update_layout(
        title={"text": title, "font": {"size": 14}},
        height=300,
        margin={"l": 10, "r": 10, "t": 40, "b": 30},
        plot_bgcolor="white",
        legend={"orientation": "h", "y": -0.25},
    )
    fig.update_yaxes(range=[-0.02, 1.02], title_text="J&F", gridcolor="#eee")
    fig.update_xaxes(title_text="frame", gridcolor="#eee")
    return fig


def scores_table(rows: Mapping[str, Mapping[str, Any]]) -> list[list[Any]]:
    """[[name, J, F, J&F, target frame], ...] rounded for display."""
    out = []
    for name, r in rows.items():
        out.append([name, round(r["J"], 3), round(r["F"], 3), round(r["J&F"], 3), r.get("target_frame")])
    return out


__all__ = ["jf_curves_figure", "per_frame_scores", "scores_table", "summarise"]
