"""One export for every artefact (issue 11 item 4, issue 14 item 6): formats, streaming, readers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from videoseg.core import events as ev
from videoseg.core.masks import encode_rle, mask_box, union, union_stack
from videoseg.core.state import RunState
from videoseg.io import export
from videoseg.io.video import ArrayVideo, open_video, read_mask_pngs, write_mp4

T, H, W = 11, 40, 56
KEYFRAME = 6


def _frames() -> np.ndarray:
    """Smooth frames (an encoder keeps them within a few levels), each a different brightness."""
    y, x = np.mgrid[0:H, 0:W]
    base = np.stack([2 * x, 3 * y, x + y], axis=-1)
    return np.stack([(base + 12 * t) % 200 + 30 for t in range(T)]).astype(np.uint8)


def _masks(idx: int) -> np.ndarray:
    """Two targets: a square moving right, and a bar that overlaps it on some frames."""
    m = np.zeros((2, H, W), dtype=bool)
    m[0, 10:22, 2 + 3 * idx : 14 + 3 * idx] = True
    m[1, 18:26, 20:40] = idx % 2 == 0
    return m


def _events(path: str | None = "clip.mp4") -> list[ev.Event]:
    video = {"path": path, "num_frames": T, "fps": 10.0, "width": W, "height": H, "duration": T / 10}
    cues = [
        {
            "obj_id": 1,
            "frame_idx": KEYFRAME,
            "box": [20.0, 10.0, 31.0, 21.0],
            "point": [25.0, 15.0],
            "negatives": [],
        },
        {"obj_id": 2, "frame_idx": KEYFRAME, "box": [20.0, 18.0, 39.0, 25.0], "point": None, "negatives": []},
    ]
    out: list[ev.Event] = [
        ev.RunStarted(query="the square", video=video, config={}, preset="shapes"),
        ev.CuesParsed(frame_idx=KEYFRAME, targets=cues, used=["box", "point", "negative"]),
    ]
    for t in range(2):
        m = _masks(KEYFRAME)[t]
        out.append(
            ev.KeyframeMask(
                frame_idx=KEYFRAME,
                target=t,
                rle=encode_rle(m),
                score=0.5 + t / 4,
                cues=cues[t],
                area=int(m.sum()),
            )
        )
    # The pipeline's order: the keyframe, forward to the end, then backward to frame 0.
    order = [KEYFRAME, *range(KEYFRAME + 1, T), *range(KEYFRAME - 1, -1, -1)]
    for done, idx in enumerate(order, 1):
        direction = "keyframe" if idx == KEYFRAME else ("forward" if idx > KEYFRAME else "backward")
        rles = [encode_rle(m) for m in _masks(idx)]
        out.append(ev.PropagatedMask(frame_idx=idx, direction=direction, rles=rles, done=done, total=T))
    out.append(ev.RunFinished(num_frames=T, num_targets=2, seconds=1.0, timings={"propagator": 0.5}))
    return out


def _labels(idx: int) -> np.ndarray:
    m = _masks(idx)
    labels = np.zeros((H, W), np.uint8)
    labels[m[0]] = 1
    labels[m[1]] = 2  # the later target wins an overlap
    return labels


# --------------------------------------------------------------------------- core/masks.py


def test_union_and_box_are_computed_in_one_place() -> None:
    m = _masks(0)
    assert np.array_equal(union(m), m[0] | m[1])
    assert union(np.zeros((0, 4, 5), bool)).shape == (4, 5) and not union(np.zeros((0, 4, 5), bool)).any()
    assert mask_box(m[0]) == [2, 10, 13, 21]  # extreme pixels, inclusive
    assert mask_box(np.zeros((4, 4), bool)) is None
    stack = union_stack({0: m, 2: np.zeros((2, 3, 3), bool)}, 3, H, W)
    assert stack.shape == (3, H, W) and np.array_equal(stack[0], m[0] | m[1]) and not stack[1:].any()
    with pytest.raises(ValueError, match=r"\(K, H, W\)"):
        union(m[0])


# --------------------------------------------------------------------------- cues.json


def test_cues_json_has_one_schema_and_reads_the_two_older_ones(tmp_path: Path) -> None:
    state = RunState.from_events(_events())
    doc = json.loads(export.write_cues(tmp_path / "cues.json", state).read_text())
    assert doc["schema"] == "videoseg-cues/2"
    assert doc["frame_idx"] == KEYFRAME and [t["obj_id"] for t in doc["targets"]] == [1, 2]
    assert doc["used"] == ["box", "point", "negative"] and doc["keyframe_scores"] == [0.5, 0.75]
    assert doc["video"]["num_frames"] == T and doc["preset"] == "shapes" and doc["parse_error"] is None

    cli_v1 = {
        "query": "the square",
        "frame_idx": KEYFRAME,
        "targets": doc["targets"],
        "used": doc["used"],
        "parse_error": None,
        "keyframe_scores": [0.5, 0.75],
    }
    explorer_v1 = {
        "query": "the square",
        "preset": "shapes",
        "video": doc["video"],
        "sampler": None,
        "cues": doc["targets"],
        "cues_used": doc["used"],
        "reasoning": None,
        "parse_error": None,
        "keyframe_scores": {"1": 0.75, "0": 0.5},
        "timings": {},
    }
    for old in (cli_v1, explorer_v1):
        (tmp_path / "old.json").write_text(json.dumps(old))
        read = export.read_cues(tmp_path / "old.json")
        for key in ("schema", "query", "frame_idx", "targets", "used", "keyframe_scores"):
            assert read[key] == doc[key], key
    assert export.read_cues(tmp_path / "cues.json") == doc
    (tmp_path / "bad.json").write_text('{"schema": "videoseg-cues/9"}')
    with pytest.raises(ValueError, match=r"unknown cues\.json schema"):
        export.read_cues(tmp_path / "bad.json")
    with pytest.raises(ValueError, match=r"not a readable cues\.json"):
        export.read_cues(tmp_path / "missing.json")


# --------------------------------------------------------------------------- streaming run export


def test_masks_and_overlay_are_written_while_the_run_goes_on(tmp_path: Path) -> None:
    video = ArrayVideo(_frames(), fps=10.0)
    out = tmp_path / "out"
    state = RunState()
    run = export.RunExport(out, video=video, chunk=4)  # chunks 0-3, 4-7, 8-10
    events = _events(None)
    forward_done = next(
        i for i, e in enumerate(events) if isinstance(e, ev.PropagatedMask) and e.frame_idx == T - 1
    )
    for event in events[: forward_done + 1]:
        state.apply(event)
        run.feed(event)
    run.flush()
    staged = run.folder / "masks"
    # The keyframe and the frames after it are PNGs already, and the last chunk (8-10) is encoded;
    # the keyframe's chunk (4-7) waits for frames 4 and 5 of the backward pass.
    assert sorted(p.name for p in staged.iterdir()) == [f"{i:05d}.png" for i in range(KEYFRAME, T)]
    assert [p.name for p in sorted((run.folder / ".overlay-parts").iterdir())] == ["000002.mp4"]
    assert set(run.pending_frames()) == {KEYFRAME, KEYFRAME + 1}  # RLE kept only for open chunks
    assert not out.exists()  # nothing is switched in before the run ends
    for event in events[forward_done + 1 :]:
        state.apply(event)
        run.feed(event)
    assert run.pending_frames() == []
    notes = run.finish(state)
    assert notes == []

    assert np.array_equal(read_mask_pngs(out / "masks"), np.stack([_labels(i) for i in range(T)]))
    with Image.open(out / "masks" / "00000.png") as png:
        assert png.mode == "P"  # DAVIS palette PNG
    # The joined overlay decodes to every frame, in order, with the explorer's look.
    expected = list(export.overlay_frames(state, video))
    with open_video(out / "overlay.mp4") as overlay:
        assert len(overlay) == T and overlay.size == (W, H)
        decoded = overlay.frames(list(range(T)))
    for idx in range(T):
        diff = np.abs(decoded[idx].astype(int) - expected[idx].astype(int)).mean()
        others = np.abs(decoded[idx].astype(int) - expected[(idx + 1) % T].astype(int)).mean()
        assert diff < 10 and diff < others / 3, (idx, diff, others)
    assert json.loads((out / "cues.json").read_text())["keyframe_scores"] == [0.5, 0.75]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.videoseg")]


def test_the_overlay_has_the_explorers_look(tmp_path: Path) -> None:
    from videoseg.viz.overlay import overlay_masks

    state = RunState.from_events(_events(None))
    frames = _frames()
    video = ArrayVideo(frames, fps=10.0)
    got = list(export.overlay_frames(state, video))
    assert np.array_equal(got[3], overlay_masks(frames[3], _masks(3)))
    canvas = list(export.overlay_frames(state, None))  # a replay whose video is gone
    assert canvas[0].shape == (H, W, 3) and canvas[0][0, 0].tolist() == [40, 40, 40]
    path = export.write_overlay(tmp_path / "o.mp4", state, video)
    with open_video(path) as v:
        assert len(v) == T


def test_export_run_names_damaged_masks_and_leaves_out_untouched(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "cues.json").write_text("earlier")
    events = _events(None)
    bad = next(e for e in events if isinstance(e, ev.PropagatedMask) and e.frame_idx == 3)
    bad.rles = [{"size": [4, 4], "counts": "4"}]
    state = RunState.from_events(events)
    with pytest.raises(ValueError, match="the mask of frame 3 is 4x4, the video 56x40"):
        export.export_run(state, out, overlay=False)
    assert [p.name for p in out.iterdir()] == ["cues.json"] and (out / "cues.json").read_text() == "earlier"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.videoseg")]


def test_join_mp4_is_frame_exact(tmp_path: Path) -> None:
    frames = _frames()
    parts = [
        write_mp4(tmp_path / f"{i}.mp4", frames[a:b], 10.0)
        for i, (a, b) in enumerate([(0, 4), (4, 9), (9, T)])
    ]
    joined = export.join_mp4(parts, tmp_path / "joined.mp4")
    pieces = []
    for p in parts:
        with open_video(p) as v:
            pieces.extend(v.frames(list(range(len(v)))))
    with open_video(joined) as v:
        assert len(v) == T and abs(v.fps - 10.0) < 1e-6
        assert np.array_equal(v.frames(list(range(T))), np.stack(pieces))


def test_benchmark_pngs_are_the_union_as_0_or_255(tmp_path: Path) -> None:
    state = RunState.from_events(_events(None))
    names = [f"{i * 5:05d}" for i in range(T)]
    paths = export.write_benchmark_pngs(tmp_path / "pred", state.masks, names, (W, H))
    assert [p.name for p in paths] == [f"{n}.png" for n in names]
    with Image.open(paths[3]) as png:
        assert png.mode == "L"
        values = np.asarray(png)
    assert set(np.unique(values)) <= {0, 255}
    assert np.array_equal(values == 255, _masks(3).any(axis=0))


def _whole_frame_overlay(frame: np.ndarray, masks: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The overlay computed over the whole frame (what overlay_masks did before it worked in boxes)."""
    import cv2

    from videoseg.viz.overlay import _scale, target_colour

    out = frame.copy()
    thickness = max(1, round(2 * _scale(frame)))
    for i, mask in enumerate(masks):
        if not mask.any():
            continue
        colour = np.array(target_colour(i), dtype=np.float32)
        out[mask] = np.clip(out[mask].astype(np.float32) * (1 - alpha) + colour * alpha, 0, 255).astype(
            np.uint8
        )
        found, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, found, -1, tuple(int(c) for c in colour), thickness, cv2.LINE_AA)
    return out


def test_the_overlay_drawn_in_mask_boxes_equals_the_whole_frame_one() -> None:
    from videoseg.viz.overlay import overlay_masks

    rng = np.random.default_rng(3)
    frame = rng.integers(0, 255, (90, 130, 3), dtype=np.uint8)
    masks = np.zeros((4, 90, 130), dtype=bool)
    masks[0, 10:30, 20:50] = True
    masks[0, 60:70, 100:120] = True  # two parts
    masks[1, 0:15, 0:40] = True  # touches the top-left corner
    masks[2, 70:90, 110:130] = rng.random((20, 20)) > 0.4  # ragged, at the bottom-right corner
    # masks[3] stays empty
    assert np.array_equal(overlay_masks(frame, masks), _whole_frame_overlay(frame, masks))
