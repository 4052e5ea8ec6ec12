"""Regression tests from a user's-eye review of the explorer: what a visitor sees after bad input or
clicks in an unexpected order (Stop mid-run, a trace whose events do not fit together, hand-typed
target numbers, upload errors naming server folders, the Interactive frame slider moved without a
mouse release). The handlers are called in-process, as Gradio calls them, without a server.
"""

from __future__ import annotations

import json
import os
import re
import time
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from tests.ui.rendering import plain
from videoseg.ui.common import AppContext
from videoseg.ui.examples import TRACES_DIR, find_examples
from videoseg.ui.live import SKIP, STAGES
from videoseg.ui.session import SessionStore, UploadCaps, UploadError, hide_paths
from videoseg.ui.tabs.interactive import MAX_TARGETS, parse_cues, repropagate_stream, resegment

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
    from videoseg.ui.tabs.inspect import replay_stream

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
    from videoseg.ui.tabs.run import stop_values

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
    from videoseg.core.trace import read_trace
    from videoseg.pipeline.orchestrator import CANCELLED
    from videoseg.ui.tabs.run import run_stream

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
    assert "press Run to start it again" in out["status"], out["status"]
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
    # refused while the trace is read (videoseg.core.trace), naming the line and the field
    shown = plain(out["status"])
    assert "This trace cannot be read" in shown and "field 'rle.size' is 320x240" in shown, shown
    assert "the run's video is 100x50" in shown, shown
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
        ([{"bx": [10, 10, 100, 100]}], "cue 1: unknown key 'bx'"),  # not "No cues yet"
        ([{"box": [10, 10, 100, 100], "negative": [5, 5]}], "cue 1: unknown key 'negative'"),
    ],
)
def test_bad_target_numbers_give_messages(ctx: AppContext, cues: list[dict], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_cues(json.dumps(cues), 0)
    image, status = resegment(ctx, str(ctx.examples[0].video), 0, json.dumps(cues), "shapes")
    assert status.startswith("❌") and message in status, status
    assert isinstance(image, dict) and image.get("__type__") == "update"  # the last image stays


@pytest.mark.parametrize(
    ("cues", "message"),
    [
        ([{"point": [5000, -20]}], "cue 1: the point [5000, -20] is outside the 320×240 frame"),
        ([{"box": [400, 300, 500, 400]}], "cue 1: the box [400, 300, 500, 400] is outside"),
        (
            [
                {"obj_id": 1, "point": [5, 5]},
                {"obj_id": 2, "point": [9, 9], "negatives": [[-50, 5], [9, 900]]},
            ],
            "cue 2: the negative points [-50, 5], [9, 900] are outside",
        ),
    ],
)
def test_typed_cues_outside_the_frame_are_named(ctx: AppContext, cues: list[dict], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_cues(json.dumps(cues), 0, (320, 240))
    assert len(parse_cues(json.dumps(cues), 0)) == len(cues)  # without a frame size: not judged
    video = str(ctx.examples[0].video)
    _, status = resegment(ctx, video, 0, json.dumps(cues), "shapes")
    assert status.startswith("❌") and message in plain(status), status
    streamed = list(repropagate_stream(ctx, video, "fix", 0, json.dumps(cues), "shapes"))
    assert len(streamed) == 1 and message in plain(streamed[0][0]), streamed


def test_typed_cues_just_past_the_border_are_kept_as_the_pipeline_keeps_them() -> None:
    # within 2 % of the side (rounding in a model's answer space), as the pipeline tolerates
    cues = [{"box": [-10, -10, 330, 250], "point": [323, -4], "negatives": [[-6, 120]]}]
    (parsed,) = parse_cues(json.dumps(cues), 0, (320, 240))
    assert parsed.count() == 3 and parsed.point == [323.0, -4.0]  # kept as typed; clipped when used


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

    from videoseg.io.video import write_mp4
    from videoseg.ui.tabs.interactive import load_video

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
    from videoseg.ui.tabs.interactive import load_video

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
    from videoseg.ui.tabs.inspect import inspect_run

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
    from videoseg.ui.tabs.inspect import inspect_run

    assert ctx.examples[0].name in _trace_lines()[0]  # the trace belongs to this example
    values, records = inspect_run(ctx, str(_case_zip(ctx, tmp_path, b"not a video" * 50)))
    status, _rows, _selector, details, _curves, worst = values
    assert "Ranked 1 expression" in status and len(records) == 1, status
    assert "blank canvas" in details and "cannot be read" in details, details
    assert worst and all(Path(path).is_file() for path, _ in worst)


def test_inspect_selection_whose_files_are_gone_gives_a_message(ctx: AppContext, tmp_path: Path) -> None:
    from videoseg.ui.tabs.inspect import inspect_run, select_case

    _, records = inspect_run(ctx, None)  # the bundled examples and traces
    assert records
    gone = {**records[0], "gt_dir": str(tmp_path / "trimmed")}
    details, curves, worst = select_case(ctx, gone["label"], [gone])
    assert details.startswith("### ❌") and "cannot be shown any more" in details, details
    assert all(isinstance(v, dict) and v.get("__type__") == "update" for v in (curves, worst))


# ------------------------------------------------------------------------------ second review


def _no_run_started(ctx: AppContext) -> bool:
    """No run folder was made: the handler answered before doing any work."""
    return not [p for p in ctx.store.root.glob("s-*/*") if p.is_dir()]


@pytest.mark.parametrize(
    ("query", "required", "text", "error"),
    [
        ("x" * 2000, True, "x" * 2000, None),  # the pipeline's own cap is accepted
        ("  " + "x" * 2000 + "\n", True, "x" * 2000, None),  # surrounding blanks do not count
        ("x" * 2001, True, None, "2001 characters long; at most 2000"),
        ("   ", True, None, "query is empty"),
        ("", False, "", None),  # the Interactive tab's query is optional
        (None, False, "", None),
        ("x" * 2001, False, None, "at most 2000"),
        (17, True, None, "must be text"),
    ],
)
def test_check_query_table(query: Any, required: bool, text: str | None, error: str | None) -> None:
    from videoseg.pipeline.orchestrator import MAX_QUERY_CHARS
    from videoseg.ui.runner import check_query

    assert MAX_QUERY_CHARS == 2000  # the table is written for the pipeline's cap
    if error is None:
        assert check_query(query, required) == text
    else:
        with pytest.raises(UploadError, match=error):
            check_query(query, required)


def _query_status(ctx: AppContext, tab: str, video: Any, query: str) -> str:
    """The message a tab shows for ``query`` (its first update's status)."""
    from videoseg.ui.tabs.compare import compare_stream
    from videoseg.ui.tabs.interactive import repropagate_stream
    from videoseg.ui.tabs.run import run_stream

    cues = json.dumps([{"obj_id": 1, "box": [10, 10, 60, 60]}])
    if tab == "run":
        return next(iter(run_stream(ctx, video, query, "shapes")))[0]["status"]
    if tab == "compare":
        return next(iter(compare_stream(ctx, video, query, "shapes", "shapes-first-frame")))[0]
    return next(iter(repropagate_stream(ctx, video, query, 0, cues, "shapes")))[0]


@pytest.mark.parametrize("tab", ["run", "compare", "interactive"])
def test_every_tab_refuses_a_too_long_query_before_any_work(ctx: AppContext, tab: str) -> None:
    status = _query_status(ctx, tab, str(ctx.examples[0].video), "the red square." * 200)  # 3000 chars
    assert "The query is 3000 characters long; at most 2000 are allowed" in status, status
    assert _no_run_started(ctx)  # the Interactive tab used to start a run that the pipeline refused


@pytest.mark.parametrize(
    ("tab", "hint"),
    [
        ("run", "upload one or pick an example below"),
        ("compare", "upload one, or press “Use the Run tab's video and query”"),
        ("interactive", "upload one, or press “Use the Run tab's video”"),
    ],
)
def test_no_video_message_says_what_applies_to_each_tab(ctx: AppContext, tab: str, hint: str) -> None:
    status = _query_status(ctx, tab, None, "the red square")
    assert f"No video given: {hint}." in status, status
    if tab != "run":
        assert "example" not in status, status  # these tabs have no examples to pick


def test_no_video_message_of_the_other_handlers(ctx: AppContext) -> None:
    from videoseg.ui.tabs.inspect import replay_stream
    from videoseg.ui.tabs.interactive import draw_frame
    from videoseg.ui.tabs.run import run_stream

    _, status = resegment(ctx, None, 0, "[]", "shapes")
    assert "No video given: upload one, or press “Use the Run tab's video”." in status, status
    _, legend = draw_frame(ctx, None, 0, "[]", None)
    assert "Use the Run tab's video" in legend and "example" not in legend, legend
    replayed = next(iter(replay_stream(ctx, None)))["status"]
    assert "No trace given: upload one or pick a recorded trace below." in replayed, replayed
    bare = AppContext(store=ctx.store, caps=ctx.caps, examples=[])  # a Run tab without examples
    status = next(iter(run_stream(bare, None, "the red square", "shapes")))[0]["status"]
    assert "No video given: upload one." in status and "example" not in status, status


def _paced_replay(ctx: AppContext, stop_after: int, what: str) -> tuple[dict[str, Any], int]:
    from videoseg.ui.tabs.inspect import replay_stream

    trace = sorted(TRACES_DIR.glob("*.jsonl"))[0]
    updates, after_stop = [], 0
    ctx.request_stop(None, "replay")  # a Stop pressed before the replay started does not stop it
    for values in replay_stream(ctx, str(trace)):
        updates.append(values)
        if len(updates) == stop_after:
            ctx.request_stop(None, what)  # what the tab's Stop button does for this session
        elif len(updates) > stop_after:
            after_stop += 1
    return _final(updates), after_stop


def test_stop_ends_a_replay_as_cancelled(ctx: AppContext) -> None:
    out, after_stop = _paced_replay(ctx, 3, "replay")
    assert after_stop <= 2, after_stop  # at its next event, not at the end of the trace
    assert out["status"].startswith("### ⏹ Cancelled") and "⏳" not in out["status"], out["status"]
    assert "press Replay to start it again" in out["status"], out["status"]
    assert out["progress"]["status"] == "cancelled"
    statuses = [row[2] for row in out["stages"]]
    assert "running" not in statuses and "stopped" in statuses, statuses
    again, _ = _paced_replay(ctx, 10**6, "replay")  # the next replay plays to its end
    assert "Done" in again["status"], again["status"]


def test_the_run_tabs_stop_does_not_end_a_replay(ctx: AppContext) -> None:
    out, _ = _paced_replay(ctx, 3, "run")
    assert "Done" in out["status"], out["status"]


def test_stop_values_name_the_replay() -> None:
    from videoseg.ui.common import stop_values

    status, progress, _ = stop_values(
        "### ⏳ Replaying 120 recorded events…", _stage_table("running"), "replay", "Replay"
    )
    assert "You stopped this replay" in status and "Press Replay" in status, status
    assert progress["status"] == "cancelled"


def test_replay_stop_button_is_wired_like_the_runs(tmp_path: Path) -> None:
    from videoseg.ui.app import build_demo

    demo = build_demo(store=SessionStore(tmp_path / "store"))
    tab = demo.inspect_tab
    deps = [
        d
        for d in demo.config["dependencies"]
        if [tab["stop"]._id, "click"] in [list(t) for t in d["targets"]]
    ]
    assert len(deps) == 1 and not deps[0]["cancels"] and deps[0]["queue"], deps
    assert tab["view"]["status"]._id in deps[0]["outputs"]
    assert demo.run_tab["view"]["status"]._id not in deps[0]["outputs"]
    fn = demo.fns[deps[0]["id"]].fn
    request = type("Request", (), {"session_hash": "visitor"})()
    status, _, _ = fn("### ⏳ Running: stage 2", _stage_table("running"), request)
    assert "replay" in status
    assert demo.ctx.stop_requested("visitor", 0.0, "replay")
    assert not demo.ctx.stop_requested("visitor", 0.0, "run")


def _expressions_zip(ctx: AppContext, tmp_path: Path, expressions: str) -> Path:
    example = ctx.examples[0]
    archive = tmp_path / "pred.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("d/expressions.json", expressions)
        for png in sorted(example.annotations.glob("*.png")):
            z.writestr(f"d/Annotations/{png.name}", png.read_bytes())
        z.writestr("d/run.jsonl", "\n".join(_trace_lines()) + "\n")
    return archive


def _traced_expression(ctx: AppContext) -> dict[str, Any]:
    query = json.loads(_trace_lines()[0])["query"]
    return next(e for e in ctx.examples[0].expressions if e["text"] == query)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ("not json", "d/expressions.json is not valid JSON (Expecting value at line 1, column 1)"),
        ("dict", "d/expressions.json must be a JSON list of expressions, not an object"),
        ("[]", "d/expressions.json lists no expression"),
        (
            "item",
            'd/expressions.json: expression 1: it must be an object with "text" and "obj_ids", not a string',
        ),
        ("no obj_ids", 'd/expressions.json: expression 1: "obj_ids" is missing'),
        ("text", 'd/expressions.json: expression 1: "text" must be a non-empty string, not a number'),
        ("ids str", '"obj_ids" must be a non-empty list of object ids 1 to 255, not "2"'),
        ("ids 300", '"obj_ids" must be a non-empty list of object ids 1 to 255, not [300]'),
        ("ids bool", '"obj_ids" must be a non-empty list of object ids 1 to 255, not [true]'),
        ("id", '"id" must be a string or a number, not a list'),
    ],
)
def test_malformed_expressions_json_is_named(
    ctx: AppContext, tmp_path: Path, change: str, problem: str
) -> None:
    from videoseg.ui.tabs.inspect import inspect_run

    good = _traced_expression(ctx)
    text = {
        "not json": "not json",
        "dict": json.dumps({"0": good}),
        "[]": "[]",
        "item": json.dumps([good["text"]]),
        "no obj_ids": json.dumps([{"id": "0", "text": good["text"]}]),
        "text": json.dumps([{**good, "text": 5}]),
        "ids str": json.dumps([{**good, "obj_ids": "2"}]),
        "ids 300": json.dumps([{**good, "obj_ids": [300]}]),
        "ids bool": json.dumps([{**good, "obj_ids": [True]}]),
        "id": json.dumps([{**good, "id": [1]}]),
    }[change]
    values, records = inspect_run(ctx, str(_expressions_zip(ctx, tmp_path, text)))
    status = values[0]
    assert status.startswith("### ❌ No expression could be used from the uploaded zip"), status
    assert problem in plain(status), status
    assert "No expression with both" not in status and not records
    assert str(ctx.store.root) not in status


