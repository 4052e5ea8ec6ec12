"""The HTFS timeline (paper step 1) as a plotly figure.

One row per coarse level, top to bottom: the window searched (grey band), the K interval answers
(thin bars), and their mean, the next key segment (thick bar), so the zoom from coarse to fine reads
downwards. Then a row with the M percentage answers placed inside the final key segment and the
target frame they average to, a row with the sampler's decision (key frames, reference frames, target
frame), and optionally a ground-truth row showing where the target is present. The x axis is frame
indices of the original video; hovering shows seconds too.

Accepts the sampler events themselves (:class:`~videoseg.core.events.SamplerLevel`,
:class:`~videoseg.core.events.SamplerPercent`, :class:`~videoseg.core.events.SamplerResult`), so a live run, a
replayed trace and a test draw the same figure.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from videoseg.core.events import SamplerLevel, SamplerPercent, SamplerResult
from videoseg.viz.overlay import KEY_FRAME_COLOUR, REFERENCE_FRAME_COLOUR, TARGET_FRAME_COLOUR

_ANSWER = "rgba(90, 110, 140, 0.9)"
_MEAN = "rgb(10, 132, 255)"
_WINDOW = "rgba(160, 160, 160, 0.25)"
_GT = "rgba(48, 209, 88, 0.8)"


def _rgb(c: tuple[int, int, int]) -> str:
    return f"rgb({c[0]},{c[1]},{c[2]})"


def presence_runs(present: Sequence[bool]) -> list[tuple[int, int]]:
    """[(start, end)] inclusive runs of True frames, e.g. [F, T, T, F, T] -> [(1, 2), (4, 4)]."""
    runs: list[tuple[int, int]] = []
    start = None
    for i, p in enumerate(present):
        if p and start is None:
            start = i
        elif not p and start is not None:
            runs.append((start, i - 1))
            start = None
    if start is not None:
        runs.append((start, len(present) - 1))
    return runs


def _bar(
    fig: go.Figure,
    x0: float,
    x1: float,
    y: float,
    colour: str,
    width: int,
    name: str,
    hover: str,
    legend: bool,
) -> None:
    fig.add_trace(
        go.Scatter(
            x=[x0, x1],
            y=[y, y],
            mode="lines",
            line={"color": colour, "width": width},
            name=name,
            legendgroup=name,
            showlegend=legend,
            hovertemplate=hover + "<extra></extra>",
        )
    )


def timeline_figure(
    levels: Sequence[SamplerLevel],
    percent: SamplerPercent | None = None,
    result: SamplerResult | None = None,
    num_frames: int | None = None,
    fps: float = 1.0,
    gt_present: Sequence[bool] | None = None,
    title: str | None = None,
) -> go.Figure:
    """The figure for whatever sampler events have arrived so far (any of them may be missing)."""
    fig = go.Figure()
    rows: list[str] = []
    fps = fps if fps and fps > 0 else 1.0

    def sec(f: float) -> str:
        return f"{f / fps:.2f}s"

    seen: set[str] = set()

    def first(name: str) -> bool:
        if name in seen:
            return False
        seen.add(name)
        return True

    for lv in levels:
        y = len(rows)
        rows.append(f"level {lv.level}")
        _window_band(fig, *lv.window, y)
        parsed = [iv for iv in lv.intervals if iv is not None]
        for k, iv in enumerate(parsed):
            # spread the K answers vertically inside the row so overlapping answers stay visible
            dy = -0.3 + 0.45 * (k + 0.5) / max(1, len(parsed))
            _bar(
                fig,
                iv[0],
                iv[1],
                y + dy,
                _ANSWER,
                3,
                "interval answer",
                f"level {lv.level} answer {k + 1}: frames {iv[0]}–{iv[1]} ({sec(iv[0])}–{sec(iv[1])})",
                first("interval answer"),
            )
        missing = sum(iv is None for iv in lv.intervals)
        m0, m1 = lv.mean_interval
        label = "key segment (mean)" + (" → zoom" if lv.zoom else "")
        _bar(
            fig,
            m0,
            m1,
            y + 0.28,
            _MEAN,
            8,
            "mean interval",
            f"level {lv.level} mean: frames {m0}–{m1} ({sec(m0)}–{sec(m1)}); "
            f"{len(parsed)} parsed, {missing} unparsable; {label}",
            first("mean interval"),
        )
    if percent is not None:
        y = len(rows)
        rows.append("percentage")
        k0, k1 = percent.key_segment
        _window_band(fig, k0, k1, y)
        length = k1 - k0 + 1
        xs = [k0 + int(length * p) for p in percent.percents if p is not None]
        texts = [f"{p * 100:.0f}%" for p in percent.percents if p is not None]
        if xs:
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=[y] * len(xs),
                    mode="markers",
                    marker={
                        "color": _ANSWER,
                        "size": 9,
                        "symbol": "line-ns",
                        "line": {"width": 3, "color": _ANSWER},
                    },
                    text=texts,
                    name="percentage answer",
                    hovertemplate="answer %{text} → frame %{x}<extra></extra>",
                )
            )
        note = " (fallback: nothing parsed)" if percent.fallback else ""
        fig.add_trace(
            _target_star(
                percent.target_frame,
                y,
                f"mean {percent.mean_percent * 100:.1f}% → target frame %{{x}}{note}<extra></extra>",
                first("target frame"),
            )
        )
    if result is not None:
        y = len(rows)
        rows.append(f"decision ({result.strategy})")
        if result.key_frames:
            fig.add_trace(
                go.Scatter(
                    x=list(result.key_frames),
                    y=[y] * len(result.key_frames),
                    mode="markers",
                    marker={"color": _rgb(KEY_FRAME_COLOUR), "size": 8, "symbol": "square"},
                    name="key frames",
                    hovertemplate="key frame %{x}<extra></extra>",
                )
            )
        if result.reference_frames:
            fig.add_trace(
                go.Scatter(
                    x=list(result.reference_frames),
                    y=[y] * len(result.reference_frames),
                    mode="markers",
                    marker={"color": _rgb(REFERENCE_FRAME_COLOUR), "size": 10, "symbol": "diamond"},
                    name="reference frames",
                    hovertemplate="reference frame %{x}<extra></extra>",
                )
            )
        fig.add_trace(
            _target_star(result.target_frame, y, "target frame %{x}<extra></extra>", first("target frame"))
        )
    if gt_present is not None:
        y = len(rows)
        rows.append("ground truth")
        for a, b in presence_runs(gt_present):
            _bar(
                fig,
                a - 0.5,
                b + 0.5,
                y,
                _GT,
                10,
                "target present (GT)",
                f"target present: frames {a}–{b}",
                first("target present (GT)"),
            )
    target = result.target_frame if result is not None else (percent.target_frame if percent else None)
    if target is not None and rows:
        fig.add_shape(
            type="line",
            x0=target,
            x1=target,
            y0=-0.5,
            y1=len(rows) - 0.5,
            line={"color": _rgb(TARGET_FRAME_COLOUR), "width": 2, "dash": "dash"},
        )
    x_max = (num_frames - 1) if num_frames else None
    # Layout, top to bottom: room for the UI's floating panel label, the title, the frame axis (on
    # top, like a Gantt chart), the rows, then the legend directly under the rows. With the axis at
    # the bottom, the legend (placed in plot fractions) overlapped its "frame" title; a legend
    # under the rows has its own space. The long title became a title and a subtitle, so a phone
    # does not clip it.
    label_px, heading_px, axis_px = 48, 40, 42
    height = label_px + heading_px + axis_px + 46 * max(1, len(rows)) + 100
    heading: dict[str, object] = {"text": title, "font": {"size": 14}}
    if title is None:
        heading = {
            "text": "HTFS: where to look",
            "subtitle": {"text": "coarse → fine, top → bottom", "font": {"size": 11}},
            "font": {"size": 14},
        }
    fig.update_layout(
        title={
            **heading,
            "x": 0.01,
            "xanchor": "left",
            "yref": "container",
            "y": 1 - label_px / height,
            "yanchor": "top",
        },
        height=height,
        margin={"l": 10, "r": 10, "t": label_px + heading_px + axis_px, "b": 10},
        legend={
            "orientation": "h",
            "y": 0,
            "yanchor": "top",
            "x": 0,
            "xanchor": "left",
            # about 3 rows of entries; more (a phone) scroll inside the legend, the rows keep their size
            "maxheight": 88,
            "font": {"size": 11},
        },
        plot_bgcolor="white",
        hovermode="closest",
    )
    fig.update_yaxes(
        tickvals=list(range(len(rows))),
        ticktext=rows,
        autorange="reversed",
        range=None,
        showgrid=False,
        zeroline=False,
    )
    fig.update_xaxes(
        title_text="frame",
        title_standoff=4,
        side="top",
        showgrid=True,
        gridcolor="#eee",
        zeroline=False,
        range=[-1, x_max + 1] if x_max is not None else None,
    )
    return fig


__all__ = ["presence_runs", "timeline_figure"]


def _target_star(frame: int, y: float, hovertemplate: str, showlegend: bool) -> go.Scatter:
    """The target frame's star marker (the same legend entry wherever it is drawn)."""
    return go.Scatter(
        x=[frame],
        y=[y],
        mode="markers",
        marker={
            "color": _rgb(TARGET_FRAME_COLOUR),
            "size": 16,
            "symbol": "star",
            "line": {"width": 1, "color": "black"},
        },
        name="target frame",
        legendgroup="target frame",
        showlegend=showlegend,
        hovertemplate=hovertemplate,
    )


def _window_band(fig: go.Figure, start: int, end: int, y: float) -> None:
    """The grey band of the frames a row's question looked at."""
    fig.add_shape(
        type="rect",
        x0=start - 0.5,
        x1=end + 0.5,
        y0=y - 0.4,
        y1=y + 0.4,
        fillcolor=_WINDOW,
        line={"width": 0},
        layer="below",
    )
