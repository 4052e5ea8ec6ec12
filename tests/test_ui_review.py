"""Regression tests from a user's-eye review of the explorer: what a visitor sees after bad input or
clicks in an unexpected order (Stop mid-run, a trace whose events do not fit together, hand-typed
target numbers, upload errors naming server folders, the Interactive frame slider moved without a
mouse release). The handlers are called in-process, as Gradio calls them, without a server.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from videoseg.ui.common import AppContext
from videoseg.ui.examples import TRACES_DIR, find_examples
from videoseg.ui.interactive_tab import MAX_TARGETS, parse_cues, resegment
from videoseg.ui.live import SKIP, STAGES
from videoseg.ui.session import SessionStore, UploadCaps, UploadError, hide_paths

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # gr.Warning outside a request


@pytest.fixture
def ctx(tmp_path: Path) -> AppContext:
    examples = find_examples()
    assert examples, "the repository's examples/ folder has no shapes-world example"
    return AppContext(store=SessionStore(tmp_path / "store"), caps=UploadCaps(), examples=examples)


def _trace_lines() -> list[str]:
    traces = sorted(TRACES_DIR.glob("*.jsonl"))
    assert traces, "no bundled trace under examples/traces"
    return traces[0].read_text().splitlines()


def _final(values: list[dict[str, Any]]) -> dict[str, Any]:
    """The latest real value of each output across a stream of run-view updates."""
    out: dict[str, Any] = {}
    for v in values:
        out.update({k: x for k, x in v.items() if x is not SKIP})
    return out


def _replay(ctx: AppContext, lines: list[str], tmp_path: Path) -> dict[str, Any]:
    from videoseg.ui.inspect_tab import replay_stream

    path = tmp_path / "trace.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return _final(list(replay_stream(ctx, str(path))))


# ------------------------------------------------------------------------------ Stop mid-run


def _stage_table(status: str) -> pd.DataFrame:
    return pd.DataFrame(
        [[s, "", status if s == "reasoner" else "done", None, None, None] for s in STAGES],
        columns=["stage", "backend", "status", "s", "tokens", "frames"],
    )


@pytest.mark.parametrize(
    ("status", "stopped"),
    [
        ("### ⏳ Running: stage 2: reasoning about the query\n\nVideo: 64 frames", True),
        ("### ⏳ Starting `shapes` on 64 frames…", True),
        ("### ✅ Done: 1 target(s) on 64 frames in 0.5 s", False),  # a finished run stays finished
        ("### ❌ The query is empty", False),
        ("", False),  # Stop on a fresh page
        (None, False),
    ],
)
def test_stop_marks_only_a_running_run_as_stopped(status: str | None, stopped: bool) -> None:
    from videoseg.ui.run_tab import stop_values

    new_status, progress, table = stop_values(status, _stage_table("running"))
    if stopped:
        assert "Cancelled" in new_status and "⏳" not in new_status
        assert progress["status"] == "cancelled"
        assert "running" not in table["status"].tolist() and "stopped" in table["status"].tolist()
    else:
        assert all(
            isinstance(v, dict) and v.get("__type__") == "update" for v in (new_status, progress, table)
        )


def test_stop_ends_the_run_as_cancelled_and_the_next_run_works(ctx: AppContext) -> None:
    from videoseg.pipeline import CANCELLED
    from videoseg.trace import read_trace
    from videoseg.ui.run_tab import run_stream

    example = ctx.examples[0]
    query = example.expressions[0]["text"]
    ctx.request_stop(None)  # a Stop pressed before a run started does not stop it
    updates, after_stop, record = [], 0, None
    for values, rec in run_stream(ctx, str(example.video), query, "shapes"):
        updates.append(values)
        record = rec or record
        if len(updates) == 3:
            ctx.request_stop(None)  # what the Stop button does for this session
        elif len(updates) > 3:
            after_stop += 1
    out = _final(updates)
    assert after_stop <= 2, after_stop  # it stops at its next event, not at the end of the run
    assert out["status"].startswith("### ⏹ Cancelled") and "⏳" not in out["status"], out["status"]
    assert out["progress"]["status"] == "cancelled"
    statuses = [row[2] for row in out["stages"]]
    assert "running" not in statuses and "stopped" in statuses, statuses
    events = list(read_trace(record["trace"]))  # the trace is complete and says how it ended
    assert events[-1].type == "error" and events[-1].message == CANCELLED

    again = _final([v for v, _ in run_stream(ctx, str(example.video), query, "shapes")])
    assert "Done" in again["status"], again["status"]


def test_stop_button_answers_at_once_without_killing_the_run(tmp_path: Path) -> None:
    from videoseg.ui.app import build_demo

    demo = build_demo(store=SessionStore(tmp_path / "store"))
    status_id = demo.run_tab["view"]["status"]._id
    stop_id = demo.run_tab["stop"]._id
    deps = [d for d in demo.config["dependencies"] if [stop_id, "click"] in [list(t) for t in d["targets"]]]
    # Gradio's cancels would kill the run with its last "⏳ Running" update on screen
    assert not any(d["cancels"] for d in deps), deps
    shows = [d for d in deps if d["backend_fn"] and status_id in d["outputs"]]
    assert len(shows) == 1 and shows[0]["queue"], deps  # unqueued, Gradio flags the outputs "Error"


# ------------------------------------------------------------------------------ replays


def test_replay_of_events_that_do_not_fit_gives_a_message(ctx: AppContext, tmp_path: Path) -> None:
    lines = _trace_lines()
    first = json.loads(lines[0])
    # the recorded video says 100×50 but the masks are 320×240 (hand-edited, or another video's)
    first["video"] = {**first["video"], "width": 100, "height": 50}
    first["video"].pop("path", None)
    out = _replay(ctx, [json.dumps(first), *lines[1:]], tmp_path)
    assert "cannot be shown" in out["status"] and "do not fit together" in out["status"], out["status"]
    assert out["progress"]["status"] == "error"
    assert str(ctx.store.root) not in out["status"]


def test_truncated_trace_does_not_claim_to_be_running(ctx: AppContext, tmp_path: Path) -> None:
    lines = _trace_lines()
    cut = next(i for i, line in enumerate(lines) if '"type":"reasoning_token"' in line)
    out = _replay(ctx, lines[: cut + 3], tmp_path)
    head = out["status"].splitlines()[0]
    assert "Incomplete" in head and "Running" not in head, out["status"]
    assert "ended before the run finished" in out["status"]
    assert "running" not in [row[2] for row in out["stages"]]


@pytest.mark.parametrize(("owner", "shown"), [("someone-else", False), (None, True)])
def test_replay_shows_only_this_sessions_recorded_video(
    ctx: AppContext, tmp_path: Path, owner: str | None, shown: bool
) -> None:
    import shutil

    lines = _trace_lines()
    first = json.loads(lines[0])
    example = next(e for e in ctx.examples if e.name in first["video"]["path"])
    # a trace naming a file in some session's folder (the caller here has no session: "anonymous")
    copy = ctx.store.session_dir(owner) / "run-1" / "overlay.mp4"
    copy.parent.mkdir(parents=True)
    shutil.copy(example.video, copy)
    first["video"] = {**first["video"], "path": str(copy)}
    out = _replay(ctx, [json.dumps(first), *lines[1:]], tmp_path)
    assert "Done" in out["status"], out["status"]
    assert ("Replay without the video" not in out["status"]) == shown, out["status"]


# ------------------------------------------------------------------------------ Interactive


@pytest.mark.parametrize(
    ("cues", "message"),
    [
        ([{"obj_id": 0, "box": [10, 10, 100, 100]}], "must be 1 to"),
        ([{"obj_id": -3, "box": [10, 10, 100, 100]}], "must be 1 to"),
        ([{"obj_id": MAX_TARGETS + 1, "box": [10, 10, 100, 100]}], "must be 1 to"),
        ([{"obj_id": 10**6, "box": [10, 10, 100, 100]}], "must be 1 to"),  # would allocate 70 GB
        ([{"obj_id": 2, "point": [5, 5]}, {"obj_id": 2, "box": [1, 1, 9, 9]}], "given twice"),
        ([{"obj_id": "two", "point": [5, 5]}], "cue 1"),
    ],
)
def test_bad_target_numbers_give_messages(ctx: AppContext, cues: list[dict], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_cues(json.dumps(cues), 0)
    image, status = resegment(ctx, str(ctx.examples[0].video), 0, json.dumps(cues), "shapes")
    assert status.startswith("❌") and message in status, status
    assert isinstance(image, dict) and image.get("__type__") == "update"  # the last image stays


@pytest.mark.parametrize(
    ("cues", "ids"),
    [
        ([{"obj_id": 3, "point": [5, 5]}], [3]),  # typed without a "box" key: its number is kept
        ([{"point_2d": [5, 5]}, {"bbox_2d": [1, 1, 9, 9]}], [1, 2]),  # the model's format, in order
        ([{"obj_id": 2, "box": None, "point": [5, 5]}, {"obj_id": 1, "box": [1, 1, 9, 9]}], [2, 1]),
    ],
)
def test_target_numbers_of_typed_cues(cues: list[dict], ids: list[int]) -> None:
    parsed = parse_cues(json.dumps(cues), 7)
    assert [c.obj_id for c in parsed] == ids and all(c.frame_idx == 7 for c in parsed)


def test_frame_slider_redraws_on_any_change(tmp_path: Path) -> None:
    """Typing a frame number or using the arrow keys fires no "release": the frame on screen must
    follow the slider's value anyway, else clicks land on another frame than the one shown."""
    from videoseg.ui.app import build_demo

    demo = build_demo(store=SessionStore(tmp_path / "store"))
    slider = next(
        b
        for b in demo.blocks.values()
        if getattr(b, "label", None) == "Frame" and type(b).__name__ == "Slider"
    )
    image = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "click-image")
    events = {
        t[1]
        for d in demo.config["dependencies"]
        for t in d["targets"]
        if t[0] == slider._id and image._id in d["outputs"]
    }
    assert "change" in events, events


