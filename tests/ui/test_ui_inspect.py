"""The Inspect tab after a browser review: a trace of a Run on a bundled example replays on that
example's frames with the same ground-truth row as the live Run, trace errors name the file and not
the server's folders, and the Rank failures status survives Markdown. The handlers are called
in-process, as Gradio calls them, without a server.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from markdown_it import MarkdownIt

from tests.ui.rendering import plain
from videoseg.ui import examples as examples_mod
from videoseg.ui.common import AppContext
from videoseg.ui.examples import (
    TRACES_DIR,
    Example,
    find_examples,
    ground_truth_for,
    match_recorded_example,
)
from videoseg.ui.live import SKIP
from videoseg.ui.session import SessionStore, UploadCaps
from videoseg.ui.tabs.inspect import inspect_run, markdown_text, replay_stream
from videoseg.viz.timeline import presence_runs

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # gr.Warning outside a request

WITHOUT_VIDEO = "Replay without the video"


@pytest.fixture
def ctx(tmp_path: Path) -> AppContext:
    examples = find_examples()
    assert examples, "the repository's examples/ folder has no shapes-world example"
    return AppContext(store=SessionStore(tmp_path / "store"), caps=UploadCaps(), examples=examples)


@pytest.fixture
def upload_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Gradio's upload cache for this test (where a Run's copy of an example video lands)."""
    folder = tmp_path / "gradio"
    folder.mkdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(folder))
    return folder


def _bundled(name: str) -> list[dict]:
    path = TRACES_DIR / f"{name}--0.jsonl"
    assert path.is_file(), f"no bundled trace {path.name}"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _example(ctx: AppContext, name: str) -> Example:
    return next(e for e in ctx.examples if e.name == name)


