"""The explorer through its named API endpoints (gradio_client against an in-process server), plus the
pure helpers of videoseg.ui (failure diagnosis, clicks, session store, upload caps).

The app runs the real pipeline with the weights-free ``shapes`` preset on a real shapes-world example.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from tests.ui.rendering import plain
from videoseg.core import events as ev
from videoseg.core.events import RunStarted
from videoseg.core.trace import read_trace
from videoseg.eval.diagnosis import box_iou, cue_box_score, diagnose, mask_iou, worst_frames
from videoseg.ui.runner import gpu_seconds, preset_choices, preset_requirements
from videoseg.ui.session import SessionStore, UploadCaps, UploadError
from videoseg.ui.tabs.interactive import MODES, add_click, parse_cues

RUN_OUTPUTS = [
    "status",
    "progress",
    "timeline",
    "gallery",
    "reasoning",
    "cues_image",
    "cues_legend",
    "keyframe_image",
    "strip",
    "video",
    "stages",
    "downloads",
]


def _is_skip(value: Any) -> bool:
    return isinstance(value, dict) and value.get("__type__") == "update"


def merged(updates: list[tuple]) -> list[Any]:
    """The latest real value of each output across streamed updates (skips keep the previous one)."""
    latest: list[Any] = [None] * len(updates[0])
    for update in updates:
        for i, value in enumerate(update):
            if not _is_skip(value):
                latest[i] = value
    return latest


def stream(client: Any, *args: Any, api_name: str) -> list[tuple]:
    job = client.submit(*args, api_name=api_name)
    updates = [tuple(u) if isinstance(u, (list, tuple)) else (u,) for u in job]
    assert updates, f"{api_name} streamed nothing"
    return updates


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from gradio_client import Client

    from videoseg.ui.app import build_demo

    store = SessionStore(tmp_path_factory.mktemp("ui-store"))
    demo = build_demo(store=store)
    demo.queue().launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    client = Client(demo.local_url, verbose=False)
    yield demo, client
    demo.close()


@pytest.fixture(scope="module")
def example(app: Any) -> Any:
    demo, _ = app
    assert demo.ctx.examples, "no shapes-world example available"
    return demo.ctx.examples[0]


@pytest.fixture(scope="module")
def run_result(app: Any, example: Any) -> tuple[list[tuple], list[Any]]:
    from gradio_client import handle_file

    _, client = app
    updates = stream(
        client, handle_file(str(example.video)), example.expressions[0]["text"], "shapes", api_name="/run"
    )
    return updates, merged(updates)


def test_named_endpoints(app: Any) -> None:
    _, client = app
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    for name in ("/run", "/compare", "/replay", "/inspect", "/resegment", "/repropagate"):
        assert name in api
    params = [p["parameter_name"] for p in api["/run"]["parameters"]]
    assert len(params) == 3  # video file, query text, preset name, in that order
    assert api["/run"]["parameters"][0]["component"] == "Video"
    assert api["/run"]["parameters"][1]["component"] == "Textbox"
    assert api["/run"]["parameters"][2]["component"] == "Dropdown"


def _stage_order(updates: list[tuple]) -> list[str]:
    seen: list[str] = []
    for u in updates:
        progress = u[RUN_OUTPUTS.index("progress")]
        if isinstance(progress, dict) and progress.get("stage") and progress["stage"] not in seen:
            seen.append(progress["stage"])
    return seen


def test_run_streams_every_stage_in_order(run_result: tuple[list[tuple], list[Any]], example: Any) -> None:
    updates, final = run_result
    order = _stage_order(updates)
    assert [s for s in order if s != "run"] == ["sampler", "reasoner", "segmenter", "propagator", "done"], (
        order
    )
    assert len(updates) >= 6  # streamed, not one final answer
    out = dict(zip(RUN_OUTPUTS, final))
    assert "Done" in out["status"], out["status"]
    assert out["progress"]["status"] == "finished"
    assert "<details>" in out["reasoning"] and "Answer" in out["reasoning"]  # think folded once done
    assert out["gallery"] and any("target frame" in str(item) for item in out["gallery"])
    assert out["cues_image"] and out["keyframe_image"] and out["strip"]
    assert "target 1" in out["cues_legend"]
    stages = {row[0]: row for row in out["stages"]["data"]}
    assert stages["propagator"][2] == "done" and stages["reasoner"][4]  # the model calls, summed
    names = sorted(Path(f).name for f in out["downloads"])
    assert names == ["cues.json", "masks.zip", "overlay.mp4", "trace.jsonl"]
    files = {Path(f).name: Path(f) for f in out["downloads"]}
    with zipfile.ZipFile(files["masks.zip"]) as z:
        pngs = [n for n in z.namelist() if n.endswith(".png")]
    events = list(read_trace(files["trace.jsonl"]))
    assert isinstance(events[0], RunStarted) and events[-1].type == "run_finished"
    assert len(pngs) == events[0].video["num_frames"]
    cues = json.loads(files["cues.json"].read_text())
    assert (
        cues["query"] == example.expressions[0]["text"] and cues["targets"]
    )  # one cues.json schema (videoseg.io.export)


def test_run_progress_during_propagation_fills_in(run_result: tuple[list[tuple], list[Any]]) -> None:
    updates, _ = run_result
    done = [u[1]["propagated"][0] for u in updates if isinstance(u[1], dict) and u[1].get("propagated")]
    assert done == sorted(done) and done[-1] == max(done) > 0


@pytest.mark.parametrize(
    ("kind", "query", "preset", "message"),
    [
        ("none", "the red square", "shapes", "No video given"),
        ("text", "the red square", "shapes", "cannot be used"),  # a non-video file
        ("video", "   ", "shapes", "query is empty"),
        ("video", "the red square", "no-such-preset", "Unknown preset"),
    ],
)
def test_run_bad_inputs_give_messages(
    app: Any, example: Any, tmp_path: Path, kind: str, query: str, preset: str, message: str
) -> None:
    from gradio_client import handle_file

    _, client = app
    if kind == "none":
        video = None
    elif kind == "text":
        bogus = tmp_path / "notes.mp4"
        bogus.write_text("this is not a video\n" * 20)
        video = handle_file(str(bogus))
    else:
        video = handle_file(str(example.video))
    updates = stream(client, video, query, preset, api_name="/run")
    status = merged(updates)[0]
    assert message in status, status
    assert "Traceback" not in status
    assert merged(updates)[1]["status"] == "error"


def test_replay_recorded_trace_matches_live_order(
    app: Any, run_result: tuple[list[tuple], list[Any]]
) -> None:
    from gradio_client import handle_file

    _, client = app
    trace = next(f for f in run_result[1][11] if f.endswith("trace.jsonl"))
    updates = stream(client, handle_file(trace), None, api_name="/replay")
    order = [s for s in _stage_order(updates) if s != "run"]
    assert order == ["sampler", "reasoner", "segmenter", "propagator", "done"]
    out = dict(zip(RUN_OUTPUTS, merged(updates)))
    assert "Done" in out["status"] and out["video"] and out["keyframe_image"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json at all\n", "cannot be read"),
        ('{"type": "reasoning_token", "index": 0, "text": "a"}\n', "does not start with a run_started"),
        ('{"type": "run_started", "query": "q"}\n', "cannot be read"),  # missing fields
    ],
)
def test_replay_corrupt_trace_gives_message(app: Any, tmp_path: Path, content: str, message: str) -> None:
    from gradio_client import handle_file

    _, client = app
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    status = merged(stream(client, handle_file(str(bad)), None, api_name="/replay"))[0]
    assert message in plain(status) and "Traceback" not in status


def test_compare_two_presets_with_ground_truth(app: Any, example: Any) -> None:
    from gradio_client import handle_file

    _, client = app
    updates = stream(
        client,
        handle_file(str(example.video)),
        example.expressions[0]["text"],
        "shapes",
        "shapes-first-frame",
        None,
        api_name="/compare",
    )
    status, *_, curves, summary = merged(updates)
    assert "Compared" in status and "ground truth" in status
    rows = summary["data"]
    assert [r[0] for r in rows] == ["shapes", "shapes-first-frame"]
    for r in rows:
        assert 0.0 <= r[3] <= 1.0  # J&F
    assert rows[1][4] == 0  # first-frame sampler reasons on frame 0
    assert curves is not None
    # both sides streamed their own results (B's keyframe may be empty: frame 0 can miss the target)
    final = merged(updates)
    assert final[1] and final[2] and final[3] and final[4] and final[6]


def _predictions_zip(tmp_path: Path, example: Any, trace: str) -> Path:
    root = tmp_path / "pred" / example.name
    shutil.copytree(example.annotations, root / "Annotations")
    shutil.copy(example.directory / "expressions.json", root / "expressions.json")
    shutil.copy(trace, root / "run.jsonl")
    zpath = tmp_path / "pred.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for p in root.rglob("*"):
            z.write(p, p.relative_to(tmp_path / "pred"))
    return zpath


def test_inspect_ranks_and_diagnoses(
    app: Any, example: Any, tmp_path: Path, run_result: tuple[list[tuple], list[Any]]
) -> None:
    from gradio_client import handle_file

    _, client = app
    trace = next(f for f in run_result[1][11] if f.endswith("trace.jsonl"))
    result = client.predict(handle_file(str(_predictions_zip(tmp_path, example, trace))), api_name="/inspect")
    status, ranking, _selector, details, _curves, worst = result
    assert "Ranked 1 expression" in status
    row = ranking["data"][0]
    assert row[2] == example.expressions[0]["text"]
    assert row[7] in ("sampler", "reasoner", "segmenter", "propagator", "ok")
    assert "stage at fault" in details and worst and len(worst) == 4


def test_inspect_bad_zip_gives_message(app: Any, tmp_path: Path) -> None:
    from gradio_client import handle_file

    _, client = app
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("readme.txt", "nothing here")
    status = client.predict(handle_file(str(empty)), api_name="/inspect")[0]
    assert "No expression with both ground truth and a prediction" in status
    notzip = tmp_path / "x.zip"
    notzip.write_text("plain text")
    assert "not a zip file" in client.predict(handle_file(str(notzip)), api_name="/inspect")[0]


def _gt_box(example: Any, frame: int) -> list[float]:
    from videoseg.io.video import read_mask_pngs

    ids = read_mask_pngs(example.annotations)
    mask = np.isin(ids[frame], example.expressions[0]["obj_ids"])
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())]


def _present_frame(example: Any) -> int:
    from videoseg.io.video import read_mask_pngs

    ids = read_mask_pngs(example.annotations)
    present = np.isin(ids, example.expressions[0]["obj_ids"]).reshape(len(ids), -1).sum(axis=1)
    return int(np.argmax(present))


def test_resegment_and_repropagate_from_clicked_cues(app: Any, example: Any) -> None:
    from gradio_client import handle_file

    _, client = app
    frame = _present_frame(example)
    box = _gt_box(example, frame)
    cues = json.dumps([{"obj_id": 1, "frame_idx": frame, "box": box, "point": None, "negatives": []}])
    image, status = client.predict(
        handle_file(str(example.video)), frame, cues, "shapes", api_name="/resegment"
    )
    assert status.startswith("✅") and "grabcut" in status and Path(image).is_file()
    # the correction went through the event stream and was recorded as a trace
    demo, _ = app
    traces = sorted(demo.ctx.store.root.glob("*/resegment-*/trace.jsonl"), key=lambda p: p.stat().st_mtime)
    assert traces, "no trace recorded for the re-segmentation"
    kinds = [json.loads(line)["type"] for line in traces[-1].read_text().splitlines()]
    assert kinds[0] == "run_started" and "keyframe_mask" in kinds and kinds[-1] == "run_finished"
    updates = stream(
        client, handle_file(str(example.video)), "fix", frame, cues, "shapes", api_name="/repropagate"
    )
    status, key_image, _strip, video, downloads = merged(updates)
    assert "Done" in status and video and key_image
    assert any(f.endswith("trace.jsonl") for f in downloads)


@pytest.mark.parametrize(
    ("cues", "message"),
    [
        ("[]", "No cues yet"),
        ("{not json", "not valid JSON"),
        ('[{"obj_id": 1, "box": [1, 2]}]', "cue 1"),
    ],
)
def test_resegment_bad_cues_give_messages(app: Any, example: Any, cues: str, message: str) -> None:
    from gradio_client import handle_file

    _, client = app
    _, status = client.predict(handle_file(str(example.video)), 0, cues, "shapes", api_name="/resegment")
    assert message in status and "Traceback" not in status


# ----------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("jf", "present", "target", "cue_iou", "key_iou", "has_cues", "stage"),
    [
        (
            [0.1] * 4,
            [False, True, True, False],
            0,
            0.9,
            0.9,
            True,
            "sampler",
        ),  # looked where the target is not
        ([0.1] * 4, [True] * 4, 1, None, None, False, "reasoner"),  # no cues at all
        ([0.1] * 4, [True] * 4, 1, 0.2, 0.9, True, "reasoner"),  # cue box off the target
        ([0.1] * 4, [True] * 4, 1, 0.8, 0.3, True, "segmenter"),  # right box, bad mask
        ([0.2, 0.9, 0.2, 0.1], [True] * 4, 1, 0.8, 0.9, True, "propagator"),  # good keyframe, decays
        ([0.9] * 4, [True] * 4, 1, 0.8, 0.9, True, "ok"),
        ([0.2] * 4, [True] * 4, None, None, None, True, "unknown"),  # PNG predictions, no trace
        ([1.0] * 3, [False] * 3, 1, None, 1.0, True, "ok"),  # nothing to find, nothing found
    ],
)
def test_diagnose_table(
    jf: list[float],
    present: list[bool],
    target: int | None,
    cue_iou: float | None,
    key_iou: float | None,
    has_cues: bool,
    stage: str,
) -> None:
    assert diagnose(jf, present, target, cue_iou, key_iou, has_cues=has_cues).stage == stage


@pytest.mark.parametrize(
    ("a", "b", "iou"),
    [
        ([0, 0, 9, 9], [0, 0, 9, 9], 1.0),
        ([0, 0, 9, 9], [10, 10, 19, 19], 0.0),
        ([0, 0, 9, 9], [5, 0, 14, 9], 50 / 150),
        (None, [0, 0, 1, 1], 0.0),
    ],
)
def test_box_iou_table(a: list[float] | None, b: list[float], iou: float) -> None:
    assert box_iou(a, b) == pytest.approx(iou)


def test_cue_box_score_and_mask_iou_and_worst_frames() -> None:
    assert cue_box_score([[0, 0, 9, 9], None], [[0, 0, 9, 9], [20, 20, 29, 29]]) == pytest.approx(0.5)
    assert cue_box_score([], [[0, 0, 1, 1]]) == 0.0
    a = np.zeros((4, 4), bool)
    assert mask_iou(a, a) == 1.0
    b = a.copy()
    b[0, :2] = True
    assert mask_iou(a, b) == 0.0
    assert worst_frames([0.5, 0.1, 0.9, 0.1], count=3) == [1, 3, 0]


def test_add_click_builds_points_and_two_click_boxes() -> None:
    cues, pending = add_click([], MODES[0], 1, 10, 20, None, frame_idx=5)
    assert cues[0].point == [10.0, 20.0] and pending is None and cues[0].frame_idx == 5
    cues, pending = add_click(cues, MODES[2], 2, 50, 60, None, 5)
    assert pending == [50, 60] and len(cues) == 1  # first corner only
    cues, pending = add_click(cues, MODES[2], 2, 30, 90, pending, 5)
    assert pending is None and cues[1].obj_id == 2 and cues[1].box == [30.0, 60.0, 50.0, 90.0]
    cues, _ = add_click(cues, MODES[1], 1, 1, 2, None, 5)
    cues, _ = add_click(cues, MODES[1], 1, 3, 4, None, 5)
    assert cues[0].negatives == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(ValueError, match="unknown click mode"):
        add_click(cues, "lasso", 1, 0, 0, None, 5)


def test_parse_cues_moves_cues_to_the_frame() -> None:
    cues = parse_cues('[{"obj_id": 2, "frame_idx": 9, "box": [1, 2, 3, 4]}]', 4)
    assert cues[0].frame_idx == 4 and cues[0].obj_id == 2
    assert parse_cues("", 0) == []
    with pytest.raises(ValueError, match="JSON list"):
        parse_cues('{"box": [1, 2, 3, 4]}', 0)


def _age(path: Path, seconds_ago: float) -> None:
    import time

    t = time.time() - seconds_ago
    for p in [path, *path.rglob("*")]:
        os.utime(p, (t, t))


def test_session_store_caps_age_and_size(tmp_path: Path) -> None:
    store = SessionStore(tmp_path, max_total_bytes=3500, max_session_bytes=2500, max_age_s=100)
    old = store.new_run_dir("old-session")
    (old / "a.bin").write_bytes(b"x" * 1000)
    _age(old.parent, 1000)
    assert store.cleanup() == [old.parent] and not old.parent.exists()  # too old
    first = store.new_run_dir("first")
    (first / "a.bin").write_bytes(b"x" * 2000)
    _age(first.parent, 50)
    second = store.new_run_dir("second")
    (second / "b.bin").write_bytes(b"x" * 2000)
    assert store.cleanup() == [first.parent]  # over the total cap: the least recently used session goes
    assert second.exists()
    # one session: its oldest runs go when a new run would exceed its cap
    third = store.new_run_dir("second")
    (third / "c.bin").write_bytes(b"x" * 1000)
    _age(second, 10)
    store.new_run_dir("second")
    assert not second.exists() and third.exists()
    # the session hash cannot name a path outside the store
    assert store.session_dir("../../etc").parent == store.root
    store.drop("second")
    assert not third.exists()


def test_upload_caps_messages(tmp_path: Path) -> None:
    caps = UploadCaps(max_file_mb=0.001)
    with pytest.raises(UploadError, match="No video given"):
        caps.check_file(None)
    with pytest.raises(UploadError, match="not found"):
        caps.check_file(tmp_path / "missing.mp4")
    big = tmp_path / "big.mp4"
    big.write_bytes(b"x" * 5000)
    with pytest.raises(UploadError, match=r"limit here is 0\.001 MB"):
        caps.check_file(big)
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../escape.txt", "x")
    with pytest.raises(UploadError, match="unsafe path"):
        UploadCaps().extract_zip(evil, tmp_path / "out")


def test_preset_weights_and_gpu_time() -> None:
    labels = dict((name, label) for label, name in preset_choices())
    assert "weights-free" in labels["shapes"]
    assert preset_requirements("shapes") == []
    paper = {r.what: r for r in preset_requirements("paper")}
    assert set(paper) == {"reasoner", "segmenter", "propagator"}
    assert paper["reasoner"].model_id == "Qwen/Qwen2.5-VL-7B-Instruct"
    if not paper["reasoner"].present:
        assert "needs weights" in labels["paper"]
    short = gpu_seconds("v.mp4", "q", "paper", None, 50)
    long = gpu_seconds("v.mp4", "q", "paper", None, 2000)
    assert 30 <= short < long <= 300


def test_bundled_traces_replay_with_their_video_and_inspect(app: Any) -> None:
    from gradio_client import handle_file

    from videoseg.ui.examples import TRACES_DIR

    _, client = app
    traces = sorted(TRACES_DIR.glob("*.jsonl"))
    assert traces, "examples/traces/ holds no recorded trace (bench/record_example_traces.py writes them)"
    out = dict(
        zip(RUN_OUTPUTS, merged(stream(client, handle_file(str(traces[0])), None, api_name="/replay")))
    )
    assert "Done" in out["status"] and "without the video" not in out["status"]
    status, ranking, *_ = client.predict(None, api_name="/inspect")
    assert f"Ranked {len(traces)} expression" in status
    assert [r[0] for r in ranking["data"]] == list(range(1, len(traces) + 1))
    jf = [r[3] for r in ranking["data"]]
    assert jf == sorted(jf)  # worst first


@pytest.mark.parametrize(
    ("event", "pace", "delay"),
    [
        (ev.ReasoningToken(index=0, text="a"), 20.0, 0.05),  # one token every 1/20 s
        (ev.ReasoningToken(index=0, text="a"), 0.0, 0.0),  # pacing off
        (ev.PropagatedMask(frame_idx=1, direction="forward", rles=[], done=2, total=40), 20.0, 1 / 30),
        (ev.PropagatedMask(frame_idx=1, direction="forward", rles=[], done=2, total=400), 20.0, 0.01),
        (ev.RunFinished(num_frames=1, num_targets=1, seconds=1.0), 20.0, 0.0),  # other events: no wait
    ],
)
def test_pace_delay_table(event: ev.Event, pace: float, delay: float) -> None:
    from videoseg.ui.common import pace_delay

    assert pace_delay(event, pace) == pytest.approx(delay)


def test_paced_replay_waits_per_token_and_frame(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A paced drive sleeps once per reasoning token and per propagated frame, and shows the same result."""
    from videoseg.ui import common
    from videoseg.ui.live import LiveView

    trace = sorted((Path(__file__).resolve().parents[2] / "examples" / "traces").glob("*.jsonl"))[0]
    events = list(read_trace(trace))
    waits: list[float] = []
    here, real_sleep = threading.current_thread(), time.sleep

    def sleep(seconds: float) -> None:
        # time.sleep is patched for the whole process: threads other tests left running (a run's
        # worker, a server) keep their own sleeps and must not be counted as this drive's waits.
        if threading.current_thread() is here:
            waits.append(seconds)
        else:
            real_sleep(seconds)

    monkeypatch.setattr(common.time, "sleep", sleep)
    fast = list(common.drive(LiveView(tmp_path / "fast", None, trace=False), events))
    assert waits == []
    paced = list(common.drive(LiveView(tmp_path / "paced", None, trace=False), events, pace=30.0))
    tokens = sum(isinstance(e, ev.ReasoningToken) for e in events)
    frames = sum(isinstance(e, ev.PropagatedMask) for e in events)
    assert len(waits) == tokens + frames and tokens > 0 and frames > 0
    assert paced[-1]["status"] == fast[-1]["status"]


