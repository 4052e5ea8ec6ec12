"""Legibility of the Run view (all three paper steps): what each panel renders, and the CSS that
lays it out.

Functions are tested directly (the keyframe panel keeps a small mask visible, the propagation strip
labels its tiles legibly, the timeline keeps its legend off the axis title); the CSS is tested
against the components that carry its classes, and once in a real browser at phone width (needs
``/usr/bin/chromium``, like tests/ui/test_ui_browser.py; never skipped).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.support.browser import FLAGS, chromium
from videoseg.core import events as ev
from videoseg.core.masks import encode_rle
from videoseg.io.video import ArrayVideo
from videoseg.ui.live import MAX_TILES, STAGE_HEADERS, STRIP_COLUMNS, LiveView, strip_frames
from videoseg.viz.overlay import overlay_masks, target_colour
from videoseg.viz.timeline import timeline_figure

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

W, H = 320, 240


def _video(n: int = 40) -> ArrayVideo:
    frames = np.full((n, H, W, 3), 120, dtype=np.uint8)
    frames[:, 100:130, 150:180] = (160, 60, 200)  # a 30-pixel purple square, the target
    return ArrayVideo(frames, fps=10.0)


def _target_mask() -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[100:130, 150:180] = True
    return mask


def _started(n: int) -> ev.RunStarted:
    video = {"path": "x.mp4", "num_frames": n, "fps": 10.0, "width": W, "height": H, "duration": n / 10}
    return ev.RunStarted(query="the purple square", video=video, config={})


@pytest.mark.parametrize(
    ("num_frames", "keyframe", "expected"),
    [
        (5, 2, [0, 1, 2, 3, 4]),  # fewer frames than tiles: every frame
        (1, 0, [0]),
        (MAX_TILES, 7, list(range(MAX_TILES))),
        # 102 frames: 60 evenly spread; keyframe 81 is not among them and replaces its neighbour 80
        (102, 81, None),
        (1000, 0, None),
        (1000, 999, None),
    ],
)
def test_strip_frames_keep_whole_rows_and_the_keyframe(
    num_frames: int, keyframe: int, expected: list[int] | None
) -> None:
    frames = strip_frames(num_frames, keyframe)
    if expected is not None:
        assert frames == expected
    assert keyframe in frames
    assert len(frames) == min(MAX_TILES, num_frames)  # no extra tile starting a row of its own
    assert frames == sorted(set(frames)) and frames[0] >= 0 and frames[-1] < num_frames
    if num_frames > MAX_TILES:
        assert len(frames) % STRIP_COLUMNS == 0


def test_keyframe_panel_shows_the_mask_not_the_cues(tmp_path: Path) -> None:
    """Stage 3a through the live view: the mask of a 30-pixel target is what the panel shows; the
    Stage 2 panel still draws its cues in full over the same spot."""
    cues = {
        "box": [147, 97, 182, 132],
        "point": [165, 115],
        "negatives": [[120, 60]],
        "obj_id": 1,
        "frame_idx": 5,
    }
    view = LiveView(tmp_path, _video(), trace=False)
    view.apply(_started(40))
    view.apply(ev.CuesParsed(frame_idx=5, targets=[cues], used=["box", "point", "negative"]))
    rle = encode_rle(_target_mask())
    view.apply(ev.KeyframeMask(frame_idx=5, target=0, rle=rle, score=0.9, cues=cues, area=900))
    key = cv2.cvtColor(cv2.imread(view.render_keyframe_image()), cv2.COLOR_BGR2RGB)
    step2 = cv2.cvtColor(cv2.imread(view.render_cues_image()), cv2.COLOR_BGR2RGB)
    frame = _video().frames([5])[0]
    tinted = overlay_masks(frame, _target_mask()[None], contour=False)
    inner = np.zeros((H, W), dtype=bool)
    inner[104:126, 154:176] = True

    def shown(img: np.ndarray) -> float:
        return float((np.abs(img.astype(int) - tinted.astype(int)) <= 40).all(axis=2)[inner].mean())

    assert shown(key) >= 0.9
    red = np.array(target_colour(0))
    assert (np.abs(key[100, 165].astype(int) - red) < 60).all()  # the mask's outline on top
    # the step 2 panel is unchanged: its + centre is a filled disc in the target colour
    assert (np.abs(step2[112, 162].astype(int) - red) < 40).all()
    assert (np.abs(key[112, 162].astype(int) - red) >= 40).any()


def test_strip_labels_are_under_the_tiles_with_a_header_band(tmp_path: Path) -> None:
    n = 102
    view = LiveView(tmp_path, _video(n), trace=False)
    view.apply(_started(n))
    view.apply(ev.PropagationStarted(keyframe=81, num_frames=n, num_targets=1))
    rle = encode_rle(_target_mask())
    view.apply(ev.PropagatedMask(frame_idx=81, direction="keyframe", rles=[rle], done=1, total=n))
    sheet = cv2.imread(view.render_strip(), cv2.IMREAD_GRAYSCALE)
    tile_w = (sheet.shape[1] - 2) // STRIP_COLUMNS - 2
    assert tile_w >= 80  # 60 tiles of 80 px in 5 rows, not 96 tiles of 96 px in 8 rows
    # walk down the middle of the first column: dark background (24), tiles (dimmed grey when not
    # propagated yet, about 62), label bands (dark, with white digits at the left)
    column = sheet[:, 2 + tile_w - 6] > 40
    starts = [y for y in range(1, len(column)) if column[y] and not column[y - 1]]
    ends = [y for y in range(1, len(column)) if not column[y] and column[y - 1]]
    assert len(starts) == MAX_TILES // STRIP_COLUMNS
    header, tile_h = starts[0], ends[0] - starts[0]
    assert tile_h == round(tile_w * H / W)
    assert header >= 0.09 * sheet.shape[0]  # room for the panel's floating label over the image
    assert starts[1] - ends[0] >= 14  # a label band under every tile ...
    digits = sheet[ends[0] : starts[1], 2 : 2 + tile_w]
    assert digits.max() >= 150  # ... where the frame number is written (grey until propagated)
    assert (sheet[starts[0] : ends[0], 2 : 2 + tile_w] < 200).all()  # not on the thumbnail


def test_timeline_legend_and_axis_title_do_not_share_space() -> None:
    level = ev.SamplerLevel(
        level=0,
        window=[0, 99],
        frame_indices=[0, 50, 99],
        raw_answers=["a", "b"],
        intervals=[[20, 60], [30, 70]],
        mean_interval=[25, 65],
        zoom=False,
    )
    fig = timeline_figure([level], num_frames=100)
    layout = fig.layout
    # the "frame" title is above the rows; the legend starts under the rows' bottom edge
    assert layout.xaxis.side == "top" and layout.xaxis.title.text == "frame"
    assert layout.legend.y <= 0 and layout.legend.yanchor == "top"
    assert layout.legend.maxheight  # a long legend (a phone) scrolls instead of squashing the rows
    # the title fits a phone: short, the rest in a subtitle, below the floating panel label
    assert len(layout.title.text) <= 24 and layout.title.subtitle.text
    label_px = (1 - layout.title.y) * layout.height
    assert label_px >= 40 and layout.margin.t >= label_px + 40
    assert timeline_figure([level], title="B").layout.title.text == "B"


# ---------------------------------------------------------------------- CSS


def _css_classes(css: str) -> set[str]:
    return set(re.findall(r"\.(vs-[a-z-]+)", css))


def test_css_rules_match_the_run_view_classes(tmp_path: Path) -> None:
    """Every ``.vs-*`` rule styles something (bug: ``.vs-reason`` vs the panel's ``vs-reasoning``)."""
    import gradio as gr

    from videoseg.ui.app import CSS, STAGE_TABLE
    from videoseg.ui.common import build_run_view

    with gr.Blocks():
        view = build_run_view()
    used = {c for comp in view.values() for c in (getattr(comp, "elem_classes", None) or [])}
    live = LiveView(tmp_path, None, trace=False)  # and the HTML the reasoning panel streams
    live.apply(_started(10))
    live.apply(ev.ReasoningToken(index=0, text="<think>the purple"))
    used |= set(re.findall(r"class='(vs-[a-z-]+)'", live.render_reasoning()))
    styled = _css_classes(CSS)
    assert "vs-reasoning" in styled and "vs-reasoning" in view["reasoning"].elem_classes
    assert styled <= used, styled - used
    assert re.search(r"\.block\.vs-reasoning\s*\{[^}]*max-height", CSS)
    assert 'content: "Stage 2 · reasoning"' in CSS
    # the per-stage table rule finds the table by its header titles
    for title in re.findall(r'th\[title="([a-z]+)"\]', STAGE_TABLE):
        assert title in STAGE_HEADERS


def test_every_launch_carries_the_css(tmp_path: Path) -> None:
    """Gradio 6 takes css in launch(): the demo adds ours however it is launched."""
    from videoseg.ui.app import CSS, build_demo
    from videoseg.ui.session import SessionStore

    demo = build_demo(store=SessionStore(tmp_path))
    demo.queue().launch(
        server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, css=".x { color: red; }"
    )
    try:
        assert demo.css.startswith(".x { color: red; }") and demo.css.endswith(CSS)
    finally:
        demo.close()


@pytest.mark.browser
def test_phone_width_stage_table_and_reasoning_panel(tmp_path: Path) -> None:
    """At 390 px (a phone) no per-stage cell is cut off with "…"; the reasoning panel has its label
    and its max height."""
    from playwright.sync_api import sync_playwright

    from videoseg.ui.app import build_demo
    from videoseg.ui.session import SessionStore

    executable = chromium()
    demo = build_demo(store=SessionStore(tmp_path))
    demo.queue().launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 390, "height": 844})
            page.goto(demo.local_url, wait_until="domcontentloaded")
            page.wait_for_selector('th[title="backend"]', timeout=60_000)
            cells: list[dict[str, Any]] = page.evaluate(
                """() => [...document.querySelectorAll('.table-wrap:has(th[title="backend"]) span.text')]
                    .map(s => ({text: s.innerText, cut: s.scrollWidth > s.clientWidth + 1}))"""
            )
            panel = page.evaluate(
                """() => { const e = document.querySelector('.block.vs-reasoning');
                    return [getComputedStyle(e).maxHeight, getComputedStyle(e, '::before').content]; }"""
            )
            browser.close()
    finally:
        demo.close()
    texts = [c["text"] for c in cells]
    assert "propagator" in texts and "backend" in texts
    assert not [c["text"] for c in cells if c["cut"]]
    assert panel == ["520px", '"Stage 2 · reasoning"']