def test_one_malformed_expression_does_not_hide_the_others(ctx: AppContext, tmp_path: Path) -> None:
    from videoseg.ui.tabs.inspect import inspect_run

    good = _traced_expression(ctx)
    text = json.dumps([{"id": "9", "text": "the blue circle", "obj_ids": [0]}, good])
    values, records = inspect_run(ctx, str(_expressions_zip(ctx, tmp_path, text)))
    status = values[0]
    assert "Ranked 1 expression" in status and len(records) == 1, status
    assert '⚠️ d/expressions.json: expression 1: "obj_ids" must be' in plain(status), status


def test_a_closed_session_forgets_its_files_and_stops(tmp_path: Path) -> None:
    from videoseg.ui.app import build_demo

    demo = build_demo(store=SessionStore(tmp_path / "store"))
    ctx = demo.ctx
    for session in ("gone", "stays"):
        ctx.request_stop(session, "run")
        ctx.request_stop(session, "replay")
        ctx.store.new_run_dir(session)
    unload = [d for d in demo.config["dependencies"] if [list(t)[1] for t in d["targets"]] == ["unload"]]
    assert len(unload) == 1, unload
    request = type("Request", (), {"session_hash": "gone"})()
    demo.fns[unload[0]["id"]].fn(request)  # what Gradio calls when the browser tab closes
    assert set(ctx.stops) == {"stays"} and set(ctx.stops["stays"]) == {"run", "replay"}
    assert not (ctx.store.root / "s-gone").exists() and (ctx.store.root / "s-stays").is_dir()