def test_read_ahead_drains_the_source_without_waiting_for_the_consumer() -> None:
    from videoseg.ui.common import read_ahead

    pulled: list[int] = []
    drained = threading.Event()

    def source() -> Iterator[int]:
        for i in range(5):
            pulled.append(i)
            yield i
        drained.set()

    ahead = read_ahead(source(), threading.Event())
    assert next(ahead) == 0
    assert drained.wait(30) and pulled == [0, 1, 2, 3, 4]  # while the consumer has taken one
    assert list(ahead) == [1, 2, 3, 4]  # the rest, in order


def test_read_ahead_raises_a_source_error_in_place_and_stops_the_source_when_left() -> None:
    from videoseg.ui.common import read_ahead

    def failing() -> Iterator[int]:
        yield 1
        raise ValueError("bad frame")

    got: list[int] = []
    with pytest.raises(ValueError, match="bad frame"):
        for item in read_ahead(failing(), threading.Event()):
            got.append(item)
    assert got == [1]

    cancel, closed = threading.Event(), threading.Event()

    def endless() -> Iterator[int]:  # a pipeline: runs until its cancel flag is set
        try:
            i = 0
            while not cancel.is_set():
                yield i
                i += 1
        finally:
            closed.set()

    ahead = read_ahead(endless(), cancel)
    assert [next(ahead) for _ in range(3)] == [0, 1, 2]
    ahead.close()
    assert cancel.is_set() and closed.is_set()  # the reader has finished when close() returns


