"""Record and replay a run's event stream (all three paper steps) as JSON Lines.

One event per line, each a JSON object with its ``"type"``: exactly :meth:`Event.to_dict`. Masks are
COCO RLE inside the events, so replaying a trace reproduces the masks bit for bit, and a GPU run
recorded once can be shown on a laptop. :func:`tee` records while a live consumer reads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import types
import typing
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from videoseg.core.events import Event, event_from_dict, event_types


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
        if exc_type is None:
            self.close()
        else:  # the write error in flight says it; a second one from closing would bury it
            with contextlib.suppress(TraceError):
                self.close()

    def open(self) -> None:
        if self._file is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("w", encoding="utf-8")
            except OSError as exc:
                raise TraceError(f"cannot write trace {self.path}: {exc.strerror or exc}") from exc

    def write(self, event: Event) -> None:
        self.open()
        assert self._file is not None
        data = event.to_dict()
        line = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:
            # A file name with bytes that are not UTF-8 reaches Python as lone surrogates, which UTF-8
            # cannot hold; ASCII JSON writes them as \udcXX escapes that read back to the same text.
            line = json.dumps(data, ensure_ascii=True, separators=(",", ":"))
        try:
            self._file.write(line + "\n")
            # A trace of a crashed or cancelled run must still hold every event emitted before it.
            self._file.flush()
        except OSError as exc:  # a full disk, a removed drive
            raise TraceError(f"cannot write trace {self.path}: {exc.strerror or exc}") from exc
        self.count += 1

    def close(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            try:
                file.close()  # flushes what is buffered
            except OSError as exc:
                raise TraceError(f"cannot write trace {self.path}: {exc.strerror or exc}") from exc


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
    """Events of a trace file in order. Blank lines are skipped; a bad line raises TraceError.

    A line is bad when it is not JSON, not an event object, names an unknown event type or field,
    or holds a field of the wrong JSON type (checked against the event's annotations, so a
    hand-edited or foreign file fails here with its line number rather than deep inside a consumer).
    A last line cut off mid-way (a run killed while writing) is named as such.
    """
    path = Path(path)
    if path.is_dir():
        raise TraceError(f"{path} is a folder, not a trace file")
    try:
        # utf-8-sig: a trace saved by an editor that adds a byte-order mark still reads.
        handle = path.open("r", encoding="utf-8-sig")
    except OSError as exc:
        raise TraceError(f"cannot open trace {path}: {exc.strerror or exc}") from exc
    with handle:
        number = 0
        while True:
            try:
                line = handle.readline()
            except UnicodeDecodeError as exc:
                # Decoding runs ahead in blocks, so no exact line number can be given.
                raise TraceError(
                    f"{path} is not a trace: it is not UTF-8 text (a trace is JSON Lines); "
                    "is it a video or another binary file?"
                ) from exc
            if not line:
                return
            number += 1
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                if not line.endswith("\n"):  # only the last line can lack its newline
                    raise TraceError(
                        f"{path}:{number}: the last line is cut off ({exc.msg}); the trace is truncated, "
                        "probably written by a run that was killed"
                    ) from exc
                raise TraceError(f"{path}:{number}: not JSON ({exc.msg})") from exc
            if not isinstance(data, dict):
                raise TraceError(f"{path}:{number}: expected an event object, got {type(data).__name__}")
            missing = _missing_fields(data)
            if missing:
                raise TraceError(
                    f"{path}:{number}: event {data['type']!r} lacks the field(s) {', '.join(missing)}"
                )
            try:
                event = event_from_dict(data)
            except (TypeError, ValueError) as exc:
                raise TraceError(f"{path}:{number}: {exc}") from exc
            problem = _field_problem(event)
            if problem is not None:
                raise TraceError(f"{path}:{number}: event {event.type!r}: {problem}")
            yield event


def _missing_fields(data: dict[str, Any]) -> list[str]:
    cls = event_types().get(data.get("type"))  # type: ignore[arg-type]
    if cls is None:
        return []  # event_from_dict names the unknown type
    return [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in data
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
    ]


@cache
def _field_types(cls: type[Event]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _field_problem(event: Event) -> str | None:
    """Name the first field whose value does not have its annotated JSON type (None when all do)."""
    for name, annotation in _field_types(type(event)).items():
        value = getattr(event, name)
        if not _conforms(value, annotation):
            shown = json.dumps(value, ensure_ascii=False, default=repr)
            if len(shown) > 60:
                shown = shown[:57] + "..."
            return f"field {name!r} should be {_type_name(annotation)}, got {shown}"
    return None


def _conforms(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return True
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:  # JSON writes 2.0 as 2.0 but a hand-edited file may say 2
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if origin is list or annotation is list:
        return isinstance(value, list) and (not args or all(_conforms(v, args[0]) for v in value))
    if origin is dict or annotation is dict:
        return isinstance(value, dict) and (
            not args or all(_conforms(k, args[0]) and _conforms(v, args[1]) for k, v in value.items())
        )
    return True  # an annotation this checker does not know: accept rather than refuse a good trace


def _type_name(annotation: Any) -> str:
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return {"str": "text", "int": "an integer", "float": "a number", "bool": "true/false"}.get(
            annotation.__name__, annotation.__name__
        )
    return str(annotation).replace("typing.", "")


__all__ = ["TraceError", "TraceWriter", "read_trace", "tee", "write_trace"]