# ------------------------------------------------------------------------------ Stop in Compare / Interactive

COMPARED = ("shapes", "shapes-first-frame")


def _compare(ctx: AppContext, stop_at: Any = None, kind: str = "comparison") -> tuple[list[list[Any]], int]:
    """A comparison's updates, with ``kind``'s Stop pressed after the first update ``stop_at(status)``
    accepts; also how many updates came after that Stop."""
    from videoseg.ui.tabs.compare import compare_stream

    example = ctx.examples[0]
    ctx.request_stop(None, kind)  # a Stop pressed before the comparison started does not stop it
    updates: list[list[Any]] = []
    pressed, after_stop = False, 0
    for values in compare_stream(ctx, str(example.video), example.expressions[0]["text"], *COMPARED):
        updates.append(values)
        if pressed:
            after_stop += 1
        elif stop_at is not None and stop_at(values[0]):
            ctx.request_stop(None, kind)  # what the Compare tab's Stop button does for this session
            pressed = True
    assert stop_at is None or pressed
    return updates, after_stop


def test_a_new_comparison_first_clears_the_previous_one(ctx: AppContext) -> None:
    """B, the curves and the summary of the last comparison must not stay on screen, unmarked, while
    (or, when stopped, after) a new one runs."""
    updates, _ = _compare(ctx, lambda s: "A `shapes`: sampler" in s)  # stopped before B and curves
    first = updates[0]
    assert "A `shapes`: starting" in first[0], first[0]
    assert first[1:8] == [None] * 7 and first[8] == []
    later = [v for u in updates[1:] for v in u[4:9]]  # B, curves, summary: never set by this run
    assert all(isinstance(v, dict) and v.get("__type__") == "update" and len(v) == 1 for v in later), later


