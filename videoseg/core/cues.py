"""Target cues (paper step 2 -> step 3): box, positive point(s), negative point(s) per target.

The reasoner's answer lists the target objects with their cues in the pixel space of the image *as the
model saw it*. Real checkpoints write that answer in several shapes, and :func:`parse_answer` reads all
of those seen in public outputs (the table in ``tests/core/test_real_outputs.py`` cites each source):

- ``<think>...</think><answer>[...]</answer>`` with a JSON list of targets (our prompt, VisionReasoner);
- the same list without answer tags: bare, after the thinking, inside a ```` ```json ```` fence (also
  with ``json`` on its own line), or after a sentence of prose (base Qwen2.5-VL answers this way);
- tab-indented lists with ``label`` keys (Qwen2.5-VL's grounding format), items with only a
  ``point_2d``, Python-literal quoting, a dict instead of a list;
- Seg-Zero's schema, one object ``{"bbox": ..., "points_1": ..., "points_2": ...}``, and its text form
  ``<box>(x1,y1),(x2,y2)</box><points>(x,y),(x,y)</points>``: a target may carry several positive
  points (:attr:`TargetCues.extra_points`);
- ``[]``: the model says no object matches. That is a result (:attr:`ParsedAnswer.no_target`, with its
  own :attr:`ParsedAnswer.message`), not a parse error.

It never invents a cue: an output with no answer, a truncated or non-numeric structure, a box that is
not 4 numbers or a point that is not 2, a list of bare numbers (which cue of which target would be a
guess) or an item with no known cue key raises :class:`CueParseError` with the reason. This reader is
for inference; training rewards must judge the format strictly and do not use it.

:meth:`TargetCues.scaled` maps model-space coordinates to original-frame pixels;
:meth:`TargetCues.clipped` keeps them inside the frame; :meth:`TargetCues.filtered` applies the cue
ablation (paper Table 6); :func:`drop_negatives_inside_box` is the check applied to checkpoints not
trained to give negative points (a "negative" inside the target's own box would cut the target out).
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any

BOX_KEYS = ("bbox_2d", "bbox", "box", "box_2d")
POINT_KEYS = ("point_2d", "point", "center", "centre", "pos_point_2d", "positive_point")
# Keys holding a *list* of positive points: ours (written by to_model_dict) and list-valued variants.
POINT_LIST_KEYS = ("extra_points_2d", "extra_points", "points_2d", "points", "positive_points")
# Seg-Zero numbers its two positive points: points_1, points_2 (its inference and reward code read
# every key containing "points"; dvlab-research/Seg-Zero inference_scripts/infer.py).
NUMBERED_POINT_RE = re.compile(r"^points?_(\d+)(?:_2d)?$")
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

    box: [x1, y1, x2, y2] or None; point: the (first) positive point [x, y] or None; extra_points:
    further positive points (Seg-Zero gives two per target); negatives: negative points [[x, y], ...];
    obj_id: 1-based target id; frame_idx: frame they are on.
    """

    box: list[float] | None = None
    point: list[float] | None = None
    negatives: list[list[float]] = field(default_factory=list)
    obj_id: int = 1
    frame_idx: int = 0
    extra_points: list[list[float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.box is not None:
            x1, y1, x2, y2 = (float(v) for v in self.box)
            self.box = [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]
        if self.point is not None:
            self.point = [float(self.point[0]), float(self.point[1])]
        self.extra_points = [[float(p[0]), float(p[1])] for p in self.extra_points]
        if self.point is None and self.extra_points:
            # The first positive point is always `point`: consumers that read one point still get one.
            self.point, self.extra_points = self.extra_points[0], self.extra_points[1:]
        self.negatives = [[float(p[0]), float(p[1])] for p in self.negatives]

    @property
    def positive_points(self) -> list[list[float]]:
        """Every positive point, `point` first (what a segmenter labels 1)."""
        return ([] if self.point is None else [list(self.point)]) + [list(p) for p in self.extra_points]

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
            extra_points=[[p[0] * sx, p[1] * sy] for p in self.extra_points],
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
        positives = [[cx(p[0]), cy(p[1])] for p in self.positive_points if near(p)]
        return TargetCues(
            box=box,
            point=positives[0] if positives else None,
            negatives=[[cx(p[0]), cy(p[1])] for p in self.negatives if near(p)],
            obj_id=self.obj_id,
            frame_idx=self.frame_idx,
            extra_points=positives[1:],
        )

    def count(self) -> int:
        """Number of cues: the box, each positive point and each negative point."""
        return int(self.box is not None) + len(self.positive_points) + len(self.negatives)

    def filtered(self, kinds: tuple[str, ...] | list[str]) -> TargetCues:
        """Keep only the cue kinds named ("box", "point", "negative"); "point" keeps every positive."""
        keep_points = "point" in kinds
        return TargetCues(
            box=self.box if "box" in kinds else None,
            point=self.point if keep_points else None,
            negatives=list(self.negatives) if "negative" in kinds else [],
            obj_id=self.obj_id,
            frame_idx=self.frame_idx,
            extra_points=list(self.extra_points) if keep_points else [],
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "obj_id": self.obj_id,
            "frame_idx": self.frame_idx,
            "box": self.box,
            "point": self.point,
            "negatives": self.negatives,
        }
        # Only when present, so traces of single-point targets keep their earlier shape.
        if self.extra_points:
            out["extra_points"] = self.extra_points
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetCues:
        """Inverse of :meth:`to_dict`; each cue may also use the model's keys (``bbox_2d``,
        ``point_2d``, ``neg_point_2d``, ``points_1`` ...), mixed with ours in one item. Numbers are
        checked."""
        obj_id = int(data.get("obj_id", 1))
        box, points, negatives = _cue_values(data, obj_id, json.dumps(data, default=str))
        return cls(
            box=box,
            point=points[0] if points else None,
            negatives=negatives,
            obj_id=obj_id,
            frame_idx=int(data.get("frame_idx", 0)),
            extra_points=points[1:],
        )

    def to_model_dict(self) -> dict[str, Any]:
        """The VisionReasoner-style answer item (ints, as the models write them)."""
        out: dict[str, Any] = {}
        if self.box is not None:
            out["bbox_2d"] = [round(v) for v in self.box]
        if self.point is not None:
            out["point_2d"] = [round(v) for v in self.point]
        if self.extra_points:
            out["extra_points_2d"] = [[round(v) for v in p] for p in self.extra_points]
        if self.negatives:
            out["neg_point_2d"] = (
                [round(v) for v in self.negatives[0]]
                if len(self.negatives) == 1
                else [[round(v) for v in p] for p in self.negatives]
            )
        return out


def drop_negatives_inside_box(cues: TargetCues) -> tuple[TargetCues, list[list[float]]]:
    """(cues without the negative points inside their own box, the points dropped).

    A checkpoint not trained to give negative points (base Qwen2.5-VL asked by our prompt,
    VisionReasoner, Seg-Zero) may still write one; inside the target's box it most likely lies on the
    target itself, and SAM2 would cut that part out of the mask. The box edge counts as inside. Without
    a box there is nothing to check against, so every negative is kept.
    """
    if cues.box is None or not cues.negatives:
        return cues, []
    x1, y1, x2, y2 = cues.box
    kept = [p for p in cues.negatives if not (x1 <= p[0] <= x2 and y1 <= p[1] <= y2)]
    dropped = [p for p in cues.negatives if x1 <= p[0] <= x2 and y1 <= p[1] <= y2]
    if not dropped:
        return cues, []
    return (
        TargetCues(
            box=list(cues.box),
            point=None if cues.point is None else list(cues.point),
            negatives=kept,
            obj_id=cues.obj_id,
            frame_idx=cues.frame_idx,
            extra_points=[list(p) for p in cues.extra_points],
        ),
        dropped,
    )


@dataclass
class ParsedAnswer:
    """What :func:`parse_answer` read.

    think: the reasoning text; answer: the text the targets were read from (the ``<answer>`` block,
    or the part of the output holding the structure); targets: the cues, in model-space pixels;
    form: how the answer was written ("answer-tag", "fenced", "bare" or "box-text").
    """

    think: str
    answer: str
    targets: list[TargetCues]
    form: str = "answer-tag"

    @property
    def no_target(self) -> bool:
        """The model answered that no object matches (an empty list): a result, not a failure."""
        return not self.targets

    @property
    def message(self) -> str:
        if self.no_target:
            return "the reasoner found no object matching the query (it answered with an empty list)"
        n = len(self.targets)
        return f"the reasoner located {n} target{'s' if n != 1 else ''}"


_THINK_RE = re.compile(r"<think>(.*?)(?:</think>|$)", re.S)
_ANSWER_RE = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.S)
_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z]*)[ \t]*\n?(.*?)(?:```|$)", re.S)
_BOX_TEXT_RE = re.compile(r"<box>(.*?)</box>", re.S)
_POINTS_TEXT_RE = re.compile(r"<points>(.*?)</points>", re.S)
_PAIR_RE = re.compile(r"\(\s*([^,()]*?)\s*,\s*([^,()]*?)\s*\)")


def split_think_answer(text: str) -> tuple[str, str | None]:
    """(think text, answer text or None when there is no ``<answer>`` tag).

    A ``</think>`` without an opening tag (some chat templates put ``<think>`` in the prompt) ends
    a reasoning that started at the beginning of the output.
    """
    think_m = _THINK_RE.search(text)
    if think_m:
        think = think_m.group(1).strip()
    elif "</think>" in text:
        think = text.split("</think>", 1)[0].strip()
    else:
        think = ""
    ans_m = _ANSWER_RE.search(text)
    return think, (ans_m.group(1).strip() if ans_m else None)


def parse_answer(text: str, frame_idx: int = 0) -> ParsedAnswer:
    """Parse a full reasoner output into cues (model-space coordinates); see the module docstring.

    Raises CueParseError with the reason when no answer can be read. An empty list is a valid answer
    meaning "no target" (``ParsedAnswer.no_target``).
    """
    if not isinstance(text, str) or not text.strip():
        raise CueParseError("empty model output", raw=str(text))
    think, answer = split_think_answer(text)
    if answer is not None:
        region, form = answer, "answer-tag"
        if not region:
            raise CueParseError("the <answer> block is empty", raw=text)
    else:
        region, form = _untagged_region(text), "bare"
    region, fenced = _unfence(region)
    if fenced and form == "bare":
        form = "fenced"
    if _BOX_TEXT_RE.search(region) or _POINTS_TEXT_RE.search(region):
        targets = _targets_from_box_text(region, raw=text)
        form = "box-text" if form == "bare" else form
    else:
        data = _load_structure(region, raw=text, tagged=answer is not None)
        targets = _targets_from_structure(data, raw=text)
    for t in targets:
        t.frame_idx = frame_idx
    return ParsedAnswer(think=think, answer=region.strip(), targets=targets, form=form)


def _untagged_region(text: str) -> str:
    """Where an answer written without ``<answer>`` tags can be: after the thinking."""
    if "</think>" in text:
        return text.rsplit("</think>", 1)[1]
    if "<think>" in text:
        raise CueParseError(
            "no answer: the output ends inside <think> without an answer (cut at the token cap?)", raw=text
        )
    return text


def _unfence(region: str) -> tuple[str, bool]:
    """The content of the first ```` ``` ```` fence (and whether there was one), a leading ``json``
    word dropped: models write ```` ```json ````, ```` ```\\njson ```` or just ``json`` before the list."""
    m = _FENCE_RE.search(region)
    fenced = m is not None
    if m:
        region = m.group(2)
    region = region.strip()
    stripped = re.sub(r"^(?:json|JSON|python)\s*\n?", "", region, count=1)
    return stripped, fenced


def _load_structure(region: str, raw: str, tagged: bool) -> Any:
    where = "the <answer> block" if tagged else "the model output"
    start = min((i for i in (region.find("["), region.find("{")) if i >= 0), default=-1)
    if start < 0:
        if tagged:
            raise CueParseError(f"no JSON list or object (nor a <box> form) in {where}", raw=raw)
        raise CueParseError(
            "no answer in the model output: no <answer> block, JSON list or object, or <box> form", raw=raw
        )
    s = region[start:]
    # Cut trailing prose: keep up to the bracket that closes the first opening one.
    end = _matching_close(s)
    if end is None:
        raise CueParseError(f"unbalanced brackets or quotes in {where} (truncated output?)", raw=raw)
    s = s[: end + 1]
    s_clean = re.sub(r",\s*([\]}])", r"\1", s)  # trailing commas
    for loader in (json.loads, _literal):
        try:
            return loader(s_clean)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    raise CueParseError(f"{where} is not valid JSON: {s[:80]!r}", raw=raw)


def _literal(s: str) -> Any:
    return ast.literal_eval(s.replace("null", "None").replace("true", "True").replace("false", "False"))


def _matching_close(s: str) -> int | None:
    depth = 0
    quote: str | None = None
    escaped = False
    for i, ch in enumerate(s):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
            continue
        if ch in "\"'":
            # An apostrophe inside a word ("it's") in a Python-literal answer is not a quote.
            if ch == "'" and i > 0 and s[i - 1].isalpha() and i + 1 < len(s) and s[i + 1].isalpha():
                continue
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth == 0:
                return i
    return None


def _targets_from_structure(data: Any, raw: str) -> list[TargetCues]:
    if isinstance(data, dict):
        # {"targets": [...]} or a single target dict
        inner = next(
            (data[k] for k in ("targets", "objects", "answer") if isinstance(data.get(k), list)), None
        )
        data = inner if inner is not None else [data]
    if not isinstance(data, list):
        raise CueParseError(f"the answer is a {type(data).__name__}, expected a list of targets", raw=raw)
    if data and _only_numbers(data):
        # [x1, y1, x2, y2], [[x1, y1, x2, y2]], [x, y]: which cue of which target is a guess.
        raise CueParseError(
            "the answer is a list of bare numbers, expected objects with a bbox_2d / point_2d key "
            "(whether the numbers are a box or points would be a guess)",
            raw=raw,
        )
    targets = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise CueParseError(f"target {i} is a {type(item).__name__}, expected an object", raw=raw)
        targets.append(_target_from_model_item(item, index=i, raw=raw))
    return targets


def _only_numbers(v: Any) -> bool:
    """A number, or a (nested) list holding only numbers."""
    if isinstance(v, (list, tuple)):
        return all(_only_numbers(x) for x in v)
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _targets_from_box_text(region: str, raw: str) -> list[TargetCues]:
    """Seg-Zero's text form ``<box>(x1,y1),(x2,y2)</box><points>(x,y),(x,y)</points>`` (also Qwen-VL's
    ``<ref>..</ref><box>(x1,y1),(x2,y2)</box>``): one target per box; points need a single box."""
    boxes = []
    for i, body in enumerate(_BOX_TEXT_RE.findall(region)):
        pairs = _pairs(body, f"target {i}: <box>", raw)
        if len(pairs) != 2:
            raise CueParseError(
                f"target {i}: <box> must hold 2 corners (x1,y1),(x2,y2), got {body!r}", raw=raw
            )
        boxes.append(pairs[0] + pairs[1])
    points: list[list[float]] = []
    for body in _POINTS_TEXT_RE.findall(region):
        found = _pairs(body, "<points>", raw)
        if not found:
            raise CueParseError(f"<points> holds no (x,y) pair: {body!r}", raw=raw)
        points.extend(found)
    if points and len(boxes) > 1:
        raise CueParseError(
            f"{len(boxes)} <box> but one <points> list: which target each point belongs to is unknown",
            raw=raw,
        )
    if not boxes:
        return [TargetCues(point=points[0], extra_points=points[1:], obj_id=1)]
    return [
        TargetCues(box=b, point=points[0] if points else None, extra_points=points[1:], obj_id=i + 1)
        for i, b in enumerate(boxes)
    ]


def _pairs(body: str, what: str, raw: str) -> list[list[float]]:
    rest = _PAIR_RE.sub("", body)
    if re.sub(r"[\s,]", "", rest):
        raise CueParseError(f"{what} holds something other than (x,y) pairs: {body!r}", raw=raw)
    return [_numbers([a, b], 2, what, 0, raw, label=what) for a, b in _PAIR_RE.findall(body)]


def _numbers(value: Any, n: int, what: str, index: int, raw: str, label: str | None = None) -> list[float]:
    where = label if label is not None else f"target {index}: {what}"
    if isinstance(value, dict):
        value = (
            [value.get(k) for k in ("x1", "y1", "x2", "y2")] if n == 4 else [value.get("x"), value.get("y")]
        )
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise CueParseError(f"{where} must be {n} numbers, got {value!r}", raw=raw)
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            try:
                v = float(str(v))
            except (ValueError, OverflowError):
                raise CueParseError(f"{where} has a non-number {v!r}", raw=raw) from None
        try:
            f = float(v)
        except OverflowError:  # a JSON integer with hundreds of digits
            raise CueParseError(f"{where} has a number too large to be a pixel", raw=raw) from None
        if f != f or f in (float("inf"), float("-inf")):
            raise CueParseError(f"{where} has a non-finite number", raw=raw)
        out.append(f)
    return out


def _point_list(value: Any, what: str, index: int, raw: str) -> list[list[float]]:
    """One point [x, y] or a list of points [[x, y], ...]."""
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple, dict)):
        return [_numbers(p, 2, what, index, raw) for p in value]
    if value == [] or value is None:
        return []
    return [_numbers(value, 2, what, index, raw)]


def _cue_values(
    item: dict[str, Any], index: int, raw: str
) -> tuple[list[float] | None, list[list[float]], list[list[float]]]:
    """(box, positive points, negatives) of one target, whichever of the known keys hold them."""
    box_v = next((item[k] for k in BOX_KEYS if item.get(k) is not None), None)
    box = _numbers(box_v, 4, "bbox_2d", index, raw) if box_v is not None else None
    points: list[list[float]] = []
    point_v = next((item[k] for k in POINT_KEYS if item.get(k) is not None), None)
    if point_v is not None:
        points.append(_numbers(point_v, 2, "point_2d", index, raw))
    for k in POINT_LIST_KEYS:
        if item.get(k) is not None:
            points.extend(_point_list(item[k], k, index, raw))
    numbered = sorted(
        (int(m.group(1)), k) for k in item if isinstance(k, str) and (m := NUMBERED_POINT_RE.match(k))
    )
    for _, k in numbered:
        if item[k] is not None:
            points.extend(_point_list(item[k], k, index, raw))
    neg_v = next((item[k] for k in NEG_KEYS if item.get(k) is not None), None)
    negatives = _point_list(neg_v, "neg_point_2d", index, raw) if neg_v is not None else []
    return box, points, negatives


def _target_from_model_item(item: dict[str, Any], index: int, raw: str) -> TargetCues:
    box, points, negatives = _cue_values(item, index, raw)
    if box is None and not points:
        keys = ", ".join(map(str, item)) or "none"
        raise CueParseError(
            f"target {index} has neither a bbox_2d nor a point_2d (its keys: {keys})", raw=raw
        )
    return TargetCues(
        box=box,
        point=points[0] if points else None,
        negatives=negatives,
        obj_id=index + 1,
        extra_points=points[1:],
    )
