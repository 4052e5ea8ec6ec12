"""Reading the free-text answers of the HTFS questions (paper step 1) and the difficulty rating.

Every VideoQA backend (Qwen2.5-VL, the shapes-world model, manual cues) answers in prose; this one
module turns that prose into numbers, so the weights-free path exercises the parsing the VLM path uses.

- :func:`parse_interval`: the first two times in the text are start and end in *seconds from the
  window start*; they become frame indices inside the window (clipped, swapped when reversed).
- :func:`parse_percentage`: the first number is the target's position in the key segment, as a
  percent (``"40%"``, ``"40 percent"``, ``"40"``), a fraction (``"2/5"``) or a decimal ratio
  (``"0.4"``); returned as a ratio in [0, 1].
- :func:`parse_difficulty`: the five 1..10 scores (scene, segmentation, temporal, motion,
  linguistic), from a JSON dict with those keys, ``key: value`` prose, or the first five numbers.

Each returns ``None`` when the text holds no usable answer; they never raise on model output. An answer
of another form than the one asked (:func:`form_problem`: a box / point list, the answer of a grounding
checkpoint asked a "when" question) is no answer: its pixel numbers are never read as seconds or scores.
Times may be written ``2.4``, ``2.4s``, ``2.4 sec``, ``2400 ms``, ``0.5 min`` or ``00:02.4`` /
``1:02:03``. When the text has an ``<answer>...</answer>`` block only that block is read, so a model's
reasoning numbers do not count as the answer.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

DIFFICULTY_AXES = ("scene", "segmentation", "temporal", "motion", "linguistic")

# One time value: hh:mm:ss(.f) / mm:ss(.f), or a plain decimal with an optional unit.
_TIME_RE = re.compile(
    r"(?P<clock>\d+(?::\d{1,2}){1,2}(?:\.\d+)?)"
    r"|(?P<num>\d+(?:\.\d+)?|\.\d+)\s*(?P<unit>milliseconds?|msecs?|ms|minutes?|mins?|seconds?|secs?|s)?(?![a-z])"
    r"|(?P<num2>\d+(?:\.\d+)?|\.\d+)",
    re.I,
)
_NUMBER_RE = re.compile(r"(?P<num>\d+(?:\.\d+)?|\.\d+)(?:\s*/\s*(?P<den>\d+(?:\.\d+)?))?", re.I)
_ANSWER_BLOCK_RE = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.S | re.I)


def _answer_part(text: str) -> str:
    """The ``<answer>`` block when there is a non-empty one, else the whole text."""
    m = _ANSWER_BLOCK_RE.search(text)
    if m and m.group(1).strip():
        return m.group(1)
    return text


def _is_negative(text: str, pos: int) -> bool:
    """A '-' right before ``pos`` is a sign unless the previous non-space char is a digit (a range)."""
    if pos == 0 or text[pos - 1] != "-":
        return False
    # "2.4s-5s" and "2.4 - 5" are ranges: look past spaces and a unit for the previous number.
    before = re.sub(r"(?:ms|s|sec|secs|seconds?|min|mins|minutes?)?\s*$", "", text[: pos - 1], flags=re.I)
    return not (before and (before[-1].isdigit() or before[-1] == "."))


def _times(text: str) -> list[float]:
    """All time values in ``text`` in seconds, in order of appearance."""
    out: list[float] = []
    for m in _TIME_RE.finditer(text):
        if m.group("clock"):
            parts = [float(p) for p in m.group("clock").split(":")]
            seconds = 0.0
            for p in parts:
                seconds = seconds * 60.0 + p
        else:
            num = m.group("num") or m.group("num2")
            seconds = float(num)
            unit = (m.group("unit") or "").lower()
            if unit.startswith(("ms", "msec", "millisecond")):
                seconds /= 1000.0
            elif unit.startswith("min"):
                seconds *= 60.0
        if _is_negative(text, m.start()):
            seconds = -seconds
        if math.isfinite(seconds):
            out.append(seconds)
    return out


# Answers of another form than the one asked: a grounding checkpoint asked "when?" writes a box list
# (``[{"bbox_2d": [24, 84, 300, 400]}]``), a Seg-Zero-style ``<box>(..)</box>``, or point pairs; their
# first numbers are pixels, not seconds or percents, so such a text is unreadable, never read as numbers.
_GROUNDING_RE = re.compile(
    r"bbox|point_?2d|points?_\d|[\"'](?:box|points?|label)[\"']\s*:|<box>|<points?>|<ref>",
    re.I,
)
_COORD_LIST_RE = re.compile(r"\[\s*-?\d+(?:\.\d+)?(?:\s*,\s*-?\d+(?:\.\d+)?){3}\s*\]")


def form_problem(text: Any, kind: str) -> str | None:
    """Why ``text`` is not an answer of the asked ``kind`` ("interval" | "percentage" | "difficulty"),
    or None when it may be one. Only the form is judged here; the parsers judge the numbers."""
    if not isinstance(text, str):
        return f"the answer is {type(text).__name__}, not text"
    part = _answer_part(text)
    if _GROUNDING_RE.search(part) or _COORD_LIST_RE.search(part):
        asked = {"interval": "a time interval", "percentage": "a percentage", "difficulty": "five scores"}
        return f"it is a box / point list (a grounding answer), not {asked.get(kind, kind)}"
    return None


def parse_interval(text: Any, window: tuple[int, int] | list[int], fps: float) -> tuple[int, int] | None:
    """Answer text -> ``(start, end)`` frame indices inside ``window`` (inclusive), or None.

    The first two times are seconds from ``window[0]``; a frame index is ``window[0] + round(t * fps)``.
    Reversed intervals are swapped; both ends are clipped to the window. Fewer than two numbers, or a
    non-positive fps, gives None.
    """
    if not isinstance(text, str) or fps <= 0 or form_problem(text, "interval") is not None:
        return None
    times = _times(_answer_part(text))
    if len(times) < 2:
        return None
    lo, hi = int(window[0]), int(window[1])
    a, b = sorted(times[:2])
    start = min(max(lo + round(a * fps), lo), hi)
    end = min(max(lo + round(b * fps), lo), hi)
    return start, end


def parse_percentage(text: Any) -> float | None:
    """Answer text -> the target position as a ratio in [0, 1], or None.

    ``"40%"``, ``"40 percent"``, ``"40"`` -> 0.4; ``"2/5"`` -> 0.4; ``"0.4"`` (a decimal at most 1) -> 0.4.
    A bare integer is a percent (``"1"`` -> 0.01), as the prompt asks for 0..100. Values outside
    [0, 100] %, or negative, are not answers (None).
    """
    if not isinstance(text, str) or form_problem(text, "percentage") is not None:
        return None
    part = _answer_part(text)
    m = _NUMBER_RE.search(part)
    if not m:
        return None
    if _is_negative(part, m.start()):
        return None
    num = float(m.group("num"))
    rest = part[m.end() :].lstrip().lower()
    if m.group("den") is not None:
        den = float(m.group("den"))
        if den == 0:
            return None
        ratio = num / den
        if rest.startswith(("%", "percent")):
            ratio /= 100.0
    elif rest.startswith(("%", "percent", "per cent", "pct")):
        ratio = num / 100.0
    elif "." in m.group("num") and num <= 1.0:
        ratio = num
    else:
        ratio = num / 100.0
    if not 0.0 <= ratio <= 1.0:
        return None
    return ratio


# Scale phrases that would otherwise be read as scores ("on a 1-10 scale", "7 out of 10", "7/10").
_SCALE_RE = re.compile(r"\b1\s*(?:-|–|to|\.\.)\s*10\b|\bout\s+of\s+10\b|/\s*10\b|\bscale\s+of\s+10\b", re.I)
_AXIS_ALIASES = {
    "scene": ("scene",),
    "segmentation": ("segmentation", "segment"),
    "temporal": ("temporal", "time"),
    "motion": ("motion", "movement"),
    "linguistic": ("linguistic", "language", "lingu"),
}


def _axis_of(key: str) -> str | None:
    k = key.lower()
    for axis, names in _AXIS_ALIASES.items():
        if any(n in k for n in names):
            return axis
    return None


def _from_json(part: str) -> dict[str, float] | None:
    start, end = part.find("{"), part.rfind("}")
    if start < 0 or end <= start:
        return None
    blob = part[start : end + 1]
    try:
        data = json.loads(blob)
    except ValueError:
        try:
            data = json.loads(blob.replace("'", '"'))
        except ValueError:
            return None
    if not isinstance(data, dict):
        return None
    out: dict[str, float] = {}
    for key, value in data.items():
        axis = _axis_of(str(key))
        if axis is None or axis in out:
            continue
        if isinstance(value, dict):  # {"scene": {"score": 4, "why": "..."}}
            value = value.get("score", value.get("value"))
        try:
            f = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out[axis] = f
    return out if len(out) == len(DIFFICULTY_AXES) else None


def _from_keyed_prose(part: str) -> dict[str, float] | None:
    out: dict[str, float] = {}
    pattern = re.compile(r"([A-Za-z_ ]{3,40}?)\s*\**\s*[:=\-]\s*\**\s*(\d+(?:\.\d+)?)")
    for m in pattern.finditer(part):
        axis = _axis_of(m.group(1))
        if axis is not None and axis not in out:
            out[axis] = float(m.group(2))
    return out if len(out) == len(DIFFICULTY_AXES) else None


def parse_difficulty(text: Any) -> dict[str, float] | None:
    """Answer text -> ``{"scene", "segmentation", "temporal", "motion", "linguistic"}`` scores, or None.

    Tried in order: a JSON (or single-quoted) dict whose keys name the axes; ``axis: score`` prose;
    the first five numbers (after removing scale phrases like "1-10" or "out of 10"), in axis order.
    Scores are returned as written; :mod:`videoseg.reasoning.difficulty` clamps them to 1..10.
    """
    if not isinstance(text, str) or form_problem(text, "difficulty") is not None:
        return None
    part = _answer_part(text)
    for attempt in (_from_json, _from_keyed_prose):
        found = attempt(part)
        if found is not None:
            return {axis: found[axis] for axis in DIFFICULTY_AXES}
    numbers = [float(m.group("num")) for m in _NUMBER_RE.finditer(_SCALE_RE.sub(" ", part))]
    if len(numbers) < len(DIFFICULTY_AXES):
        return None
    return dict(zip(DIFFICULTY_AXES, numbers[: len(DIFFICULTY_AXES)]))


__all__ = ["DIFFICULTY_AXES", "form_problem", "parse_difficulty", "parse_interval", "parse_percentage"]
