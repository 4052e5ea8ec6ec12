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


# Benchmark results (videoseg.eval.benchmark): one point per expression, sorted worst first.
_TYPE_COLOURS = {"referring": "#0a84ff", "reasoning": "#bf5af2", "other": "#8e8e93"}


def benchmark_jf_figure(
    rows: Sequence[Mapping[str, Any]],
    title: str = "per-expression J&F, worst first",
    worst: int = 5,
    links: bool = False,
) -> go.Figure:
    """Per-expression J&F of a benchmark result sorted ascending, coloured by expression type, failed
    runs as red crosses; the ``worst`` lowest are labelled with their key, and with ``links`` the
    label links to the expression's trace (``row["trace"]``, a path relative to the result folder:
    the link works in ``results.html`` opened from that folder)."""
    from html import escape

    scored = sorted(
        (r for r in rows if r.get("J&F") is not None), key=lambda r: (r["J&F"], str(r.get("key")))
    )
    fig = go.Figure()
    for kind in dict.fromkeys(str(r.get("type")) for r in scored):
        pos = [(i, r) for i, r in enumerate(scored, 1) if str(r.get("type")) == kind]
        fig.add_trace(
            go.Scatter(
                x=[i for i, _ in pos],
                y=[r["J&F"] for _, r in pos],
                mode="markers",
                name=kind,
                marker={
                    "color": [
                        "#ff3b30" if r.get("status") == "error" else _TYPE_COLOURS.get(kind, "#8e8e93")
                        for _, r in pos
                    ],
                    "symbol": ["x" if r.get("status") == "error" else "circle" for _, r in pos],
                    "size": 7,
                },
                # expression texts are data: escaped, so a "<b>" in one is shown, not rendered
                customdata=[[escape(str(r.get("key"))), escape(str(r.get("text", "")))] for _, r in pos],
                hovertemplate="%{customdata[0]}: J&F %{y:.3f}<br>%{customdata[1]}<extra></extra>",
            )
        )
    for i, r in enumerate(scored[: max(worst, 0)], 1):
        label = escape(str(r.get("key")))
        if links and r.get("trace"):
            label = f'<a href="{escape(str(r["trace"]), quote=True)}">{label}</a>'
        fig.add_annotation(
            x=i, y=r["J&F"], text=label, showarrow=True, arrowhead=0, ax=30, ay=-20 - 14 * (i % 3)
        )
    fig.update_layout(
        title={"text": escape(title), "font": {"size": 14}},
        height=340,
        margin={"l": 10, "r": 10, "t": 40, "b": 30},
        plot_bgcolor="white",
        legend={"orientation": "h", "y": -0.2},
    )
    fig.update_yaxes(range=[-0.02, 1.02], title_text="J&F", gridcolor="#eee")
    fig.update_xaxes(title_text="expressions, worst first", gridcolor="#eee")
    return fig


# --------------------------------------------------------------------------- per-propagator diagnosis

DIAGNOSIS_HEADERS = ["run", "frames/s", "peak memory (MB)", "drift starts", "worst frame", "why worst"]


def drift_figure(diagnoses: Mapping[str, Any], title: str = "Where each run's masks drift") -> go.Figure:
    """Mask area and IoU with the previous frame per frame, one colour per run (paper step 3b).

    ``diagnoses``: run name -> :class:`videoseg.eval.diagnosis.TrackDiagnosis`. A dotted line marks each
    run's keyframe, a cross the frame where its drift starts (first sharp change walking away from
    the keyframe)."""
    from html import escape

    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=("mask area (px)", "IoU with the previous frame"),
    )
    for k, (name, d) in enumerate(diagnoses.items()):
        colour = _RUN_COLOURS[k % len(_RUN_COLOURS)]
        label = escape(str(name))
        frames = list(range(len(d.areas)))
        fig.add_trace(
            go.Scatter(
                x=frames, y=d.areas, mode="lines", name=label, line={"color": colour}, legendgroup=label
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=frames,
                y=d.iou_prev,
                mode="lines",
                name=label,
                line={"color": colour},
                legendgroup=label,
                showlegend=False,
            ),
            row=2,
            col=1,
        )
        if d.keyframe is not None:
            fig.add_vline(x=d.keyframe, line={"color": colour, "dash": "dot", "width": 1})
        if d.drift_frame is not None:
            fig.add_trace(
                go.Scatter(
                    x=[d.drift_frame],
                    y=[d.iou_prev[d.drift_frame] if d.drift_frame > 0 else None],
                    mode="markers",
                    marker={"symbol": "x", "size": 10, "color": colour},
                    name=f"{label}: drift starts",
                    legendgroup=label,
                    showlegend=False,
                    hovertemplate=f"{label}: drift starts at frame %{{x}}<extra></extra>",
                ),
                row=2,
                col=1,
            )
    fig.update_layout(
        title={"text": escape(title), "font": {"size": 14}},
        height=420,
        margin={"l": 10, "r": 10, "t": 60, "b": 30},
        plot_bgcolor="white",
        legend={"orientation": "h", "y": -0.12},
    )
    fig.update_yaxes(gridcolor="#eee")
    fig.update_yaxes(range=[-0.02, 1.02], row=2, col=1)
    fig.update_xaxes(title_text="frame", row=2, col=1, gridcolor="#eee")
    return fig


def diagnosis_rows(diagnoses: Mapping[str, Any]) -> list[list[Any]]:
    """One table row per run: frames/s, peak memory, where drift starts, the worst frame and why."""
    rows = []
    for name, d in diagnoses.items():
        rows.append(
            [
                name,
                None if d.frames_per_second is None else round(d.frames_per_second, 1),
                None if d.peak_memory_mb is None else round(d.peak_memory_mb),
                "none" if d.drift_frame is None else d.drift_frame,
                d.worst_frame,
                d.worst_reason,
            ]
        )
    return rows


def side_by_side(panels: Sequence[tuple[str, np.ndarray]], height: int = 240) -> np.ndarray:
    """(H, W, 3) uint8: the images scaled to one ``height``, left to right, each with its caption."""
    import cv2

    tiles = []
    for caption, image in panels:
        image = np.asarray(image, dtype=np.uint8)
        scale = height / image.shape[0]
        tile = cv2.resize(
            image, (max(1, round(image.shape[1] * scale)), height), interpolation=cv2.INTER_AREA
        )
        bar = np.full((22, tile.shape[1], 3), 255, dtype=np.uint8)
        cv2.putText(
            bar, str(caption)[:60], (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA
        )
        tiles.append(np.vstack([bar, tile]))
        tiles.append(np.full((height + 22, 6, 3), 255, dtype=np.uint8))
    if not tiles:
        raise ValueError("no panels to place side by side")
    return np.hstack(tiles[:-1])


__all__ = [
    "DIAGNOSIS_HEADERS",
    "benchmark_jf_figure",
    "diagnosis_rows",
    "drift_figure",
    "jf_curves_figure",
    "per_frame_scores",
    "scores_table",
    "side_by_side",
    "summarise",
]