def test_a_paced_run_is_timed_without_the_displays_waits(
    monkeypatch: pytest.MonkeyPatch, app: Any, example: Any
) -> None:
    """The pace slows the display only: the pipeline runs to its end while the display waits."""
    from videoseg.ui import common
    from videoseg.ui.tabs import run as run_tab

    finished = threading.Event()
    real_events, real_sleep = run_tab.pipeline_events, time.sleep
    here = threading.current_thread()

    def events(*args: Any, **kwargs: Any) -> Iterator[ev.Event]:
        yield from real_events(*args, **kwargs)
        finished.set()

    def sleep(seconds: float) -> None:
        if threading.current_thread() is not here:
            return real_sleep(seconds)
        # A display wait: the run must be able to go on meanwhile. Were the pipeline suspended by
        # this wait (no read-ahead), it could never finish and this would fail.
        assert finished.wait(60), "the pipeline stood still while the display waited"

    monkeypatch.setattr(run_tab, "pipeline_events", events)
    monkeypatch.setattr(common.time, "sleep", sleep)
    query = example.expressions[0]["text"]
    updates = [v for v, _ in run_tab.run_stream(app[0].ctx, str(example.video), query, "shapes", pace=30.0)]
    assert finished.is_set() and "Done" in updates[-1]["status"], updates[-1]["status"]