def _run_trace(ctx: AppContext, prefix: str) -> list[Any]:
    from videoseg.core.trace import read_trace

    (folder,) = ctx.store.root.glob(f"s-*/{prefix}-*")
    return list(read_trace(folder / "trace.jsonl"))


@pytest.mark.parametrize(
    ("stop_at", "sides", "traces"),
    [
        # Stop while A runs: A ends cancelled, B never starts
        (lambda s: "A `shapes`: sampler" in s, "A `shapes`: stopped in the", ["compare0"]),
        # Stop after A's last update: B does not start
        (lambda s: "A `shapes`: done · B `shapes-first-frame`: waiting" in s, "A `shapes`: done", []),
        # Stop while B runs: A's result stays, B ends cancelled
        (
            lambda s: "B `shapes-first-frame`: sampler" in s,
            "B `shapes-first-frame`: stopped in",
            ["compare1"],
        ),
    ],
)
def test_stop_ends_a_comparison_as_cancelled_and_the_next_one_works(
    ctx: AppContext, stop_at: Any, sides: str, traces: list[str]
) -> None:
    from videoseg.pipeline.orchestrator import CANCELLED

    updates, after_stop = _compare(ctx, stop_at)
    assert after_stop <= 2, after_stop  # at its next event, not at the end of both runs
    status = updates[-1][0]
    assert status.startswith("### ⏹ Cancelled") and "⏳" not in status, status
    assert "You stopped this comparison" in status and "Press Compare to start it again" in status
    assert sides in status, status
    if "compare1" not in traces:
        assert "B `shapes-first-frame`: not started" in status, status
        assert not list(ctx.store.root.glob("s-*/compare1-*"))
    for prefix in traces:  # the stopped run's trace is complete and says how it ended
        events = _run_trace(ctx, prefix)
        assert events[-1].type == "error" and events[-1].message == CANCELLED
    # the curves and the summary, cleared by the first update, are not filled by a stopped comparison
    assert updates[0][7] is None and updates[0][8] == []
    assert all(isinstance(v, dict) and v.get("__type__") == "update" for u in updates[1:] for v in u[7:])

    again, _ = _compare(ctx)
    assert again[-1][0].startswith("### ✅ Compared"), again[-1][0]
    assert isinstance(again[-1][8], list) and len(again[-1][8]) == 2  # both presets summarised


