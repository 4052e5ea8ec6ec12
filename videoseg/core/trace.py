"""Record and replay a run's event stream (all three paper steps) as JSON Lines.

One event per line, each a JSON object with its ``"type"``: exactly :meth:`Event.to_dict`. Masks are
COCO RLE inside the events, so replaying a trace reproduces the masks bit for bit, and a GPU run
recorded once can be shown on a laptop. :func:`tee` records while a live consumer reads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import types
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from videoseg.core import events as ev
from videoseg.core import limits
from videoseg.core.cues import TargetCues
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


def read_trace(path: str | Path, bounds: TraceBounds | None = None) -> Iterator[Event]:
    """Events of a trace file in order. Blank lines are skipped; a bad line raises TraceError.

    A line is bad when it is not JSON, not an event object, names an unknown event type or field,
    or holds a field of the wrong JSON type (checked against the event's annotations, so a
    hand-edited or foreign file fails here with its line number rather than deep inside a consumer).
    A last line cut off mid-way (a run killed while writing) is named as such.

    A trace may come from anyone (a shared file, an upload), and its fields size what a consumer
    allocates (a frame to draw on per recorded width x height, a mask per recorded target, a loop
    per recorded frame). So before an event is handed on, every field is checked against
    ``bounds`` and :mod:`videoseg.core.limits`, and against the run it belongs to (masks of the
    recorded size, frame numbers inside the recorded video); the file's size, each line's length,
    its number of JSON values and nesting are checked before they are parsed. The error names the
    line and the field.
    """
    path = Path(path)
    bounds = bounds or TraceBounds()
    if path.is_dir():
        raise TraceError(f"{path} is a folder, not a trace file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise TraceError(f"cannot open trace {path}: {exc.strerror or exc}") from exc
    if not path.is_file():  # a FIFO or a device (/dev/zero) would be read forever
        raise TraceError(f"{path} is not a regular file, so it is not a trace")
    if size > bounds.max_bytes:
        raise TraceError(
            f"{path} is {size / 1024**2:,.1f} MB; traces of at most {bounds.max_bytes / 1024**2:,.0f} MB are read"
        )
    try:
        # utf-8-sig: a trace saved by an editor that adds a byte-order mark still reads.
        handle = path.open("r", encoding="utf-8-sig")
    except OSError as exc:
        raise TraceError(f"cannot open trace {path}: {exc.strerror or exc}") from exc
    checker = _Checker(bounds)
    with handle:
        number = 0
        events = 0
        while True:
            try:
                line = handle.readline(limits.MAX_TRACE_LINE_BYTES + 1)
            except UnicodeDecodeError as exc:
                # Decoding runs ahead in blocks, so no exact line number can be given.
                raise TraceError(
                    f"{path} is not a trace: it is not UTF-8 text (a trace is JSON Lines); "
                    "is it a video or another binary file?"
                ) from exc
            if not line:
                return
            number += 1
            if len(line) > limits.MAX_TRACE_LINE_BYTES:
                raise TraceError(
                    f"{path}:{number}: the line is longer than {limits.MAX_TRACE_LINE_BYTES:,} characters; "
                    "no event of a run is that large"
                )
            if not line.strip():
                continue
            events += 1
            if events > limits.MAX_TRACE_EVENTS:
                raise TraceError(
                    f"{path}: more than {limits.MAX_TRACE_EVENTS:,} events; no run has that many"
                )
            try:
                data = limits.parse_json(line, "the line")
            except limits.TooLarge as exc:
                raise TraceError(f"{path}:{number}: {exc}") from exc
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
            problem = _field_problem(event) or checker.check(event)
            if problem is not None:
                raise TraceError(f"{path}:{number}: event {event.type!r}: {problem}")
            yield event


def _missing_fields(data: dict[str, Any]) -> list[str]:
    kind = data.get("type")
    cls = event_types().get(kind) if isinstance(kind, str) else None
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


# --------------------------------------------------------------------------- bounds


@dataclass(frozen=True)
class TraceBounds:
    """How large a run a trace may describe and how much of it is read (:mod:`videoseg.core.limits`;
    the explorer tightens the video bounds to its upload caps)."""

    max_bytes: int = limits.MAX_TRACE_BYTES
    max_side: int = limits.MAX_SIDE
    max_pixels: int = limits.MAX_PIXELS
    max_frames: int = limits.MAX_FRAMES


@dataclass
class _Run:
    """What the trace's run_started said about the video: the events after it must fit it."""

    width: int | None = None
    height: int | None = None
    frames: int | None = None


