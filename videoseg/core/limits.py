"""Bounds on everything that comes from outside (trace files, archives, typed cues, API arguments).

One place for the numbers, so that "how much can a visitor make the server allocate" has one
answer. Each reader checks its input against these bounds *before* it allocates anything sized by
that input, and refuses with a message naming the field (:mod:`videoseg.core.trace` for traces and
the masks inside them, :mod:`videoseg.ui.session` for archives, the Interactive tab for typed cues).
The upload caps of the explorer (:class:`videoseg.ui.session.UploadCaps`) tighten some of them per
server; none is loosened by them.

The budget they give, per request:
- a trace: at most ``MAX_TRACE_BYTES`` read (the explorer: its ``max_zip_mb``), one line at most
  ``MAX_TRACE_LINE_BYTES`` and ``MAX_JSON_VALUES`` JSON values, ``MAX_TRACE_EVENTS`` events; every
  mask in it at most ``MAX_PIXELS`` pixels (a decoded mask is ``MAX_PIXELS`` bytes, a frame to draw
  on 3x that: 28 MiB at 4096x2304);
- an archive: at most ``MAX_ZIP_ENTRIES`` entries, names of at most ``MAX_ZIP_NAME_BYTES`` bytes, the
  *actual* bytes written (not the sizes the archive claims) within the caller's cap, and its PNG
  masks, by their headers, at most ``MAX_SIDE`` a side and ``MAX_ARCHIVE_PIXELS`` in all;
- typed cues: at most ``MAX_CUES_CHARS`` characters, ``MAX_TARGETS`` targets of ``MAX_NEGATIVES``
  negative points each, every number finite and within ``MAX_ABS_COORD``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

# --- a video as a trace (or an upload) describes it; VideoCaps' defaults are the same 4K bound
MAX_SIDE = 4096  # pixels, width or height
MAX_PIXELS = 4096 * 2304  # one frame (4K UHD and its portrait twin fit; 4096x4096 does not)
MAX_FRAMES = 100_000  # an hour at 27 fps; longer runs are refused, not truncated
MAX_FPS = 1000.0
MAX_DURATION_S = 24 * 3600.0

# --- the contents of a run
MAX_TARGETS = 32  # objects one run may segment (a mask stack is MAX_TARGETS x H x W at most)
MAX_NEGATIVES = 32  # negative points per target
MAX_SHOWN_FRAMES = 4096  # frames listed in one sampler / prompt event (frame indices)
MAX_LEVELS = 64  # HTFS levels
MAX_ANSWERS = 256  # model answers in one sampler event
MAX_TOKENS = 1_000_000  # reasoning tokens of one run
MAX_TEXT_CHARS = 1_000_000  # one text field (reasoning, prompt, message)
MAX_NAME_CHARS = 1_000  # one short text field (preset, device, backend name, stage, path)
MAX_ABS_COORD = 1e6  # |x|, |y| of a cue point or box corner, in pixels
MAX_ABS_NUMBER = 1e12  # any other number (seconds, scores, token counts)

# --- JSON text from outside (a trace line, typed cues)
MAX_JSON_DEPTH = 16  # nesting of lists / objects (a run's config is 3 deep)
MAX_JSON_VALUES = 2_000_000  # values in one JSON document, estimated before parsing
MAX_INT_DIGITS = 19  # an integer literal longer than this is refused before it is converted

# --- a trace file
MAX_TRACE_BYTES = 1024**3  # the command line's cap; the explorer uses its upload cap (200 MB)
MAX_TRACE_LINE_BYTES = 64 * 1024**2  # one event; a 4K mask of pure noise is under 20 MB of RLE
MAX_TRACE_EVENTS = 2_000_000

# --- an archive (the Inspect tab's predictions zip, the Compare tab's ground truth)
MAX_ZIP_ENTRIES = 20_000  # 100 expressions x 200 frames of PNGs fit
MAX_ZIP_NAME_BYTES = 1_024  # one entry's name; each part of it at most 255 bytes (the file system's)
MAX_ARCHIVE_PIXELS = 1 << 30  # all PNG masks of one archive together (read as a 1 GiB mask stack)

# --- typed cues (the Interactive tab) and API arguments
MAX_CUES_CHARS = 100_000
MAX_PACE = 1_000.0  # presentation pace, tokens per second


# ---------------------------------------------------------------------------------- bounded JSON


class TooLarge(ValueError):
    """Input from outside is over one of the bounds above; the message names what and which bound."""


def parse_json(
    text: str,
    what: str,
    *,
    max_chars: int | None = None,
    max_depth: int = MAX_JSON_DEPTH,
    max_values: int = MAX_JSON_VALUES,
) -> Any:
    """``json.loads`` for text from outside, bounded before and while it allocates.

    Refused with :class:`TooLarge` (or ``ValueError`` for what is not JSON), naming ``what``: text
    longer than ``max_chars``; more than ``max_values`` values (counted from the separators before
    parsing, so a document of a million tiny values is refused unread); an integer of more than
    :data:`MAX_INT_DIGITS` digits (Python would convert it digit by digit, and a 5000-digit one
    raises a bare ValueError); NaN, Infinity or a number that overflows to them (``1e999``); lists
    or objects nested deeper than ``max_depth`` (deep nesting would otherwise end in a
    RecursionError, or in one deep inside a consumer).
    """
    if max_chars is not None and len(text) > max_chars:
        raise TooLarge(f"{what} is {len(text):,} characters long; at most {max_chars:,} are read")
    # An over-estimate (separators inside strings count too) that costs no allocation.
    values = text.count(",") + text.count("[") + text.count("{") + 1
    if values > max_values:
        raise TooLarge(f"{what} holds about {values:,} JSON values; at most {max_values:,} are read")
    try:
        data = json.loads(
            text, parse_int=_bounded_int, parse_float=_finite_float, parse_constant=_no_constant
        )
    except RecursionError:
        raise TooLarge(f"{what} is nested too deeply (at most {max_depth} levels)") from None
    except TooLarge as exc:
        raise TooLarge(f"{what}: {exc}") from None
    depth = json_depth(data, max_depth + 1)
    if depth > max_depth:
        raise TooLarge(f"{what} is nested more than {max_depth} levels deep; at most {max_depth} are allowed")
    return data


def json_depth(value: Any, stop: int = MAX_JSON_DEPTH + 1) -> int:
    """Nesting depth of parsed JSON (a scalar is 0, ``[]`` is 1), counted without recursion and
    given up at ``stop`` (the caller only needs to know it is over)."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest >= stop:
            return deepest
        pending.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def _bounded_int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INT_DIGITS:
        digits = len(literal.lstrip("-"))
        raise TooLarge(f"an integer has {digits} digits; at most {MAX_INT_DIGITS} are read")
    return int(literal)


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise TooLarge(f"the number {literal[:24]} is too large to be a number (it overflows to infinity)")
    return value


def _no_constant(name: str) -> float:
    raise TooLarge(f"{name} is not a number JSON allows (NaN / Infinity are refused)")


def finite(value: Any, lo: float = -MAX_ABS_NUMBER, hi: float = MAX_ABS_NUMBER) -> bool:
    """Whether ``value`` is a real number (not bool, not NaN or infinite) within [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    # an int is compared as it is: math.isfinite would overflow on one of hundreds of digits
    return (isinstance(value, int) or math.isfinite(value)) and lo <= value <= hi


__all__ = [name for name in dir() if name.isupper()] + ["TooLarge", "finite", "json_depth", "parse_json"]
