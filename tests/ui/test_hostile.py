"""Hostile input through the explorer's named API (gradio_client against one in-process server).

Each case is something a visitor can send: a crafted trace (a 30000x30000 video, a billion frames,
masks of another size, NaN, 1e999, deep nesting, huge integers), a predictions zip that lies (entry
sizes, a bomb, too many entries, unsafe or impossible names, encrypted entries, PNG headers claiming
gigapixels), typed cues (1e308, NaN, 200-deep nesting, huge lists) and API arguments Gradio itself
cannot read (frame "abc" / None, a list as preset, a file value without a path). Every one must end
in a message naming what is wrong, never Gradio's generic "the upstream app raised an exception",
and the same server must still answer a good request afterwards (the last test).

The server is built with small archive caps (5 MB) so that a zip bomb costs the test nothing.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from tests.ui.rendering import plain
from videoseg.core import limits
from videoseg.ui.examples import TRACES_DIR
from videoseg.ui.session import SessionStore, UploadCaps

GENERIC = "upstream Gradio app has raised an exception"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from gradio_client import Client

    from videoseg.ui.app import build_demo

    store = SessionStore(tmp_path_factory.mktemp("hostile-store"))
    demo = build_demo(store=store, caps=UploadCaps(max_zip_mb=5.0))
    demo.queue().launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    demo.first_seen = (os.getpid(), demo.local_url)  # the server's process and address at the start
    client = Client(demo.local_url, verbose=False)
    yield demo, client
    demo.close()


@pytest.fixture(scope="module")
def trace_lines() -> list[dict[str, Any]]:
    traces = sorted(TRACES_DIR.glob("*.jsonl"))
    assert traces, "no bundled trace under examples/traces"
    return [json.loads(line) for line in traces[0].read_text().splitlines() if line.strip()]


def _last(job: Any) -> list[Any]:
    """The final outputs of a submitted job (a generator's last update); raises the app's error."""
    values = job.result()
    return list(values) if isinstance(values, (list, tuple)) else [values]


def _replay_status(client: Any, path: Path) -> str:
    from gradio_client import handle_file

    outputs = _last(client.submit(handle_file(str(path)), api_name="/replay"))
    return plain(outputs[0])


# ------------------------------------------------------------------------------------- traces


def _edited(lines: list[dict[str, Any]], event_type: str, change: Callable[[dict[str, Any]], None]) -> str:
    out = []
    done = False
    for data in lines:
        data = json.loads(json.dumps(data))
        if data["type"] == event_type and not done:
            change(data)
            done = True
        out.append(json.dumps(data))
    assert done, event_type
    return "\n".join(out) + "\n"


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for key in parents:
            data = data[key]
        data[last] = value

    return change


TRACE_CASES = {
    "30000x30000 video": (
        lambda lines: _edited(lines, "run_started", _set("video.width", 30000)),
        "field 'video.width' must be a whole number from 1 to 1,920",
    ),
    "a billion frames": (
        lambda lines: _edited(lines, "run_started", _set("video.num_frames", 10**9)),
        "field 'video.num_frames' must be a whole number from 0 to 3,600",
    ),
    "30000x30000 mask": (
        lambda lines: _edited(
            lines, "propagated_mask", lambda d: d["rles"][0].update(size=[30000, 30000], counts="0")
        ),
        "field 'rles[0].size[0]' must be a whole number from 1 to 1,920",
    ),
    "mask of another size": (
        lambda lines: _edited(lines, "keyframe_mask", lambda d: d["rle"].update(size=[48, 64])),
        "field 'rle.size' is 64x48 (width x height), but the run's video is 320x240",
    ),
    "a billion targets": (
        lambda lines: _edited(lines, "keyframe_mask", _set("target", 10**9)),
        "field 'target' must be a whole number from 0 to 31",
    ),
    "frame beyond the video": (
        lambda lines: _edited(lines, "sampler_result", _set("target_frame", 10**6)),
        "field 'target_frame' must be a whole number from 0 to 63",
    ),
    "100k key frames": (
        lambda lines: _edited(lines, "sampler_result", _set("key_frames", [0] * 100_000)),
        "field 'key_frames' lists 100,000 frames",
    ),
    "NaN": (
        lambda lines: _edited(lines, "stage_timing", _set("seconds", 1.0)).replace(
            '"seconds": 1.0', '"seconds": NaN'
        ),
        "NaN is not a number JSON allows",
    ),
    "1e999": (
        lambda lines: _edited(lines, "stage_timing", _set("seconds", 1.0)).replace(
            '"seconds": 1.0', '"seconds": 1e999'
        ),
        "too large to be a number",
    ),
    "negative seconds": (
        lambda lines: _edited(lines, "stage_timing", _set("seconds", -5.0)),
        "field 'seconds' must be a number from 0",
    ),
    "200-deep config": (
        lambda lines: _edited(lines, "run_started", _set("config.x", json.loads("[" * 200 + "]" * 200))),
        "nested more than 16 levels deep",
    ),
    "5000-digit integer": (
        lambda lines: _edited(lines, "run_finished", _set("num_frames", 7)).replace(
            '"num_frames": 7', '"num_frames": ' + "9" * 5000
        ),
        "an integer has 5000 digits",
    ),
    "mask counts that are not RLE": (
        lambda lines: _edited(lines, "propagated_mask", lambda d: d["rles"][0].update(counts="<script>")),
        "field 'rles[0].counts' must be a compressed COCO RLE string",
    ),
    "a million values on one line": (
        lambda lines: _edited(lines, "prompt", _set("frame_indices", [0])).replace(
            '"frame_indices": [0]', '"frame_indices": [' + ",".join(["0"] * 2_100_000) + "]"
        ),
        "JSON values; at most 2,000,000 are read",
    ),
    "a video file as the trace": (
        lambda lines: b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4,
        "not UTF-8 text",
    ),
}


@pytest.mark.parametrize("case", list(TRACE_CASES))
def test_a_crafted_trace_is_refused_naming_the_field(
    app: Any, trace_lines: list[dict[str, Any]], tmp_path: Path, case: str
) -> None:
    make, fragment = TRACE_CASES[case]
    content = make(trace_lines)
    path = tmp_path / "crafted.jsonl"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    status = _replay_status(app[1], path)
    assert "This trace cannot be read" in status and fragment in status, status


# --------------------------------------------------------------------------------- archives


def _zip(path: Path, entries: dict[str, bytes], compress: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compress) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return path


def _png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))


def _lying_sizes(path: Path) -> Path:
    """An entry whose headers claim 10 bytes while its data inflates to 1 MB."""
    _zip(path, {"d/expressions.json": b"[" + b" " * (1 << 20) + b"]"})
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local header, directory
        at = data.find(signature)
        data[at + offset : at + offset + 4] = struct.pack("<I", 10)
    path.write_bytes(bytes(data))
    return path


def _encrypted(path: Path) -> Path:
    _zip(path, {"d/expressions.json": b"[]"}, zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # general purpose flags
        at = data.find(signature)
        data[at + offset] |= 0x1
    path.write_bytes(bytes(data))
    return path


ZIP_CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "entry sizes that lie": (_lying_sizes, "is damaged"),
    "a zip bomb": (
        lambda p: _zip(p, {"bomb.bin": b"\0" * (8 << 20)}),
        "unpacks to 8 MB; the limit here is 5 MB",
    ),
    "too many entries": (
        lambda p: _zip(p, {f"e{i}": b"" for i in range(limits.MAX_ZIP_ENTRIES + 1)}, zipfile.ZIP_STORED),
        f"holds {limits.MAX_ZIP_ENTRIES + 1:,} entries",
    ),
    "a path out of the folder": (
        lambda p: _zip(p, {"../../evil.png": b"x"}),
        "an unsafe path '../../evil.png'",
    ),
    "an absolute path": (lambda p: _zip(p, {"/etc/evil": b"x"}), "an unsafe path '/etc/evil'"),
    "a name no file system holds": (
        lambda p: _zip(p, {"d/" + "n" * 300: b"x"}),
        "an entry name no file system",
    ),
    "a PNG claiming 100000x100000": (
        lambda p: _zip(p, {"d/Annotations/00000.png": _png_header(100_000, 100_000)}),
        "holds a PNG of 100000x100000",
    ),
    "an encrypted entry": (_encrypted, "an encrypted entry"),
    "a file that is a folder too": (lambda p: _zip(p, {"a": b"x", "a/b": b"y"}), "cannot be unpacked"),
    "not a zip": (lambda p: (p.write_text("just text"), p)[1], "is not a zip file"),
}


@pytest.mark.parametrize("case", list(ZIP_CASES))
def test_a_hostile_predictions_zip_is_refused_in_words(app: Any, tmp_path: Path, case: str) -> None:
    from gradio_client import handle_file

    make, fragment = ZIP_CASES[case]
    archive = make(tmp_path / "predictions.zip")
    outputs = app[1].predict(handle_file(str(archive)), api_name="/inspect")
    status = plain(outputs[0])
    assert status.startswith("❌") and fragment in status, status


def test_a_lying_entry_never_writes_more_than_it_claims(tmp_path: Path) -> None:
    from videoseg.ui.session import UploadError

    archive = _lying_sizes(tmp_path / "p.zip")
    with pytest.raises(UploadError, match="damaged"):
        UploadCaps(max_zip_mb=5.0).extract_zip(archive, tmp_path / "out")
    written = sum(f.stat().st_size for f in (tmp_path / "out").rglob("*") if f.is_file())
    assert written <= 10, written


# ------------------------------------------------------------------------------- typed cues

CUE_CASES = {
    "1e308": ('[{"box": [1e308, 0, 5, 5]}]', "beyond ±1e+06 pixels"),
    "1e999": ('[{"box": [1e999, 0, 5, 5]}]', "too large to be a number"),
    "NaN": ('[{"point": [NaN, 3]}]', "NaN is not a number JSON allows"),
    "200-deep nesting": ("[" * 200 + "]" * 200, "nested more than 4 levels deep"),
    "huge list of targets": (json.dumps([{"point": [1, 1]}] * 5000), "5000 targets; at most 8"),
    "a million negatives": (
        json.dumps([{"negatives": [[1, 1]] * 20000}]),
        "characters long; at most 100,000",
    ),
    "100 negatives": (json.dumps([{"point": [5, 5], "negatives": [[1, 1]] * 100}]), "100 negative points"),
    "obj_id 1e308": ('[{"obj_id": 1e308, "point": [1, 1]}]', "the target number must be 1 to 8"),
    "a 40-digit coordinate": ('[{"point": [' + "9" * 40 + ", 1]}]", "an integer has 40 digits"),
}


@pytest.mark.parametrize("case", list(CUE_CASES))
def test_hostile_typed_cues_are_refused_naming_the_problem(app: Any, case: str) -> None:
    from gradio_client import handle_file

    demo, client = app
    cues, fragment = CUE_CASES[case]
    video = handle_file(str(demo.ctx.examples[0].video))
    _, status = client.predict(video, 0, cues, "shapes", api_name="/resegment")
    assert status.startswith("❌") and fragment in plain(status), status


# -------------------------------------------------------------------------------- arguments

ARGUMENT_CASES: dict[str, tuple[str, Callable[[Any], tuple[Any, ...]], str]] = {
    "resegment frame 'abc'": (
        "/resegment",
        lambda v: (v, "abc", '[{"point": [5, 5]}]', "shapes"),
        "The frame parameter cannot be read: it must be a number from 0 to",
    ),
    "resegment frame None": (
        "/resegment",
        lambda v: (v, None, '[{"point": [5, 5]}]', "shapes"),
        "The frame parameter cannot be read",
    ),
    "repropagate frame 'abc'": (
        "/repropagate",
        lambda v: (v, "q", "abc", '[{"point": [5, 5]}]', "shapes"),
        "The frame parameter cannot be read",
    ),
    "repropagate frame None": (
        "/repropagate",
        lambda v: (v, "q", None, '[{"point": [5, 5]}]', "shapes"),
        "The frame parameter cannot be read",
    ),
    "a file value without a path": (
        "/resegment",
        lambda v: ({"path": None, "meta": {"_type": "gradio.FileData"}}, 0, "[]", "shapes"),
        "The video parameter cannot be read: it must be a file",
    ),
    "replay pace 'fast'": (
        "/replay",
        lambda v: (None, None, "fast"),
        "The pace parameter cannot be read: it must be a number from 0 to 60",
    ),
}


@pytest.mark.parametrize("case", list(ARGUMENT_CASES))
def test_arguments_gradio_cannot_read_name_their_parameter(app: Any, case: str) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    demo, client = app
    endpoint, args, fragment = ARGUMENT_CASES[case]
    with pytest.raises(AppError) as caught:
        _last(client.submit(*args(handle_file(str(demo.ctx.examples[0].video))), api_name=endpoint))
    message = str(caught.value)
    assert GENERIC not in message and fragment in message, message


MESSAGE_CASES: dict[str, tuple[str, Callable[[Any], tuple[Any, ...]], str]] = {
    "a null video": ("/resegment", lambda v: (None, 0, '[{"point": [5, 5]}]', "shapes"), "No video given"),
    "a list as preset": ("/run", lambda v: (v, "the red square", ["shapes"]), "Unknown preset ['shapes']"),
    "a frame past the end": (
        "/resegment",
        lambda v: (v, 1e6, '[{"point": [5, 5]}]', "shapes"),
        "The frame parameter: Value 1000000.0 is greater than maximum value",
    ),
    "cues that are not JSON": (
        "/resegment",
        lambda v: (v, 0, "{{{", "shapes"),
        "the cues are not valid JSON",
    ),
    "an unknown preset B": (
        "/compare",
        lambda v: (v, "the red square", "shapes", "<img src=x onerror=alert(1)>"),
        "Unknown preset '<img src=x onerror=alert(1)>'",
    ),
    "a 100k-character query": ("/run", lambda v: (v, "x" * 100_000, "shapes"), "query is 100000 characters"),
}


@pytest.mark.parametrize("case", list(MESSAGE_CASES))
def test_bad_arguments_end_in_a_message(app: Any, case: str) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    demo, client = app
    endpoint, args, fragment = MESSAGE_CASES[case]
    try:
        outputs = _last(client.submit(*args(handle_file(str(demo.ctx.examples[0].video))), api_name=endpoint))
        texts = [plain(v) for v in outputs if isinstance(v, str)]
    except AppError as exc:  # refused while Gradio reads the input: its message is the answer
        texts = [str(exc)]
    assert any(fragment in t for t in texts) and not any(GENERIC in t for t in texts), texts


def test_a_dotfile_gradio_refuses_is_named(app: Any) -> None:
    """Gradio refuses to move a file whose name starts with a dot when the server's working folder
    holds its upload folder (an app started from /tmp): the message says so, in the API's words."""
    from gradio.exceptions import InvalidPathError

    from videoseg.ui.common import input_problem

    demo, _ = app
    block_fn = next(fn for fn in demo.fns.values() if fn.api_name == "resegment")
    value = {"path": "/tmp/gradio/abc/.hidden.mp4", "meta": {"_type": "gradio.FileData"}}
    error = InvalidPathError("Dotfiles located in the temporary directory cannot be moved to the cache")
    message = input_problem(block_fn, [value, 0, "[]", "shapes"], error)
    assert message.startswith("The video file's name starts with a dot ('.hidden.mp4')"), message


def test_every_stamped_button_ends_a_failed_start_in_words(app: Any) -> None:
    """Run (button and Enter), Replay (and Replay my last run), Compare and Re-propagate first show
    "Starting…"; a failure before their work speaks (Gradio refusing an input) must replace it."""
    from videoseg.ui.common import failed_status

    demo, _ = app
    fns = list(demo.fns.values())
    failures = [fn for fn in fns if fn.trigger_only_on_failure]
    statuses = {
        demo.run_tab["view"]["status"]._id,
        demo.inspect_tab["view"]["status"]._id,
        demo.compare_tab["status"]._id,
        demo.interactive_tab["status"]._id,
    }
    assert {fn.outputs[0]._id for fn in failures} == statuses
    assert len(failures) == 6  # Run: button + Enter; Replay: file + last run; Compare; Re-propagate
    assert all(fn.fn() == failed_status() or "could not start" in fn.fn() for fn in failures)


def test_the_same_server_still_answers(app: Any, trace_lines: list[dict[str, Any]], tmp_path: Path) -> None:
    """After everything above, the same in-process server (same process, same port) replays a good
    trace to its end: nothing took it down or left it unable to serve."""
    demo, client = app
    assert (os.getpid(), demo.local_url) == demo.first_seen
    path = tmp_path / "good.jsonl"
    path.write_text("\n".join(json.dumps(d) for d in trace_lines) + "\n")
    status = _replay_status(client, path)
    assert "Done:" in status, status