def _repropagate(ctx: AppContext, stop_after: int, kind: str) -> tuple[list[list[Any]], int]:
    from videoseg.ui.tabs.interactive import repropagate_stream

    cues = json.dumps([{"obj_id": 1, "box": [10, 10, 60, 60]}])
    updates, after_stop = [], 0
    ctx.request_stop(None, kind)  # a Stop pressed before it started does not stop it
    for values in repropagate_stream(ctx, str(ctx.examples[0].video), "fix", 0, cues, "shapes"):
        updates.append(values)
        if len(updates) == stop_after:
            ctx.request_stop(None, kind)  # what the Interactive tab's Stop button does
        elif len(updates) > stop_after:
            after_stop += 1
    return updates, after_stop


def test_stop_ends_a_repropagation_as_cancelled_and_the_next_one_works(ctx: AppContext) -> None:
    from videoseg.pipeline.orchestrator import CANCELLED

    updates, after_stop = _repropagate(ctx, 3, "re-propagation")
    assert after_stop <= 2, after_stop
    status = updates[-1][0]
    assert status.startswith("### ⏹ Cancelled") and "⏳" not in status, status
    assert "press Re-propagate to start it again" in status, status
    events = _run_trace(ctx, "interactive")
    assert events[-1].type == "error" and events[-1].message == CANCELLED

    again, _ = _repropagate(ctx, 10**6, "re-propagation")
    assert again[-1][0].startswith("### ✅ Done"), again[-1][0]


@pytest.mark.parametrize("kind", ["run", "replay", "re-propagation"])
def test_another_tabs_stop_does_not_end_a_comparison(ctx: AppContext, kind: str) -> None:
    updates, _ = _compare(ctx, lambda s: "A `shapes`: sampler" in s, kind)
    assert updates[-1][0].startswith("### ✅ Compared"), updates[-1][0]


@pytest.mark.parametrize("kind", ["run", "replay", "comparison"])
def test_another_tabs_stop_does_not_end_a_repropagation(ctx: AppContext, kind: str) -> None:
    updates, _ = _repropagate(ctx, 3, kind)
    assert updates[-1][0].startswith("### ✅ Done"), updates[-1][0]


@pytest.mark.parametrize(
    ("tab", "kind", "running", "message"),
    [
        (
            "compare_tab",
            "comparison",
            "### ⏳ A `shapes`: done · B `shapes-first-frame`: reasoner",
            "You stopped this comparison; what it had shown so far stays below. Press Compare",
        ),
        (
            "interactive_tab",
            "re-propagation",
            "### ⏳ Running: stage 3b: propagating the mask\n\nPropagation: 3 / 64 frames",
            "You stopped this re-propagation; what it had shown so far stays below. Press Re-propagate",
        ),
    ],
)
def test_compare_and_interactive_stop_buttons_are_wired_like_the_runs(
    tmp_path: Path, tab: str, kind: str, running: str, message: str
) -> None:
    from videoseg.ui.app import build_demo

    demo = build_demo(store=SessionStore(tmp_path / "store"))
    widgets = getattr(demo, tab)
    deps = [
        d
        for d in demo.config["dependencies"]
        if [widgets["stop"]._id, "click"] in [list(t) for t in d["targets"]]
    ]
    assert len(deps) == 1 and not deps[0]["cancels"] and deps[0]["queue"], deps
    assert deps[0]["outputs"] == [widgets["status"]._id]  # only this tab's status
    fn = demo.fns[deps[0]["id"]].fn
    request = type("Request", (), {"session_hash": "visitor"})()
    status = fn(running, request)
    assert status.startswith("### ⏹ Cancelled") and message in status, status
    done = fn("### ✅ Compared", request)  # a finished one stays as it is
    assert isinstance(done, dict) and done.get("__type__") == "update"
    assert demo.ctx.stop_requested("visitor", 0.0, kind)
    assert not any(demo.ctx.stop_requested("visitor", 0.0, k) for k in {"run", "replay"} - {kind})
    # the tab's own action still shows its work in that same status
    action = widgets["compare" if tab == "compare_tab" else "repropagate"]
    deps = demo.config["dependencies"]
    chain = [d for d in deps if [action._id, "click"] in [list(t) for t in d["targets"]]]
    chain += [d for d in deps if d.get("trigger_after") in {c["id"] for c in chain}]  # its .then steps
    assert any(widgets["status"]._id in d["outputs"] for d in chain)


