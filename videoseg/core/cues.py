"""Target cues (paper step 2 -> step 3): box, positive centre point, negative point(s) per target.

The reasoner writes ``<think>...</think><answer>[...]</answer>`` where the answer is the
VisionReasoner / Seg-Zero JSON list ``[{"bbox_2d": [x1, y1, x2, y2], "point_2d": [x, y],
"neg_point_2d": [x, y]}, ...]`` in the pixel space of the image *as the model saw it*.
:func:`parse_answer` turns that text into :class:`TargetCues` tolerating the usual deviations
(code fences, single quotes, trailing commas or text, a dict instead of a list, several negative
points) and raises :class:`CueParseError` with a precise reason otherwise. :meth:`TargetCues.scaled`
maps model-space coordinates to original-frame pixels; :meth:`TargetCues.clipped` keeps them inside
the frame; :meth:`TargetCues.filtered` applies the cue ablation (paper Table 6).
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any

BOX_KEYS = ("bbox_2d", "bbox", "box", "box_2d")
POINT_KEYS = ("point_2d", "point", "center", "centre", "pos_point_2d", "positive_point")
OUTSIDE_TOLERANCE = 0.02  # share of the frame's side a point may lie outside and still be moved onto it
NEG_KEYS = (
    "neg_point_2d",
    "negative_point_2d",
    "neg_point",
    "negative_point",
    "neg_points",
    "negative_points",
    "negatives",  # our own key (TargetCues.to_dict), typed without a "box" key in the Interactive tab
)


class CueParseError(ValueError):
    """The answer text cannot be turned into cues; ``raw`` keeps what the model wrote."""

    def __init__(self, message: str, raw: str) -> None:
        super().__init__(message)
        self.raw = raw


@dataclass
class TargetCues:
    """Cues for one target on one frame. Coordinates are (x, y) pixels, floats.

    box: [x1, y1, x2, y2] or None; point: positive centre [x, y] or None;
    negatives: negative points [[x, y], ...]; obj_id: 1-based target id; frame_idx: frame they are on.
    """

    box: list[float] | None = None
    point: list[float] | None = None
    negatives: list[list[float]] = field(default_factory=list)
    obj_id: int = 1
    frame_idx: int = 0

    def __post_init__(self) -> None:
        if self.box is not None:
            x1, y1, x2, y2 = (float(v) for v in self.box)
            self.box = [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]
        if self.point is not None:
            self.point = [float(self.point[0]), float(self.point[1])]
        self.negatives = [[float(p[0]), float(p[1])] for p in self.negatives]

    @property
    def is_empty(self) -> bool:
        return self.box is None and self.point is None and not self.negatives

    def scaled(self, sx: float, sy: float) -> TargetCues:
        """Multiply x by sx and y by sy (model space -> original pixels: sx = W / W_model)."""
        return TargetCues(
            box=None
            if self.box is None
            else [self.box[0] * sx, self.box[1] * sy, self.box[2] * sx, self.box[3] * sy],
            point=None if self.point is None else [self.point[0] * sx, self.point[1] * sy],
            negatives=[[p[0] * sx, p[1] * sy] for p in self.negatives],
            obj_id=self.obj_id,
            frame_idx=self.frame_idx,
        )

    def from_model_space(self, model_size: tuple[int, int], frame_size: tuple[int, int]) -> TargetCues:
        """Map from the model's (width, height) input space to the frame's (width, height)."""
        return self.scaled(frame_size[0] / model_size[0], frame_size[1] / model_size[1])

    def clipped(self, width: int, height: int) -> TargetCues:
        """Keep coordinates inside [0, W-1] x [0, H-1].

        A box with no area inside the frame is dropped; a point just outside (within
        ``OUTSIDE_TOLERANCE`` of the frame's side: rounding in the model's answer space) is moved onto
        the border, one farther out is dropped: it names no pixel of the frame, and moving it to the
        border would prompt the segmenter at an unrelated spot.
        """

        def cx(v: float) -> float:
            return min(max(v, 0.0), float(width - 1))

        def cy(v: float) -> float:
            return min(max(v, 0.0), float(height - 1))

        def near(p: list[float]) -> bool:
            tol_x, tol_y = OUTSIDE_TOLERANCE * width, OUTSIDE_TOLERANCE * height
            return -tol_x <= p[0] <= width + tol_x and -tol_y <= p[1] <= height + tol_y

        box = None
        if self.box is not None:
            b = [cx(self.box[0]), cy(self.box[1]), cx(self.box[2]), cy(self.box[3])]
            if b[2] > b[0] and b[3] > b[1]:
                box = b
        point = None
        if self.point is not None and near(self.point):
            point = [cx(self.point[0]), cy(self.point[1])]
        return TargetCues(
            box=box,
            point=point,
            negatives=[[cx(p[0]), cy(p[1])] for p in self.negatives if near(p)],
            obj_id=self.obj_id,
            frame_idx=self.frame_idx,
        )

    def count(self) -> int:
        """Number of cues: the box, the point and each negative point."""
        return int(self.box is not None) + int(self.point is not None) + len(self.negatives)

    def filtered(self, kinds: tuple[str, ...] | list[str]) -> TargetCues:
        """Keep only the cue kinds named ("box", "point", "negative")."""
        return TargetCues(
            box=self.box if "box" in kinds else None,
            point=self.point if "point" in kinds else None,
            negatives=list(self.negatives) if "negative" in kinds else [],
            obj_id=self.obj_id,
            frame_idx=self.frame_idx,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "obj_id": self.obj_id,
            "frame_idx": self.frame_idx,
            "box": self.box,
            "point": self.point,
            "negatives": self.negatives,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetCues:
        """Inverse of :meth:`to_dict`; each cue may also use the model's keys (``bbox_2d``,
        ``point_2d``, ``neg_point_2d`` ...), mixed with ours in one item. Numbers are checked."""
        obj_id = int(data.get("obj_id", 1))
        box, point, negatives = _cue_values(data, obj_id, json.dumps(data, default=str))
        return cls(
            box=box, point=point, negatives=negatives, obj_id=obj_id, frame_idx=int(data.get("frame_idx", 0))
        )

    def to_model_dict(self) -> dict[str, Any]:
        """The VisionReasoner-style answer item (ints, as the models write them)."""
        out: dict[str, Any] = {}
        if self.box is not None:
            out["bbox_2d"] = [round(v) for v in self.box]
        if self.point is not None:
            out["point_2d"] = [round(v) for v in self.point]
        if self.negatives:
            out["neg_point_2d"] = (
                [round(v) for v in self.negatives[0]]
                if len(self.negatives) == 1
                else [[round(v) for v in p] for p in self.negatives]
            )
        return out


@dataclass
class ParsedAnswer:
    think: str
    answer: str
    targets: list[TargetCues]


_THINK_RE = re.compile(r"<think>(.*?)(?:</think>|$)", re.S)
_ANSWER_RE = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.S)


def split_think_answer(text: str) -> tuple[str, str | None]:
    """(think text, answer text or None when there is no ``<answer>`` tag)."""
    think_m = _THINK_RE.search(text)
    think = think_m.group(1).strip() if think_m else ""
    ans_m = _ANSWER_RE.search(text)
    return think, (ans_m.group(1).strip() if ans_m else None)


def parse_answer(text: str, frame_idx: int = 0) -> ParsedAnswer:
    """Parse a full reasoner output into cues (model-space coordinates).

    Raises CueParseError when there is no answer, it is not a list/dict of targets, or a target has
    neither a usable box nor a point. An empty list is a valid answer meaning "no target".
    """
    if not isinstance(text, str) or not text.strip():
        raise CueParseError("empty model output", raw=str(text))
    think, answer = split_think_answer(text)
    if answer is None:
        raise CueParseError("no <answer>...</answer> block in the model output", raw=text)
    data = _load_structure(answer, raw=text)
    if isinstance(data, dict):
        # {"targets": [...]} or a single target dict
        inner = next(
            (data[k] for k in ("targets", "objects", "answer") if isinstance(data.get(k), list)), None
        )
        data = inner if inner is not None else [data]
    if not isinstance(data, list):
        raise CueParseError(f"answer is a {type(data).__name__}, expected a list of targets", raw=text)
    targets = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise CueParseError(f"target {i} is a {type(item).__name__}, expected an object", raw=text)
        t = _target_from_model_item(item, index=i, raw=text)
        t.frame_idx = frame_idx
        targets.append(t)
    return ParsedAnswer(think=think, answer=answer, targets=targets)


def _strip_fences(s: str) -> str:
    s = s.strip()
    m = re.search(r"```(?:json|python|JSON)?\s*(.*?)```", s, re.S)
    if m:
        return m.group(1).strip()
    return s.replace("```json", "").replace("```", "").strip()


def _load_structure(answer: str, raw: str) -> Any:
    s = _strip_fences(answer)
    if not s:
        raise CueParseError("the <answer> block is empty", raw=raw)
    start = min((i for i in (s.find("["), s.find("{")) if i >= 0), default=-1)
    if start < 0:
        raise CueParseError("no JSON list or object in the <answer> block", raw=raw)
    s = s[start:]
    # Cut trailing prose: keep up to the bracket that closes the first opening one.
    end = _matching_close(s)
    if end is None:
        raise CueParseError("unbalanced brackets in the <answer> block (truncated output?)", raw=raw)
    s = s[: end + 1]
    s_clean = re.sub(r",\s*([\]}])", r"\1", s)  # trailing commas
    for loader in (json.loads, _literal):
        try:
            return loader(s_clean)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    raise CueParseError(f"the <answer> block is not valid JSON: {s[:80]!r}", raw=raw)


def _literal(s: str) -> Any:
    return ast.literal_eval(s.replace("null", "None").replace("true", "True").replace("false", "False"))


def _matching_close(s: str) -> int | None:
    depth = 0
    quote: str | None = None
    for i, ch in enumerate(s):
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth == 0:
                return i
    return None


def _numbers(value: Any, n: int, what: str, index: int, raw: str) -> list[float]:
    if isinstance(value, dict):
        value = (
            [value.get(k) for k in ("x1", "y1", "x2", "y2")] if n == 4 else [value.get("x"), value.get("y")]
        )
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise CueParseError(f"target {index}: {what} must be {n} numbers, got {value!r}", raw=raw)
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            try:
                v = float(str(v))
            except (ValueError, OverflowError):
                raise CueParseError(f"target {index}: {what} has a non-number {v!r}", raw=raw) from None
        try:
            f = float(v)
        except OverflowError:  # a JSON integer with hundreds of digits
            raise CueParseError(
                f"target {index}: {what} has a number too large to be a pixel", raw=raw
            ) from None
        if f != f or f in (float("inf"), float("-inf")):
            raise CueParseError(f"target {index}: {what} has a non-finite number", raw=raw)
        out.append(f)
    return out


def _cue_values(
    item: dict[str, Any], index: int, raw: str
) -> tuple[list[float] | None, list[float] | None, list[list[float]]]:
    """(box, point, negatives) of one target, whichever of the known keys hold them."""
    box_v = next((item[k] for k in BOX_KEYS if item.get(k) is not None), None)
    point_v = next((item[k] for k in POINT_KEYS if item.get(k) is not None), None)
    neg_v = next((item[k] for k in NEG_KEYS if item.get(k) is not None), None)
    box = _numbers(box_v, 4, "bbox_2d", index, raw) if box_v is not None else None
    point = _numbers(point_v, 2, "point_2d", index, raw) if point_v is not None else None
    negatives: list[list[float]] = []
    if neg_v is not None:
        if isinstance(neg_v, (list, tuple)) and neg_v and isinstance(neg_v[0], (list, tuple, dict)):
            negatives = [_numbers(p, 2, "neg_point_2d", index, raw) for p in neg_v]
        elif neg_v != []:
            negatives = [_numbers(neg_v, 2, "neg_point_2d", index, raw)]
    return box, point, negatives


def _target_from_model_item(item: dict[str, Any], index: int, raw: str) -> TargetCues:
    box, point, negatives = _cue_values(item, index, raw)
    if box is None and point is None:
        raise CueParseError(f"target {index} has neither a bbox_2d nor a point_2d", raw=raw)
    return TargetCues(box=box, point=point, negatives=negatives, obj_id=index + 1)
