"""Record and replay a run's event stream (all three paper steps) as JSON Lines.

One event per line, each a JSON object with its ``"type"``: exactly :meth:`Event.to_dict`. Masks are
COCO RLE inside the events, so replaying a trace reproduces the masks bit for bit, and a GPU run
recorded once can be shown on a laptop. :func:`tee` records while a live consumer reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO

from videoseg.events import Event, event_from_dict


class TraceError(ValueError):
    """A trace file cannot be read; the message names the line."""


class TraceWriter:
    """Append events to a JSON Lines file; use as a context manager (the file is flushed per event)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.count = 0
        self._file: IO[str] | None = None

    def __enter__(self) -> TraceWriter:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def open(self) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("w", encoding="utf-8")

    def write(self, event: Event) -> None:
        self.open()
        assert self._file is not None
        self._file.write(json.dumps(event.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n")
        # A trace of a crashed or cancelled run must still hold every event emitted before it.
        self._file.flush()
        self.count += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def write_trace(path: str | Path, events: Iterable[Event]) -> int:
    """Write all events to ``path``; returns how many were written."""
    with TraceWriter(path) as writer:
        for event in events:
            writer.write(event)
        return writer.count


def tee(events: Iterable[Event], path: str | Path) -> Iterator[Event]:
    """Pass events through while writing them to ``path``."""
    with TraceWriter(path) as writer:
        for event in events:
            writer.write(event)
            yield event


def read_trace(path: str | Path) -> Iterator[Event]:
    """Events of a trace file in order. Blank lines are skipped; a bad line raises TraceError."""
    path = Path(path)
    try:
        handle = path.open("r", encoding="utf-8")
    except OSError as exc:
        raise TraceError(f"cannot open trace {path}: {exc.strerror or exc}") from exc
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TraceError(f"{path}:{number}: not JSON ({exc.msg})") from exc
            if not isinstance(data, dict):
                raise TraceError(f"{path}:{number}: expected an event object, got {type(data).__name__}")
            try:
                yield event_from_dict(data)
            except (TypeError, ValueError) as exc:
                raise TraceError(f"{path}:{number}: {exc}") from exc


__all__ = ["TraceError", "TraceWriter", "read_trace", "tee", "write_trace"]