_RLE_CHARS = re.compile(r"[0-o]*")  # pycocotools' compressed counts: characters 48..111
_DIRECTIONS = ("keyframe", "forward", "backward")


class _Checker:
    """Bounds of one trace's events, in order (see :func:`read_trace`); ``check`` gives the first
    problem of an event, naming its field, or None."""

    def __init__(self, bounds: TraceBounds) -> None:
        self.bounds = bounds
        self.run = _Run()
        self.tokens = 0

    # -- field rules: each returns a problem or None

    def _int(self, name: str, value: Any, lo: int, hi: int) -> str | None:
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            return f"field {name!r} must be a whole number from {lo:,} to {hi:,}, got {_shown(value)}"
        return None

    def _num(
        self, name: str, value: Any, lo: float = -limits.MAX_ABS_NUMBER, hi: float = limits.MAX_ABS_NUMBER
    ) -> str | None:
        if not limits.finite(value, lo, hi):
            return f"field {name!r} must be a number from {lo:g} to {hi:g}, got {_shown(value)}"
        return None

    def _text(self, name: str, value: Any, most: int = limits.MAX_NAME_CHARS) -> str | None:
        if isinstance(value, str) and len(value) > most:
            return f"field {name!r} is {len(value):,} characters long; at most {most:,} are allowed"
        return None

    def _frames(self) -> int:
        return self.run.frames or self.bounds.max_frames

    def _frame(self, name: str, value: Any) -> str | None:
        return self._int(name, value, 0, self._frames() - 1)

    def _frame_list(self, name: str, values: Any, most: int = limits.MAX_SHOWN_FRAMES) -> str | None:
        if len(values) > most:
            return f"field {name!r} lists {len(values):,} frames; at most {most:,} are allowed"
        return next((p for i, v in enumerate(values) if (p := self._frame(f"{name}[{i}]", v))), None)

    def _span(self, name: str, value: Any) -> str | None:
        if len(value) != 2:
            return f"field {name!r} must be [start, end], got {_shown(value)}"
        return self._frame(f"{name}[0]", value[0]) or self._frame(f"{name}[1]", value[1])

    def _rle(self, name: str, rle: Any) -> str | None:
        """A COCO RLE of one mask: its size within the bounds and the run's own, its counts a
        compressed string (pycocotools checks that they add up to the size when decoding)."""
        if not isinstance(rle, dict) or set(rle) != {"size", "counts"}:
            return f'field {name!r} must be a mask {{"size": [H, W], "counts": "..."}}, got {_shown(rle)}'
        size, counts = rle["size"], rle["counts"]
        if not isinstance(size, list) or len(size) != 2:
            return f"field '{name}.size' must be [height, width], got {_shown(size)}"
        problem = self._int(f"{name}.size[0]", size[0], 1, self.bounds.max_side) or self._int(
            f"{name}.size[1]", size[1], 1, self.bounds.max_side
        )
        if problem:
            return problem
        if size[0] * size[1] > self.bounds.max_pixels:
            return f"field '{name}.size' is {size[1]}x{size[0]}; at most {self.bounds.max_pixels:,} pixels are allowed"
        run = self.run
        if run.height is not None and run.width is not None and size != [run.height, run.width]:
            return (
                f"field '{name}.size' is {size[1]}x{size[0]} (width x height), "
                f"but the run's video is {run.width}x{run.height}"
            )
        if not isinstance(counts, str) or not _RLE_CHARS.fullmatch(counts):
            return f"field '{name}.counts' must be a compressed COCO RLE string, got {_shown(counts)}"
        if len(counts) > 2 * size[0] * size[1] + 16:  # two characters per run cover every pixel
            return f"field '{name}.counts' is longer than a mask of this size can need"
        return None

    def _cues(self, name: str, value: Any) -> str | None:
        if not isinstance(value, dict):
            return f"field {name!r} must be cues {{box, point, negatives}}, got {_shown(value)}"
        try:
            cues = TargetCues.from_dict(value)
        except (TypeError, ValueError, KeyError, IndexError, OverflowError) as exc:
            return f"field {name!r}: {exc}"
        if not 1 <= cues.obj_id <= limits.MAX_TARGETS:
            return f"field '{name}.obj_id' must be 1 to {limits.MAX_TARGETS}, got {_shown(cues.obj_id)}"
        if len(cues.negatives) > limits.MAX_NEGATIVES:
            return f"field '{name}.negatives' has {len(cues.negatives)} points; at most {limits.MAX_NEGATIVES} are allowed"
        numbers = [*(cues.box or []), *(cues.point or []), *(v for p in cues.negatives for v in p)]
        if any(abs(v) > limits.MAX_ABS_COORD for v in numbers):
            return f"field {name!r} has a coordinate beyond ±{limits.MAX_ABS_COORD:g} pixels"
        return None

    # -- per event type

    def check(self, e: Event) -> str | None:
        common = next(
            (
                p
                for f in dataclasses.fields(e)
                if (p := self._text(f.name, getattr(e, f.name), limits.MAX_TEXT_CHARS))
            ),
            None,
        )
        if common:
            return common
        rule = getattr(self, f"_on_{e.type}", None)
        return rule(e) if rule is not None else None

    def _on_run_started(self, e: ev.RunStarted) -> str | None:
        b, v = self.bounds, e.video
        self.run = _Run()
        problem = (
            self._text("preset", e.preset)
            or self._text("device", e.device)
            or self._text("version", e.version)
            or self._text("video.path", v.get("path"), 4096)
        )
        if problem:
            return problem
        if v.get("path") is not None and not isinstance(v["path"], str):
            return f"field 'video.path' must be text, got {_shown(v['path'])}"
        for key, hi in (("width", b.max_side), ("height", b.max_side), ("num_frames", b.max_frames)):
            if key in v and v[key] is not None:
                lo = 0 if key == "num_frames" else 1
                if p := self._int(f"video.{key}", v[key], lo, hi):
                    return p
        for key, hi in (("fps", limits.MAX_FPS), ("duration", limits.MAX_DURATION_S)):
            if v.get(key) is not None and (p := self._num(f"video.{key}", v[key], 0.0, hi)):
                return p
        width, height = v.get("width"), v.get("height")
        if width and height and width * height > b.max_pixels:
            return (
                f"field 'video' is {width}x{height}; at most {b.max_pixels:,} pixels a frame are allowed "
                f"(e.g. {b.max_side}x{b.max_pixels // b.max_side})"
            )
        self.run = _Run(width or None, height or None, v.get("num_frames") or None)
        return None

    def _on_backend(self, e: ev.BackendInfo) -> str | None:
        return (
            self._text("for_stage", e.for_stage)
            or self._text("name", e.name)
            or self._text("model_id", e.model_id)
        )

    def _on_prompt(self, e: ev.PromptShown) -> str | None:
        return (
            self._text("for_stage", e.for_stage)
            or self._text("purpose", e.purpose)
            or self._frame_list("frame_indices", e.frame_indices)
        )

    def _on_frames_decoded(self, e: ev.FramesDecoded) -> str | None:
        return (
            self._text("purpose", e.purpose)
            or self._frame_list("frame_indices", e.frame_indices, self._frames())
            or self._int("total_decoded", e.total_decoded, 0, self._frames())
        )

    def _on_stage_timing(self, e: ev.StageTiming) -> str | None:
        return self._text("for_stage", e.for_stage) or self._num("seconds", e.seconds, 0.0)

    def _on_error(self, e: ev.RunError) -> str | None:
        return self._text("for_stage", e.for_stage)

    _on_warning = _on_error

    def _on_run_finished(self, e: ev.RunFinished) -> str | None:
        return (
            self._int("num_frames", e.num_frames, 0, self._frames())
            or self._int("num_targets", e.num_targets, 0, limits.MAX_TARGETS)
            or self._num("seconds", e.seconds, 0.0)
            or next(
                (
                    p
                    for k, s in e.timings.items()
                    if (p := self._text("timings", k) or self._num(f"timings.{k}", s, 0.0))
                ),
                None,
            )
        )

    def _on_sampler_level(self, e: ev.SamplerLevel) -> str | None:
        if len(e.raw_answers) > limits.MAX_ANSWERS or len(e.intervals) > limits.MAX_ANSWERS:
            return f"fields 'raw_answers' / 'intervals' hold more than {limits.MAX_ANSWERS} answers"
        return (
            self._int("level", e.level, 0, limits.MAX_LEVELS)
            or self._span("window", e.window)
            or self._frame_list("frame_indices", e.frame_indices)
            or next(
                (
                    p
                    for i, s in enumerate(e.intervals)
                    if s is not None and (p := self._span(f"intervals[{i}]", s))
                ),
                None,
            )
            or self._span("mean_interval", e.mean_interval)
        )

    def _on_sampler_percent(self, e: ev.SamplerPercent) -> str | None:
        if len(e.raw_answers) > limits.MAX_ANSWERS or len(e.percents) > limits.MAX_ANSWERS:
            return f"fields 'raw_answers' / 'percents' hold more than {limits.MAX_ANSWERS} answers"
        return (
            self._span("key_segment", e.key_segment)
            or self._frame_list("frame_indices", e.frame_indices)
            or next(
                (
                    p
                    for i, x in enumerate(e.percents)
                    if x is not None and (p := self._num(f"percents[{i}]", x, 0.0, 1.0))
                ),
                None,
            )
            or self._num("mean_percent", e.mean_percent, 0.0, 1.0)
            or self._frame("target_frame", e.target_frame)
        )

    def _on_sampler_result(self, e: ev.SamplerResult) -> str | None:
        return (
            self._text("strategy", e.strategy)
            or self._span("key_segment", e.key_segment)
            or self._frame("target_frame", e.target_frame)
            or self._frame_list("key_frames", e.key_frames)
            or self._frame_list("reference_frames", e.reference_frames)
        )

    def _on_difficulty(self, e: ev.DifficultyRated) -> str | None:
        if len(e.scores) > limits.MAX_ANSWERS:
            return f"field 'scores' holds more than {limits.MAX_ANSWERS} scores"
        return (
            next(
                (
                    p
                    for k, s in e.scores.items()
                    if (p := self._text("scores", k) or self._num(f"scores.{k}", s))
                ),
                None,
            )
            or self._num("difficulty", e.difficulty)
            or self._text("level", e.level)
            or (None if e.budget is None else self._int("budget", e.budget, 0, limits.MAX_TOKENS))
        )

    def _on_reasoning_token(self, e: ev.ReasoningToken) -> str | None:
        self.tokens += 1
        if self.tokens > limits.MAX_TOKENS:
            return f"more than {limits.MAX_TOKENS:,} reasoning tokens"
        return self._int("index", e.index, 0, limits.MAX_TOKENS)

    def _on_reasoning_done(self, e: ev.ReasoningDone) -> str | None:
        return self._int("num_tokens", e.num_tokens, 0, limits.MAX_TOKENS) or self._int(
            "think_tokens", e.think_tokens, 0, limits.MAX_TOKENS
        )

    def _on_cues_parsed(self, e: ev.CuesParsed) -> str | None:
        if len(e.targets) > limits.MAX_TARGETS:
            return f"field 'targets' lists {len(e.targets)} targets; at most {limits.MAX_TARGETS} are allowed"
        if len(e.used) > 3 or any(u not in ("box", "point", "negative") for u in e.used):
            return f"field 'used' must list cue kinds from box, point, negative; got {_shown(e.used)}"
        return self._frame("frame_idx", e.frame_idx) or next(
            (p for i, t in enumerate(e.targets) if (p := self._cues(f"targets[{i}]", t))), None
        )

    def _on_keyframe_mask(self, e: ev.KeyframeMask) -> str | None:
        return (
            self._frame("frame_idx", e.frame_idx)
            or self._int("target", e.target, 0, limits.MAX_TARGETS - 1)
            or self._rle("rle", e.rle)
            or self._num("score", e.score)
            or (self._cues("cues", e.cues) if e.cues else None)
            or self._int("area", e.area, 0, self.bounds.max_pixels)
        )

    def _on_propagation_started(self, e: ev.PropagationStarted) -> str | None:
        return (
            self._frame("keyframe", e.keyframe)
            or self._int("num_frames", e.num_frames, 0, self._frames())
            or self._int("num_targets", e.num_targets, 0, limits.MAX_TARGETS)
        )

    def _on_propagated_mask(self, e: ev.PropagatedMask) -> str | None:
        if e.direction not in _DIRECTIONS:
            return f"field 'direction' must be one of {', '.join(_DIRECTIONS)}, got {_shown(e.direction)}"
        if len(e.rles) > limits.MAX_TARGETS:
            return f"field 'rles' holds {len(e.rles)} masks; at most {limits.MAX_TARGETS} targets are allowed"
        return (
            self._frame("frame_idx", e.frame_idx)
            or next((p for i, r in enumerate(e.rles) if (p := self._rle(f"rles[{i}]", r))), None)
            or self._int("done", e.done, 0, self._frames())
            or self._int("total", e.total, 0, self._frames())
        )


def _shown(value: Any) -> str:
    shown = json.dumps(value, ensure_ascii=False, default=repr)
    return shown if len(shown) <= 60 else shown[:57] + "..."


__all__ = ["TraceBounds", "TraceError", "TraceWriter", "read_trace", "tee", "write_trace"]