def _final(values: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for v in values:
        out.update({k: x for k, x in v.items() if x is not SKIP})
    return out


def _replay(ctx: AppContext, events: list[dict], tmp_path: Path, video: Any = None) -> dict[str, Any]:
    path = tmp_path / "trace.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return _final(list(replay_stream(ctx, str(path), video)))


def _with_path(events: list[dict], path: str) -> list[dict]:
    return [{**events[0], "video": {**events[0]["video"], "path": path}}, *events[1:]]


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every video path (resolved) the replay opens for its frames."""
    seen: list[Path] = []
    real = UploadCaps.open

    def spy(self: UploadCaps, path: Any, *args: Any, **kw: Any) -> Any:
        seen.append(Path(path).resolve())
        return real(self, path, *args, **kw)

    monkeypatch.setattr(UploadCaps, "open", spy)
    return seen


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file whose bytes are compared with the examples'."""
    seen: list[Path] = []
    real = examples_mod._sha1

    def spy(path: Path) -> str:
        seen.append(Path(path))
        return real(path)

    monkeypatch.setattr(examples_mod, "_sha1", spy)
    examples_mod._hashes.clear()  # the examples' own hashes are computed (and seen) again
    return seen


# ------------------------------------------------------------------ 1. the example's own video


def test_a_run_on_an_example_replays_on_that_example_from_gradios_copy(
    ctx: AppContext, tmp_path: Path, upload_dir: Path, opened: list[Path], hashed: list[Path]
) -> None:
    example = _example(ctx, "appears_after")
    copy = upload_dir / "5f0c2a" / "video.mp4"  # what a Run on the example records
    copy.parent.mkdir()
    shutil.copy(example.video, copy)
    out = _replay(ctx, _with_path(_bundled("appears_after"), str(copy)), tmp_path)
    assert "Done" in out["status"] and WITHOUT_VIDEO not in out["status"], out["status"]
    assert "bundled example `appears_after`" in out["status"] and "same bytes" in out["status"]
    assert opened == [example.video.resolve()]  # the example's own file, not the cache copy
    assert copy in hashed
    assert str(upload_dir) not in out["status"]
    assert out["video"] and Path(out["video"]).is_file()


@pytest.mark.parametrize("where", ["gone from gradio's cache", "recorded on another machine"])
def test_a_gone_example_copy_is_found_by_its_recorded_metadata(
    ctx: AppContext, tmp_path: Path, upload_dir: Path, opened: list[Path], where: str
) -> None:
    example = _example(ctx, "absent_first_frame")
    path = (
        str(upload_dir / "9d8e7f" / "video.mp4")
        if where.startswith("gone")
        else "/home/someone/videoseg/examples/shapes/absent_first_frame/video.mp4"
    )
    out = _replay(ctx, _with_path(_bundled("absent_first_frame"), path), tmp_path)
    assert WITHOUT_VIDEO not in out["status"], out["status"]
    assert "bundled example `absent_first_frame`" in out["status"]
    assert "frame count, size and frame rate" in out["status"], out["status"]
    assert opened == [example.video.resolve()]


def test_an_existing_file_elsewhere_is_never_opened(
    ctx: AppContext, tmp_path: Path, upload_dir: Path, opened: list[Path], hashed: list[Path]
) -> None:
    # a crafted trace naming some server file: neither shown nor read; the metadata picks the example
    elsewhere = tmp_path / "private" / "clip.mp4"
    elsewhere.parent.mkdir()
    shutil.copy(_example(ctx, "turn").video, elsewhere)
    out = _replay(ctx, _with_path(_bundled("appears_after"), str(elsewhere)), tmp_path)
    assert elsewhere.resolve() not in opened and elsewhere not in hashed
    assert opened == [_example(ctx, "appears_after").video.resolve()], out["status"]
    assert str(elsewhere) not in out["status"]


def test_another_upload_in_gradios_cache_is_not_guessed_at(
    ctx: AppContext, tmp_path: Path, upload_dir: Path, opened: list[Path]
) -> None:
    # the recorded file is there but is not an example: its metadata must not pick one
    other = upload_dir / "1a2b3c" / "video.mp4"
    other.parent.mkdir()
    other.write_bytes(_example(ctx, "appears_after").video.read_bytes() + b"\0")
    out = _replay(ctx, _with_path(_bundled("appears_after"), str(other)), tmp_path)
    assert WITHOUT_VIDEO in out["status"] and "bundled example" not in out["status"], out["status"]
    assert opened == []


def test_the_bundled_trace_names_its_example(ctx: AppContext, opened: list[Path]) -> None:
    out = _final(list(replay_stream(ctx, str(TRACES_DIR / "appears_after--0.jsonl"))))
    assert "bundled example `appears_after`" in out["status"] and WITHOUT_VIDEO not in out["status"]
    assert opened == [_example(ctx, "appears_after").video.resolve()]


def _copied_example(src: Example, directory: Path) -> Example:
    shutil.copytree(src.directory, directory)
    return Example(directory, src.expressions)


def test_match_recorded_example_table(ctx: AppContext, tmp_path: Path) -> None:
    turn = _example(ctx, "turn")
    twin = _copied_example(turn, tmp_path / "turn_twin")  # same frames, size and fps as "turn"
    meta = {"num_frames": 71, "width": 320, "height": 240, "fps": 12.0}
    cases = [
        (meta, ctx.examples, (), turn),
        ({**meta, "fps": 12.0000001}, ctx.examples, (), turn),  # the fps is written as a float
        ({**meta, "fps": 24.0}, ctx.examples, (), None),
        ({**meta, "num_frames": 72}, ctx.examples, (), None),
        ({**meta, "width": 240, "height": 320}, ctx.examples, (), None),
        ({k: v for k, v in meta.items() if k != "fps"}, ctx.examples, (), None),
        ({**meta, "num_frames": "many"}, ctx.examples, (), None),
        ({**meta, "num_frames": 102}, ctx.examples, (), _example(ctx, "appears_after")),
        (meta, [turn, twin], (), None),  # two alike: none is guessed
        (meta, [turn, twin], ("tmp", "turn_twin", "video.mp4"), twin),  # the folder's name decides
        (meta, [turn, twin], ("tmp", "gradio", "video.mp4"), None),
        (meta, [], (), None),
    ]
    for recorded, candidates, parts, expected in cases:
        assert match_recorded_example(recorded, candidates, parts) == expected, (recorded, parts)


# ------------------------------------------------------------------ 2. ground truth as in a live run


def _gt_bars(fig: Any) -> list[tuple[float, float]]:
    return [tuple(t.x) for t in fig.data if t.name == "target present (GT)"]


def _rows(fig: Any) -> list[str]:
    return list(fig.layout.yaxis.ticktext or [])


def test_replay_of_an_example_shows_the_live_runs_ground_truth(ctx: AppContext) -> None:
    example = _example(ctx, "appears_after")
    events = _bundled("appears_after")
    out = _final(list(replay_stream(ctx, str(TRACES_DIR / "appears_after--0.jsonl"))))
    fig = out["timeline"]
    assert "ground truth" in _rows(fig), _rows(fig)
    # what the Run tab gives its view for the same video and query
    gt, description = ground_truth_for(example.video, events[0]["query"], ctx.examples)
    present = gt.reshape(len(gt), -1).any(axis=1).tolist()
    assert _gt_bars(fig) == [(a - 0.5, b + 0.5) for a, b in presence_runs(present)]
    assert not all(present)  # the target appears after a while: the row is not trivially full
    assert description in out["status"]


def test_replay_with_the_example_uploaded_shows_its_ground_truth(ctx: AppContext, tmp_path: Path) -> None:
    upload = tmp_path / "upload" / "my clip.mp4"
    upload.parent.mkdir()
    shutil.copy(_example(ctx, "appears_after").video, upload)
    out = _replay(ctx, _bundled("appears_after"), tmp_path, video=str(upload))
    assert "ground truth" in _rows(out["timeline"])
    assert "bundled example `appears_after` (the given video)" in out["status"], out["status"]


@pytest.mark.parametrize(
    ("change", "row"),
    [
        ("none", True),
        ("query of another example", False),  # not one of this video's expressions
        ("no video", False),  # a replay on a blank canvas has no example, hence no ground truth
    ],
)
def test_ground_truth_row_only_for_the_examples_own_expression(
    ctx: AppContext, tmp_path: Path, change: str, row: bool
) -> None:
    events = _bundled("appears_after")
    first = dict(events[0])
    if change == "query of another example":
        first["query"] = _example(ctx, "turn").expressions[0]["text"]
    elif change == "no video":
        # gone, and no example has its frame rate
        first["video"] = {**first["video"], "path": str(tmp_path / "gone.mp4"), "fps": 13.0}
    out = _replay(ctx, [first, *events[1:]], tmp_path)
    fig = out["timeline"]
    assert fig is not None, out["status"]
    assert ("ground truth" in _rows(fig)) == row, (change, _rows(fig), out["status"])
    assert ("Ground truth on the timeline" in out["status"]) == row


# ------------------------------------------------------------------ 3. trace errors name the file only


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json at all\n", "run-7.jsonl:1: not JSON"),
        (b'{"type": "run_started", "query": "q"}\n', "run-7.jsonl:1: event 'run_started' lacks"),
        (b'{"type": "run_started", "query": "q", "vid', "run-7.jsonl:1: the last line is cut off"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "run-7.jsonl is not a trace"),
    ],
)
def test_trace_errors_name_the_file_not_the_server_folder(
    ctx: AppContext, upload_dir: Path, content: bytes, message: str
) -> None:
    bad = upload_dir / "3c4d5e6f" / "run-7.jsonl"
    bad.parent.mkdir()
    bad.write_bytes(content)
    status = next(iter(replay_stream(ctx, str(bad))))["status"]
    assert "cannot be read" in status and message in plain(status), status
    assert str(upload_dir) not in status and "3c4d5e6f" not in status, status