# ------------------------------------------------------------------------------ real presets without weights


@pytest.fixture
def unreachable_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """No weights on this server and no connection to the hub."""
    from videoseg.runtime import loading as models
    from videoseg.ui import runner

    monkeypatch.setattr(models, "hub_reachable", lambda: False)

    monkeypatch.setattr(models, "url_reachable", lambda url: False)  # XMem's server
    monkeypatch.setattr(runner, "_locate", lambda model_id: (False, "not here"))


def test_a_real_preset_without_weights_names_them_all_before_any_work(
    ctx: AppContext, unreachable_hub: None
) -> None:
    from videoseg.ui.tabs.run import run_stream

    updates = [v for v, _ in run_stream(ctx, str(ctx.examples[0].video), "the red square", "paper")]
    assert len(updates) == 1, updates  # the message only: no run started
    status = plain(updates[0]["status"])
    assert "The `paper` preset needs weights that are not on this server" in status, status
    for model_id in ("Qwen/Qwen2.5-VL-7B-Instruct", "facebook/sam2.1-hiera-large", "XMem.pth"):
        assert f"`{model_id}`" in status, status
    assert "`shapes`" in status and "/root" not in status and "--xmem" not in status, status
    assert not list(ctx.store.root.glob("s-*/run-*"))


def test_interactive_asks_only_for_the_weights_it_uses(ctx: AppContext, unreachable_hub: None) -> None:
    cues = json.dumps([{"obj_id": 1, "box": [10, 10, 60, 60]}])
    video = str(ctx.examples[0].video)
    _, status = resegment(ctx, video, 0, cues, "paper")
    status = plain(status)
    assert "segmenter `facebook/sam2.1-hiera-large`" in status and "Qwen" not in status, status
    assert "XMem" not in status, status  # re-segmenting does not propagate
    (first,) = list(repropagate_stream(ctx, video, "", 0, cues, "paper"))
    assert "`XMem.pth`" in plain(first[0]) and "Qwen" not in first[0], first[0]


def test_weights_free_presets_never_probe_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    from videoseg.runtime import loading as models
    from videoseg.ui.runner import check_preset

    def probe() -> bool:
        raise AssertionError("a weights-free preset probed the hub")

    monkeypatch.setattr(models, "hub_reachable", probe)

    monkeypatch.setattr(models, "url_reachable", lambda url: probe())
    assert check_preset("shapes") == "shapes"


# ------------------------------------------------------------------------------ Stop while queued


def test_a_stop_pressed_while_a_run_waited_in_the_queue_stops_it(ctx: AppContext) -> None:
    from videoseg.ui.common import click_time
    from videoseg.ui.tabs.run import run_stream

    example = ctx.examples[0]
    query = example.expressions[0]["text"]
    clicked = click_time()  # Run pressed; the run waits in the queue ...
    ctx.request_stop(None, "run")  # ... and Stop is pressed before it starts
    updates = [v for v, _ in run_stream(ctx, str(example.video), query, "shapes", clicked=clicked)]
    out = _final(updates)
    assert out["status"].startswith("### ⏹ Cancelled"), out["status"]
    assert out["progress"]["status"] == "cancelled"
    # without the click time (the API endpoint) the run counts Stops from its own start
    after = [v for v, _ in run_stream(ctx, str(example.video), query, "shapes")]
    assert "Done" in _final(after)["status"]


def test_a_stop_pressed_while_a_comparison_waited_in_the_queue_stops_it(ctx: AppContext) -> None:
    from videoseg.ui.common import click_time
    from videoseg.ui.tabs.compare import compare_stream

    example = ctx.examples[0]
    clicked = click_time()
    ctx.request_stop(None, "comparison")
    args = (ctx, str(example.video), example.expressions[0]["text"], *COMPARED)
    updates = list(compare_stream(*args, clicked=clicked))
    status = updates[-1][0]
    assert status.startswith("### ⏹ Cancelled") and "A `shapes`: not started" in status, status
    assert "B `shapes-first-frame`: not started" in status, status
    assert not list(ctx.store.root.glob("s-*/compare*"))  # neither preset ran