@pytest.mark.parametrize(("frames", "size"), [(1, 64), (2, 64), (10, 8)])
def test_interactive_loads_tiny_videos(ctx: AppContext, tmp_path: Path, frames: int, size: int) -> None:
    import gradio as gr
    import numpy as np

    from videoseg.ui.interactive_tab import load_video
    from videoseg.video import write_mp4

    path = tmp_path / "tiny.mp4"
    rng = np.random.default_rng(frames)
    write_mp4(path, [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(frames)], 12.0)
    slider, image, cues, status, pending = load_video(ctx, str(path))
    assert f"{frames} frame" in status and not status.startswith("❌"), status
    assert Path(image).is_file() and cues == "[]" and pending is None
    # what Gradio does with the update: a 1-frame video must not give a slider with min == max
    kwargs = {k: v for k, v in slider.items() if k != "__type__"}
    built = gr.Slider(minimum=0, step=1, label="Frame", **kwargs)
    assert built.maximum >= frames - 1 and built.interactive == (frames > 1)


def test_interactive_cleared_video_drops_its_frame(ctx: AppContext) -> None:
    from videoseg.ui.interactive_tab import load_video

    _, image, cues, status, _ = load_video(ctx, None)
    assert image is None  # no stale picture left to click on
    assert isinstance(cues, dict) and cues.get("__type__") == "update"  # the clicks stay
    assert "No video" in status and not status.startswith("❌")