# ------------------------------------------------------------------ 4. Markdown statuses


def _html(markdown: str) -> str:
    return MarkdownIt("commonmark").render(markdown)


def test_no_cases_status_survives_markdown(ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    import gradio as gr

    toasts: list[str] = []
    monkeypatch.setattr(gr, "Warning", lambda message, *a, **kw: toasts.append(message))
    bare = AppContext(store=ctx.store, caps=ctx.caps, examples=[])  # nothing to rank
    values, records = inspect_run(bare, None)
    html = _html(values[0])
    assert "No expression with both ground truth and a prediction" in html and not records
    for pattern in ("*.jsonl", "pred/&lt;expression id&gt;/*.png", "expressions.json", "Annotations/"):
        assert pattern in html, html
    assert "<em>" not in html and "<expression" not in html, html
    # the toast renders its message as HTML (Gradio's toasts do): it is escaped, and reads as written
    assert toasts and "`" not in toasts[0] and "pred/&lt;expression id&gt;/*.png" in toasts[0], toasts


@pytest.mark.parametrize(
    "text",
    [
        "pred/<expression id>/*.png and *.jsonl",
        "a <b>bold</b> <script>x</script> name",
        r"C:\data\*star*.png",
        "plain d/expressions.json: expression 1",
    ],
)
def test_markdown_text_shows_text_as_written(text: str) -> None:
    import html

    rendered = _html(markdown_text(text))
    assert rendered == f"<p>{html.escape(text, quote=False)}</p>\n", rendered