def test_a_stop_pressed_while_a_replay_or_repropagation_waited_stops_it(ctx: AppContext) -> None:
    from videoseg.ui.common import click_time
    from videoseg.ui.tabs.inspect import replay_stream

    trace = sorted(TRACES_DIR.glob("*.jsonl"))[0]
    clicked = click_time()
    ctx.request_stop(None, "replay")
    out = _final(list(replay_stream(ctx, str(trace), clicked=clicked)))
    assert out["status"].startswith("### ⏹ Cancelled"), out["status"]

    cues = json.dumps([{"obj_id": 1, "box": [10, 10, 60, 60]}])
    clicked = click_time()
    ctx.request_stop(None, "re-propagation")
    video = str(ctx.examples[0].video)
    updates = list(repropagate_stream(ctx, video, "fix", 0, cues, "shapes", clicked=clicked))
    assert updates[-1][0].startswith("### ⏹ Cancelled"), updates[-1][0]


@pytest.mark.parametrize(
    ("clicked", "same"),
    [(None, False), ("soon", False), (-1.0, False), (1e12, False), (0.0, True), (5.0, True)],
)
def test_started_at_trusts_only_a_past_click_time(clicked: Any, same: bool) -> None:
    from videoseg.ui.common import started_at

    before = time.monotonic()
    value = started_at(clicked)
    assert value == clicked if same else before <= value <= time.monotonic()


def test_long_actions_stamp_the_click_before_queueing(tmp_path: Path) -> None:
    from videoseg.ui.app import build_demo
    from videoseg.ui.common import stop_values

    demo = build_demo(store=SessionStore(tmp_path / "store"))
    deps = demo.config["dependencies"]
    actions = [
        (demo.run_tab["run"], demo.run_tab["view"]["status"], "run", "Run"),
        (demo.compare_tab["compare"], demo.compare_tab["status"], "comparison", "Compare"),
        (demo.inspect_tab["replay"], demo.inspect_tab["view"]["status"], "replay", "Replay"),
        (
            demo.interactive_tab["repropagate"],
            demo.interactive_tab["status"],
            "re-propagation",
            "Re-propagate",
        ),
    ]
    for button, status, what, again in actions:
        (first,) = [d for d in deps if [button._id, "click"] in [list(t) for t in d["targets"]]]
        stamp = demo.fns[first["id"]]
        assert stamp.concurrency_limit is None, first  # never queued
        assert first["outputs"] == [first["outputs"][0], status._id]
        before = time.monotonic()
        clicked, waiting = stamp.fn()
        assert before <= clicked <= time.monotonic()
        assert waiting.startswith("### ⏳") and what in waiting, waiting
        # a Stop pressed while it waits is acknowledged at once (the ⏳ marks work not yet done)
        assert stop_values(waiting, None, what, again)[0].startswith("### ⏹ Cancelled")
        (then,) = [d for d in deps if d.get("trigger_after") == first["id"]]
        assert first["outputs"][0] in then["inputs"], (first, then)  # the stamp reaches the run


def test_an_upload_is_checked_at_once_in_the_run_tab(ctx: AppContext, tmp_path: Path) -> None:
    from videoseg.io.video import open_video
    from videoseg.ui.app import build_demo
    from videoseg.ui.tabs.run import upload_status

    with open_video(ctx.examples[0].video) as video:
        expected = f"Video ready: {len(video)} frames, {video.size[0]}×{video.size[1]}"
    status = upload_status(ctx, str(ctx.examples[0].video))
    assert status is not None and status.startswith(expected), status
    bogus = tmp_path / "holiday.mp4"
    bogus.write_bytes(b"this is not a video")
    status = upload_status(ctx, str(bogus))
    assert status is not None and status.startswith("### ❌ This video cannot be used"), status
    assert str(tmp_path) not in status, status
    assert upload_status(ctx, None) is None  # the video was cleared: nothing to say

    demo = build_demo(store=SessionStore(tmp_path / "store"))
    tab = demo.run_tab
    (dep,) = [
        d
        for d in demo.config["dependencies"]
        if [tab["video"]._id, "upload"] in [list(t) for t in d["targets"]]
    ]
    assert dep["outputs"] == [tab["view"]["status"]._id]