# ------------------------------------------------------------------------------ messages


def test_upload_errors_name_the_file_not_the_server_folder(tmp_path: Path) -> None:
    folder = tmp_path / "gradio" / "0123abcd"
    folder.mkdir(parents=True)
    bogus = folder / "notes.mp4"
    bogus.write_text("this is not a video\n" * 20)
    with pytest.raises(UploadError) as info:
        UploadCaps().open(bogus)
    message = str(info.value)
    assert "notes.mp4" in message and "cannot be used" in message
    assert str(folder) not in message and str(tmp_path) not in message, message


@pytest.mark.parametrize(
    ("text", "folders", "expected"),
    [
        ("cannot read '/srv/t/s-1/run-2/a/00000.png'", ["/srv/t"], "cannot read '00000.png'"),
        ("input: '/tmp/g/h/notes.mp4')", ["/tmp/g/h"], "input: 'notes.mp4')"),
        ("no folder here", ["/tmp/x"], "no folder here"),
        ("keeps /other/path.png", ["/tmp/x"], "keeps /other/path.png"),
        ("1/2 of /a/b.png", ["/"], "1/2 of /a/b.png"),  # a file at the root hides nothing
    ],
)
def test_hide_paths_table(text: str, folders: list[str], expected: str) -> None:
    assert hide_paths(text, *folders) == expected


def test_inspect_problems_do_not_show_server_folders(ctx: AppContext, tmp_path: Path) -> None:
    from videoseg.ui.inspect_tab import inspect_run

    example = ctx.examples[0]
    archive = tmp_path / "pred.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("d/expressions.json", (example.directory / "expressions.json").read_text())
        z.writestr("d/Annotations/00000.png", b"not a png")
        z.writestr("d/run.jsonl", "\n".join(_trace_lines()) + "\n")
    values, records = inspect_run(ctx, str(archive))
    status = values[0]
    assert "could be scored" in status and "00000.png" in status, status
    assert str(ctx.store.root) not in status and not records


def _case_zip(ctx: AppContext, tmp_path: Path, video: bytes) -> Path:
    example = ctx.examples[0]
    archive = tmp_path / "pred.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("d/expressions.json", (example.directory / "expressions.json").read_text())
        for png in sorted(example.annotations.glob("*.png")):
            z.writestr(f"d/Annotations/{png.name}", png.read_bytes())
        z.writestr("d/run.jsonl", "\n".join(_trace_lines()) + "\n")
        z.writestr("d/video.mp4", video)
    return archive


def test_inspect_with_an_unreadable_video_still_ranks(ctx: AppContext, tmp_path: Path) -> None:
    from videoseg.ui.inspect_tab import inspect_run

    assert ctx.examples[0].name in _trace_lines()[0]  # the trace belongs to this example
    values, records = inspect_run(ctx, str(_case_zip(ctx, tmp_path, b"not a video" * 50)))
    status, _rows, _selector, details, _curves, worst = values
    assert "Ranked 1 expression" in status and len(records) == 1, status
    assert "blank canvas" in details and "cannot be read" in details, details
    assert worst and all(Path(path).is_file() for path, _ in worst)


def test_inspect_selection_whose_files_are_gone_gives_a_message(ctx: AppContext, tmp_path: Path) -> None:
    from videoseg.ui.inspect_tab import inspect_run, select_case

    _, records = inspect_run(ctx, None)  # the bundled examples and traces
    assert records
    gone = {**records[0], "gt_dir": str(tmp_path / "trimmed")}
    details, curves, worst = select_case(ctx, gone["label"], [gone])
    assert details.startswith("### ❌") and "cannot be shown any more" in details, details
    assert all(isinstance(v, dict) and v.get("__type__") == "update" for v in (curves, worst))
