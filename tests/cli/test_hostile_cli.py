"""Hostile files given to ``python -m videoseg`` (the command line's part of the hostile-input suite;
the explorer's is tests/ui/test_hostile.py): crafted traces for ``replay``, files that are not
videos for ``run``, and odd paths for ``eval``. Each ends in a one-line error with exit code 2 (or
the command's own refusal), before anything sized by the file is allocated, and an earlier output
folder is left as it was.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from videoseg.cli.main import main
from videoseg.ui.examples import TRACES_DIR


@pytest.fixture(scope="module")
def trace_lines() -> list[dict[str, Any]]:
    traces = sorted(TRACES_DIR.glob("*.jsonl"))
    assert traces, "no bundled trace under examples/traces"
    return [json.loads(line) for line in traces[0].read_text().splitlines() if line.strip()]


def _crafted(lines: list[dict[str, Any]], event_type: str, change: Callable[[dict[str, Any]], None]) -> str:
    out, done = [], False
    for data in lines:
        data = json.loads(json.dumps(data))
        if data["type"] == event_type and not done:
            change(data)
            done = True
        out.append(json.dumps(data))
    return "\n".join(out) + "\n"


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and "Traceback" not in err, err
    return lines[-1]


REPLAY_CASES: dict[str, tuple[Callable[[list[dict[str, Any]]], str], str]] = {
    "30000x30000 video": (
        lambda lines: _crafted(lines, "run_started", lambda d: d["video"].update(width=30000, height=30000)),
        "field 'video.width' must be a whole number from 1 to 4,096, got 30000",
    ),
    "a billion frames": (
        lambda lines: _crafted(lines, "run_started", lambda d: d["video"].update(num_frames=10**9)),
        "field 'video.num_frames' must be a whole number from 0 to 100,000",
    ),
    "a 100000x100000 mask": (
        lambda lines: _crafted(
            lines, "propagated_mask", lambda d: d["rles"][0].update(size=[100_000, 100_000], counts="0")
        ),
        "field 'rles[0].size[0]' must be a whole number from 1 to 4,096",
    ),
    "a billion targets": (
        lambda lines: _crafted(lines, "propagation_started", lambda d: d.update(num_targets=10**9)),
        "field 'num_targets' must be a whole number from 0 to 32",
    ),
    "Infinity": (
        lambda lines: _crafted(lines, "run_finished", lambda d: d.update(seconds=1.5)).replace(
            '"seconds": 1.5', '"seconds": Infinity'
        ),
        "Infinity is not a number JSON allows",
    ),
    "1000-deep nesting": (
        lambda lines: _crafted(lines, "run_started", lambda d: d["config"].update(x=0)).replace(
            '"x": 0', '"x": ' + "[" * 1000 + "]" * 1000
        ),
        "nested",
    ),
}


@pytest.mark.parametrize("case", list(REPLAY_CASES))
def test_replay_refuses_a_crafted_trace_before_writing(
    trace_lines: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    make, fragment = REPLAY_CASES[case]
    path = tmp_path / "crafted.jsonl"
    path.write_text(make(trace_lines))
    out = tmp_path / "out"
    assert main(["replay", str(path), "--out", str(out)]) == 2
    message = _one_line_error(capsys.readouterr().err)
    assert fragment in message and "crafted.jsonl:" in message, message
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda tmp: Path("/dev/zero"), "is not a regular file"),
        (lambda tmp: tmp, "is a folder, not a trace file"),
        (
            lambda tmp: (tmp / "v.jsonl", (tmp / "v.jsonl").write_bytes(bytes(range(256)) * 64))[0],
            "not UTF-8",
        ),
    ],
)
def test_replay_refuses_files_that_are_no_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Any, fragment: str
) -> None:
    assert main(["replay", str(make(tmp_path))]) == 2
    assert fragment in _one_line_error(capsys.readouterr().err)


@pytest.mark.parametrize(
    "make",
    [
        lambda tmp: Path("/dev/zero"),
        lambda tmp: (tmp / "empty.mp4", (tmp / "empty.mp4").write_bytes(b""))[0],
        lambda tmp: (tmp / "t.mp4", (tmp / "t.mp4").write_text('{"type": "run_started"}\n'))[0],
        lambda tmp: tmp,
    ],
    ids=["/dev/zero", "an empty file", "a trace named .mp4", "a folder"],
)
def test_run_refuses_files_that_are_no_video(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Any
) -> None:
    code = main(["run", str(make(tmp_path)), "the red square", "--out", str(tmp_path / "o"), "--quiet"])
    assert code != 0
    _one_line_error(capsys.readouterr().err)


def test_a_crafted_trace_through_the_real_command_line(
    trace_lines: list[dict[str, Any]], tmp_path: Path
) -> None:
    """``python -m videoseg replay`` in its own process: exit 2, one line, in well under the time
    (and memory) a 30000x30000 canvas would take."""
    path = tmp_path / "big.jsonl"
    path.write_text(
        _crafted(trace_lines, "run_started", lambda d: d["video"].update(width=30000, height=30000))
    )
    done = subprocess.run(
        [sys.executable, "-m", "videoseg", "replay", str(path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 2, done.stderr
    assert "field 'video.width'" in _one_line_error(done.stderr)