def test_interactive_resegment_draws_the_mask_in_front_of_its_cues(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from videoseg.ui.tabs import interactive as interactive_tab
    from videoseg.viz.overlay import keyframe_overlay

    seen: list[tuple[int, int]] = []

    def spy(frame: Any, masks: Any, cues: Any) -> Any:
        seen.append((masks.shape[0], len(cues)))
        return keyframe_overlay(frame, masks, cues)

    monkeypatch.setattr(interactive_tab, "keyframe_overlay", spy)
    cues = json.dumps([{"obj_id": 1, "box": [10, 10, 60, 60]}, {"obj_id": 2, "point": [100, 100]}])
    image, status = resegment(ctx, str(ctx.examples[0].video), 0, cues, "shapes")
    assert status.startswith("✅") and isinstance(image, str), status
    assert seen == [(2, 2)]  # the Stage 3a drawing (mask over thin cues), not the cues panel's


def test_a_run_that_finds_no_target_says_so_instead_of_done(ctx: AppContext, tmp_path: Path) -> None:
    from videoseg.core import events as ev
    from videoseg.ui.live import LiveView
    from videoseg.ui.tabs.run import run_stream

    out = _final([v for v, _ in run_stream(ctx, str(ctx.examples[0].video), "橙色的正方形", "shapes")])
    assert out["status"].startswith("### ⚠️ Done, but no target found: the reasoner named no target"), out[
        "status"
    ]
    assert "✅" not in out["status"]

    view = LiveView(tmp_path / "v", None, trace=False)  # a model answer that cannot be read
    view.apply(ev.ParseError(message="no <answer> block", raw="I think it is the cat"))
    view.apply(ev.RunFinished(num_frames=12, num_targets=0, seconds=1.5))
    status = view.render_status()
    assert "no target found: the reasoner's answer could not be read (no <answer> block)" in plain(status), (
        status
    )
    assert "<answer>" not in status  # not an HTML tag for the browser to drop
    assert "empty on all 12 frames" in status


@pytest.mark.parametrize(
    ("value", "frames", "expected"),
    [
        (0, 10, 0),
        (9.0, 10, 9),  # the slider sends floats
        ("3", 10, 3),
        (None, 10, 0),
        (10, 10, "Frame 10 does not exist: the video has 10 frames (0 to 9)."),
        (-1, 10, "Frame -1 does not exist"),
        (10.7, 71, "The frame must be a whole number, not 10.7."),
        ("ten", 10, "The frame must be a number, not 'ten'."),
    ],
)
def test_frame_numbers_are_checked_not_clamped(value: Any, frames: int, expected: int | str) -> None:
    from videoseg.ui.session import UploadError
    from videoseg.ui.tabs.interactive import frame_index

    if isinstance(expected, int):
        assert frame_index(value, frames) == expected
    else:
        with pytest.raises(UploadError, match=re.escape(expected)):
            frame_index(value, frames)


def test_resegment_and_repropagate_refuse_a_frame_outside_the_video(ctx: AppContext) -> None:
    from videoseg.io.video import open_video

    video = str(ctx.examples[0].video)
    with open_video(video) as v:
        n = len(v)
    cues = json.dumps([{"obj_id": 1, "box": [10, 10, 60, 60]}])
    _, status = resegment(ctx, video, n + 400, cues, "shapes")
    assert status == f"❌ Frame {n + 400} does not exist: the video has {n} frames (0 to {n - 1}).", status
    (only,) = list(repropagate_stream(ctx, video, "", 10.7, cues, "shapes"))
    assert "whole number" in only[0], only[0]


def test_an_upload_over_a_limit_is_told_in_words(ctx: AppContext) -> None:
    from videoseg.ui.session import UploadCaps, UploadError

    caps = UploadCaps(max_frames=5)
    with pytest.raises(UploadError) as exc:
        caps.open(str(ctx.examples[0].video))
    message = str(exc.value)
    assert "video too long: it has more than 5 frames, the limit" in message, message
    assert "VideoCaps" not in message and "Limits here: videos up to" in message, message


def test_the_preset_list_says_when_weights_cannot_be_fetched_here(unreachable_hub: None) -> None:
    from videoseg.ui.runner import describe_preset, preset_choices

    labels = {name: label for label, name in preset_choices()}
    assert labels["paper"] == "paper · needs weights not on this server"
    assert labels["shapes"] == "shapes · weights-free"
    text = describe_preset("paper")
    assert "⛔ not here and cannot be fetched from here (no connection to huggingface.co)" in text, text
    assert "(no connection to github.com)" in text and "Cannot run on this server" in text, text
    assert "Would download" not in text


def test_the_preset_list_offers_the_download_when_it_can_be_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    from videoseg.runtime import loading as models
    from videoseg.ui import runner

    monkeypatch.setattr(models, "hub_reachable", lambda: True)
    monkeypatch.setattr(models, "url_reachable", lambda url: True)
    monkeypatch.setattr(runner, "_locate", lambda model_id: (False, "hub download"))
    labels = {name: label for label, name in runner.preset_choices()}
    assert labels["paper"] == "paper · needs weights (~17.8 GB download)"
    text = runner.describe_preset("paper")
    assert "⬇ not here, hub download" in text and "Would download about 17.8 GB" in text, text