@pytest.mark.parametrize(
    ("space_id", "setting", "lazy"),
    [
        (None, None, False),  # local default: examples run live, not cached
        ("user/space", None, True),  # on a Space: lazy caching
        ("user/space", "off", False),  # switched off on a Space
        (None, "lazy", True),  # switched on locally
    ],
)
def test_example_caching_setting(
    monkeypatch: pytest.MonkeyPatch, space_id: str | None, setting: str | None, lazy: bool
) -> None:
    from videoseg.ui.tabs.run import cache_examples_lazily

    for name, value in (("SPACE_ID", space_id), ("VIDEOSEG_CACHE_EXAMPLES", setting)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert cache_examples_lazily() is lazy


def test_lazily_cached_examples_are_wired_to_a_full_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from videoseg.ui.app import build_demo

    monkeypatch.setenv("VIDEOSEG_CACHE_EXAMPLES", "lazy")
    monkeypatch.setenv("GRADIO_EXAMPLES_CACHE", str(tmp_path / "gradio-cache"))
    demo = build_demo(store=SessionStore(tmp_path / "store"))
    examples = demo.run_tab["examples"]
    assert examples.cache_examples == "lazy"
    assert examples.fn.__name__ == "run_example"
    assert len(examples.outputs) == len(RUN_OUTPUTS)
    # What a first click on a Space does: Gradio's own lazy caching (it calls the function through a
    # wrapper without a request), then the cached final outputs are loaded.
    from gradio_client import utils as client_utils

    assert client_utils.synchronize_async(examples.cache, 0, None) is not None
    cached = examples.load_from_cache(0)
    status = cached[RUN_OUTPUTS.index("status")]
    status = status.get("value", status) if isinstance(status, dict) else getattr(status, "value", status)
    assert "Done" in str(status), status


def test_launch_options_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from videoseg.ui.app import launch_options

    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7999")
    monkeypatch.setenv("VIDEOSEG_MAX_FILE_MB", "50")
    monkeypatch.setenv("VIDEOSEG_MAX_ZIP_MB", "80")
    options = launch_options()
    assert options == {"server_name": "0.0.0.0", "server_port": 7999, "max_file_size": 80 * 1024**2}
    monkeypatch.delenv("GRADIO_SERVER_NAME")
    assert launch_options()["server_name"] == "127.0.0.1"


def test_api_takes_named_arguments_and_leaves_optional_ones_out(app: Any, example: Any) -> None:
    """The endpoints' parameters are named as a caller would (video, query, preset_a ...) and the
    optional ones (replay's video and pace, compare's ground truth) can be left out."""
    from gradio_client import handle_file

    _, client = app
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    names = {name: [p["parameter_name"] for p in api[name]["parameters"]] for name in api}
    assert names["/run"] == ["video", "query", "preset"]
    assert names["/compare"] == ["video", "query", "preset_a", "preset_b", "ground_truth_zip"]
    assert names["/replay"] == ["trace", "video", "pace"]
    assert names["/repropagate"] == ["video", "query", "frame", "cues", "preset"]

    trace = sorted((Path(__file__).resolve().parents[2] / "examples" / "traces").glob("*.jsonl"))[0]
    replayed = list(client.submit(trace=handle_file(str(trace)), api_name="/replay"))
    assert replayed and "Done" in str(replayed[-1]), replayed[-1]
    compared = list(
        client.submit(
            video=handle_file(str(example.video)), query=example.expressions[0]["text"], api_name="/compare"
        )
    )
    assert "Compared" in str(compared[-1][0]), compared[-1][0]
