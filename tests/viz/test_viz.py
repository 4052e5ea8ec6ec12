"""Tests for videoseg.viz: cue and mask drawing, the HTFS timeline figure, J&F curves."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from videoseg.core.cues import TargetCues
from videoseg.core.events import SamplerLevel, SamplerPercent, SamplerResult
from videoseg.viz.curves import jf_curves_figure, per_frame_scores, summarise
from videoseg.viz.overlay import (
    TARGET_FRAME_COLOUR,
    contact_sheet,
    cues_legend_html,
    draw_cues,
    keyframe_overlay,
    light_cues_marker_size,
    mark_frame,
    marker_radius,
    overlay_masks,
    target_colour,
    target_hex,
)
from videoseg.viz.timeline import presence_runs, timeline_figure


def _frame(h: int = 60, w: int = 80, value: int = 100) -> np.ndarray:
    return np.full((h, w, 3), value, dtype=np.uint8)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (0, (255, 59, 48)),  # first target red
        (1, (10, 132, 255)),  # second blue
        (8, (255, 59, 48)),  # cycles after eight
    ],
)
def test_target_colour_table(target: int, expected: tuple[int, int, int]) -> None:
    assert target_colour(target) == expected
    assert target_hex(target) == "#{:02x}{:02x}{:02x}".format(*expected)


def test_overlay_masks_colours_only_the_mask_and_keeps_input() -> None:
    frame = _frame()
    masks = np.zeros((2, 60, 80), dtype=bool)
    masks[0, 10:20, 10:20] = True
    masks[1, 30:40, 50:60] = True
    out = overlay_masks(frame, masks, alpha=0.5, contour=False)
    assert (frame == 100).all()  # input untouched
    assert (out[0, 0] == 100).all()  # background unchanged
    assert tuple(out[15, 15]) == (177, 79, 74)  # 0.5 * 100 + 0.5 * red
    assert tuple(out[35, 55]) == (55, 116, 177)  # 0.5 * 100 + 0.5 * blue


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((60, 80), "uint8 frame"),  # grey frame
        ((60, 80, 4), "uint8 frame"),  # RGBA
    ],
)
def test_overlay_rejects_bad_frames(shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        overlay_masks(np.zeros(shape, dtype=np.uint8), np.zeros((1, 60, 80), dtype=bool))


def test_overlay_rejects_mask_of_other_size() -> None:
    with pytest.raises(ValueError, match="do not match"):
        overlay_masks(_frame(), np.zeros((1, 10, 10), dtype=bool))


def test_draw_cues_marks_box_point_and_negative_in_target_colour() -> None:
    frame = _frame(240, 320, 100)
    cues = [
        TargetCues(box=[20, 20, 120, 120], point=[70, 70], negatives=[[200, 200]], obj_id=1),
        {"box": [150, 30, 300, 100], "point": None, "negatives": [], "obj_id": 2, "frame_idx": 0},
    ]
    out = draw_cues(frame, cues)
    red, blue = np.array(target_colour(0)), np.array(target_colour(1))
    # box edges in the target's colour
    assert (np.abs(out[20, 60].astype(int) - red) < 30).all()
    assert (np.abs(out[65, 150].astype(int) - blue) < 30).all()
    r = marker_radius(frame)
    # the + centre is a filled disc: a pixel inside it, off the cross, has the target's colour
    assert (np.abs(out[70 - r // 2, 70 - r // 2].astype(int) - red) < 30).all()
    # the − negative point is hollow: inside the ring, off the minus bar, the frame shows through
    assert tuple(out[200 - 2, 200]) == (100, 100, 100)
    assert (np.abs(out[200, 200].astype(int) - red) < 30).all()  # the minus bar
    assert (frame == 100).all()


def test_draw_cues_without_cues_is_a_copy() -> None:
    frame = _frame()
    out = draw_cues(frame, [])
    assert out is not frame and (out == frame).all()


def test_mark_frame_border() -> None:
    out = mark_frame(_frame(), (1, 2, 3), width=3)
    assert tuple(out[0, 0]) == (1, 2, 3) and tuple(out[2, 40]) == (1, 2, 3)
    assert tuple(out[30, 40]) == (100, 100, 100)


def test_contact_sheet_dims_unfilled_tiles() -> None:
    tiles = [_frame(10, 20, 200) for _ in range(5)]
    sheet = contact_sheet(tiles, [True, False, True, False, True], columns=3)
    assert sheet.shape == (2 * 12 + 2, 3 * 22 + 2, 3)
    assert tuple(sheet[2 + 5, 2 + 10]) == (200, 200, 200)  # filled tile as is
    assert sheet[2 + 5, 24 + 10].max() < 100  # unfilled tile dimmed


def _small_target() -> tuple[np.ndarray, np.ndarray, TargetCues]:
    """A 320x240 frame with a 30-pixel target and the cues a reasoner gives for it."""
    frame = _frame(240, 320, 100)
    masks = np.zeros((1, 240, 320), dtype=bool)
    masks[0, 100:130, 150:180] = True
    cues = TargetCues(box=[147, 97, 182, 132], point=[165, 115], negatives=[[120, 60]], obj_id=1)
    return frame, masks, cues


def _mask_visible_fraction(img: np.ndarray, masks: np.ndarray) -> float:
    """Share of the mask's inside (its 3-pixel rim left out) showing the mask's blended colour."""
    inner = cv2.erode(masks[0].astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    tinted = overlay_masks(_frame(240, 320, 100), masks, contour=False, alpha=0.5)
    close = (np.abs(img.astype(int) - tinted.astype(int)) <= 40).all(axis=2)
    return float(close[inner].mean())


def test_keyframe_overlay_keeps_a_small_mask_visible() -> None:
    """Step 3a panel: the mask of a ~30 px target stays visible under its cues (bug: the filled
    + disc and the thick box of the step 2 panel, drawn on top, hid most of it)."""
    frame, masks, cues = _small_target()
    out = keyframe_overlay(frame, masks, [cues])
    assert (frame == 100).all()  # input untouched
    assert _mask_visible_fraction(out, masks) >= 0.9
    # drawing the step 2 cues over the mask (the old keyframe panel) hides far more of it
    assert _mask_visible_fraction(draw_cues(overlay_masks(frame, masks), [cues]), masks) < 0.8
    red = np.array(target_colour(0))
    # the mask's outline is on top, in the target's colour
    assert (np.abs(out[100, 165].astype(int) - red) < 40).all()
    # the cues are still there, light: the box edge (outside the mask) in the target colour ...
    assert (np.abs(out[97, 165].astype(int) - red) < 60).all()
    assert tuple(out[95, 165]) == (100, 100, 100)  # ... 1 px thin, no black outline
    # ... the + centre brighter than the tinted mask around it, and small
    arm = light_cues_marker_size(frame)
    assert out[115, 165].mean() > out[115, 165 + arm + 3].mean() + 40
    # ... and the negative point a ring with the frame showing inside it
    assert tuple(out[60 - arm, 120]) != (100, 100, 100) and tuple(out[60 - 1, 120]) == (100, 100, 100)


def test_keyframe_overlay_without_cues_is_the_mask_overlay() -> None:
    frame, masks, _ = _small_target()
    assert (keyframe_overlay(frame, masks, [], alpha=0.5) == overlay_masks(frame, masks, alpha=0.5)).all()


def test_contact_sheet_writes_labels_under_the_tiles_below_a_top_band() -> None:
    tiles = [_frame(30, 40, 200) for _ in range(5)]
    plain = contact_sheet(tiles, [True] * 5, columns=3)
    sheet = contact_sheet(tiles, [True, True, False, True, True], ["0", "25", "50", "75", "99"], 1, 3, True)
    assert sheet.shape[1] == plain.shape[1] and sheet.shape[0] > plain.shape[0]
    # the tiles themselves are untouched by their labels: find tile 0 below the top band
    col = sheet[:, 2 + 20]
    first = int(np.argmax((col == 200).all(axis=1)))
    assert first >= 2 + 12  # an empty band above the first row (the UI's label floats over it)
    assert sheet[:first].max() == 24
    assert (sheet[first : first + 30, 2 : 2 + 40] == 200).all()
    band = sheet[first + 30 : first + 30 + 12, 2 : 2 + 40]
    assert band.max() > 200 and np.median(band) < 60  # white text on a dark band under the tile
    key_band = sheet[first + 30 : first + 30 + 12, 44 : 44 + 40]
    yellow = np.abs(key_band.astype(int) - np.array(TARGET_FRAME_COLOUR)).max(axis=2) < 60
    assert yellow.any()  # the highlighted tile's number in the highlight colour
    dim_band = sheet[first + 30 : first + 30 + 12, 86 : 86 + 40]
    assert 100 < dim_band.max() < 200  # a tile not filled yet: its number grey
    with pytest.raises(ValueError, match="labels"):
        contact_sheet(tiles, [True] * 5, ["0"])


def test_cues_legend_uses_target_colours() -> None:
    legend = cues_legend_html([TargetCues(box=[1, 2, 3, 4], obj_id=2)], frame_idx=7)
    assert target_hex(1) in legend and "target 2" in legend and "frame <b>7</b>" in legend
    assert "No cues" in cues_legend_html([])


@pytest.mark.parametrize(
    ("present", "runs"),
    [
        ([], []),
        ([False, False], []),
        ([True, True, True], [(0, 2)]),
        ([False, True, True, False, True], [(1, 2), (4, 4)]),
    ],
)
def test_presence_runs(present: list[bool], runs: list[tuple[int, int]]) -> None:
    assert presence_runs(present) == runs


def _sampler_events() -> tuple[list[SamplerLevel], SamplerPercent, SamplerResult]:
    levels = [
        SamplerLevel(
            level=0,
            window=[0, 99],
            frame_indices=[0, 50, 99],
            raw_answers=["a", "b", "zzz"],
            intervals=[[20, 60], [30, 70], None],
            mean_interval=[25, 65],
            zoom=True,
        ),
        SamplerLevel(
            level=1,
            window=[25, 65],
            frame_indices=[25, 45, 65],
            raw_answers=["a", "b", "c"],
            intervals=[[30, 50], [32, 52], [34, 54]],
            mean_interval=[32, 52],
            zoom=False,
        ),
    ]
    percent = SamplerPercent(
        key_segment=[32, 52],
        frame_indices=[32, 42, 52],
        raw_answers=["40%", "60%"],
        percents=[0.4, 0.6],
        mean_percent=0.5,
        target_frame=42,
    )
    result = SamplerResult(
        strategy="htfs",
        key_segment=[32, 52],
        target_frame=42,
        key_frames=[32, 42, 52],
        reference_frames=[0, 33, 66, 99],
    )
    return levels, percent, result


def test_timeline_rows_and_traces_follow_the_events() -> None:
    levels, percent, result = _sampler_events()
    fig = timeline_figure(
        levels, percent, result, num_frames=100, fps=10.0, gt_present=[i > 40 for i in range(100)]
    )
    assert list(fig.layout.yaxis.ticktext) == [
        "level 0",
        "level 1",
        "percentage",
        "decision (htfs)",
        "ground truth",
    ]
    answers = [t for t in fig.data if t.name == "interval answer"]
    assert len(answers) == 5  # 2 parsed at level 0 + 3 at level 1; the unparsable one is not drawn
    means = [list(t.x) for t in fig.data if t.name == "mean interval"]
    assert means == [[25, 65], [32, 52]]
    pct = next(t for t in fig.data if t.name == "percentage answer")
    assert list(pct.x) == [32 + int(21 * 0.4), 32 + int(21 * 0.6)]
    refs = next(t for t in fig.data if t.name == "reference frames")
    assert list(refs.x) == [0, 33, 66, 99]
    target_line = [s for s in fig.layout.shapes if s.type == "line"]
    assert target_line and target_line[0].x0 == 42
    gt = [t for t in fig.data if t.name == "target present (GT)"]
    assert [list(t.x) for t in gt] == [[40.5, 99.5]]


def test_timeline_with_partial_events() -> None:
    levels, _, _ = _sampler_events()
    fig = timeline_figure(levels[:1], num_frames=100)
    assert list(fig.layout.yaxis.ticktext) == ["level 0"]
    assert not any(t.name == "target frame" for t in fig.data)


def test_per_frame_scores_and_curves() -> None:
    gt = np.zeros((3, 40, 40), dtype=bool)
    gt[:, 10:30, 10:30] = True
    pred = gt.copy()
    pred[1] = False  # a missed frame
    pred[2, 10:30, 10:20] = False  # half of the object
    scores = per_frame_scores(pred, gt)
    assert scores["J"][0] == pytest.approx(1.0)
    assert scores["J"][1] == pytest.approx(0.0)
    assert scores["J"][2] == pytest.approx(0.5)
    assert scores["J&F"] == pytest.approx([(j + f) / 2 for j, f in zip(scores["J"], scores["F"])])
    assert summarise(scores)["J"] == pytest.approx(0.5)
    fig = jf_curves_figure({"a": scores, "b": per_frame_scores(gt, gt)}, {"a": 2, "b": None}, worst=[1])
    lines = [t for t in fig.data if t.mode == "lines"]
    assert len(lines) == 2 and "mean 1.000" in lines[1].name
    stars = [t for t in fig.data if t.mode == "markers"]
    assert len(stars) == 1 and list(stars[0].x) == [2]


def test_per_frame_scores_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="differ"):
        per_frame_scores(np.zeros((2, 4, 4), bool), np.zeros((3, 4, 4), bool))


def test_keyframe_panel_explains_a_run_without_target(tmp_path: Path) -> None:
    """First-frame sampler on a target absent from frame 0: no cues, and the panel says so."""
    from videoseg.core.config import preset
    from videoseg.io.video import open_video
    from videoseg.pipeline.orchestrator import run
    from videoseg.ui.live import LiveView

    example = Path(__file__).resolve().parents[2] / "examples" / "shapes" / "absent_first_frame"
    video_path = example / "video.mp4"
    with open_video(video_path) as video:
        view = LiveView(tmp_path / "view", video, trace=False)
        for event in run(video_path, "the orange square", preset("shapes-first-frame")):
            view.apply(event)
        assert view.state.finished is not None
        assert view.state.cues == [] and not view.state.keyframe_masks
        path = view.render_keyframe_image()
    assert path is not None and Path(path).exists()
    image = cv2.imread(path)
    assert image.shape[:2] == (240, 320)
    assert (image[:8, :40] == 0).all()  # the black label box with the "no mask" text sits top-left
