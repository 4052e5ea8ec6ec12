"""The Reward view: what GRPO training rewards a reasoning chain for (paper: Training).

Paste any completion (``<think>...</think><answer>...</answer>``), give the ground truth (a JSON list
of ``{"bbox_2d", "point_2d"}`` or a Seg-Zero ``<box>...</box><points>...</points>`` string, or pick a
bundled example and a frame, whose annotation gives the targets and the target mask), a difficulty,
and a reward kind; the view scores it with :mod:`videoseg.training.rewards` (the official rewards,
exactly) and shows each term, the Hungarian matching drawn on the frame (prediction vs ground truth,
a line per matched pair labelled with the criteria it met), each negative point's distance to the
target mask and the length factor. Named API endpoint: ``reward``.

After a Run-tab run on a bundled example (whose expression is the query) the same breakdown of the
reasoner's own completion appears under the run (:func:`run_reward`): the paper's reward (Seg-Zero's
for a run with the Seg-Zero profile, whose answer has that schema).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import gradio as gr
import numpy as np

from videoseg.core.cues import TargetCues
from videoseg.training import rewards as rw
from videoseg.ui.examples import Example, match_example, read_annotations
from videoseg.viz.overlay import draw_cues, overlay_masks

MAX_COMPLETION_CHARS = 100_000  # a completion of 2048 tokens is ~10k characters
MAX_GT_CHARS = 200_000  # 120 objects of JSON fit easily
NO_EXAMPLE = "(none: use the ground truth text)"
GT_COLOUR = (255, 255, 255)
MATCH_COLOURS = {3: (48, 209, 88), 2: (255, 214, 10), 1: (255, 159, 10), 0: (255, 59, 48)}

TERM_HELP = {
    "think_format": "whole text is <think>…</think> <answer>…</answer> (nothing before or after)",
    "seg_format": "per answer item: bbox_2d is a list of 4 (+1), point_2d a list of 2 (+1), / #items",
    "accuracy": "Hungarian-matched: IoU>0.5, box L1<10 px, point <30 px and inside its box; / max(#pred, #gt)",
    "non_repeat": "0 once two '.'-sentences repeat an earlier one",
    "negative_point": "1/K per negative point 0 < distance to the target mask <= 40 px",
    "segzero_format": "first {…} has bbox (4), points_1 (2), points_2 (2)",
    "segzero_iou": "IoU of bbox with the ground-truth box > 0.5",
    "segzero_box_l1": "mean absolute box difference < 10 px",
    "segzero_point": "both points in the box and mean matched distance < 100 px",
}
TERM_MAX = {"seg_format": 2.0, "accuracy": 3.0}


class RewardInputError(ValueError):
    """Input the reward view cannot score; the message says what to change."""


@dataclass
class RewardView:
    """One scored completion: the breakdown, how it was computed, and its picture."""

    breakdown: rw.Breakdown
    gt: str
    matching: rw.Matching | None = None
    matching_error: str | None = None
    negatives: list[dict[str, Any]] = field(default_factory=list)
    segzero: dict[str, Any] | None = None
    image: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    def table(self) -> list[list[Any]]:
        """[term, value, max, what it checks] rows, then the length factor and the total."""
        b = self.breakdown
        rows = [
            [name, round(v, 4), TERM_MAX.get(name, 1.0), TERM_HELP.get(name, "")]
            for name, v in b.terms.items()
        ]
        if b.kind in ("pixelthink", "videoseg-r1"):
            budget = "no budget" if b.budget is None else f"budget {b.budget:g}"
            rows.append(["× length factor", round(b.factor, 4), 1.0, f"L_used {b.length_used} vs {budget}"])
        rows.append(["total", round(b.total, 4), rw.MAX_TOTAL[b.kind], f"{b.kind} reward"])
        return rows

    def to_dict(self) -> dict[str, Any]:
        out = self.breakdown.to_dict()
        out["ground_truth"] = self.gt
        if self.matching is not None:
            m = self.matching
            out["matching"] = {
                "pairs": [
                    {
                        "pred": p,
                        "gt": g,
                        "iou": _num(m.iou[p, g]),
                        "box_l1": _num(m.l1[p, g]),
                        "point_distance": _num(m.dist[p, g]),
                        "point_in_pred_box": bool(m.inside[p]),
                        "criteria": int(m.criteria[p, g]),
                    }
                    for p, g in m.pairs
                ],
                "num_pred": len(m.pred_boxes),
                "num_gt": len(m.gt_boxes),
            }
        else:
            out["matching"] = None
        out["matching_error"] = self.matching_error
        out["negative_points"] = self.negatives
        out["segzero"] = self.segzero
        out["notes"] = list(self.notes) + list(self.breakdown.notes)
        return out

    def markdown(self) -> str:
        b = self.breakdown
        lines = [
            f"### {b.kind} reward: **{b.total:.3f}** of {rw.MAX_TOTAL[b.kind]:g}",
            "| term | value | max | what it checks |",
            "|---|---|---|---|",
        ]
        for name, value, top, what in self.table():
            lines.append(f"| {name} | {value:g} | {top:g} | {html.escape(str(what))} |")
        if self.matching is not None:
            m = self.matching
            lines.append("")
            lines.append(
                f"**Hungarian matching** ({len(m.pred_boxes)} predicted, {len(m.gt_boxes)} ground truth):"
            )
            for p, g in m.pairs:
                lines.append(
                    f"- pred {p + 1} ↔ gt {g + 1}: IoU {_fmt(m.iou[p, g])}, box L1 {_fmt(m.l1[p, g])} px, "
                    f"point {_fmt(m.dist[p, g])} px{'' if m.inside[p] else ' (outside its box)'} → "
                    f"{int(m.criteria[p, g])}/3"
                )
        elif self.matching_error and b.kind in ("visionreasoner", "videoseg-r1"):
            lines.append(
                f"\n**Accuracy is 0:** the official code fails on this answer ({html.escape(self.matching_error)})."
            )
        if self.segzero is not None:
            z = self.segzero
            lines.append(
                f"\n**Seg-Zero box/points**: IoU {_fmt(z.get('iou'))}, points' matched mean distance "
                f"{_fmt(z.get('points_distance'))} px"
            )
        if self.negatives:
            lines.append("\n**Negative points** (distance to the target mask; rewarded in (0, 40] px):")
            for n in self.negatives:
                d = "outside the image" if n["distance"] is None else f"{n['distance']:.1f} px"
                lines.append(f"- ({n['point'][0]:g}, {n['point'][1]:g}): {d} → {'✓' if n['earns'] else '✗'}")
        for note in [*self.notes, *b.notes]:
            lines.append(f"\n_{html.escape(note)}_")
        return "\n".join(lines)


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def _fmt(v: Any) -> str:
    f = _num(v)
    return "n/a" if f is None else f"{f:.2f}"


# --------------------------------------------------------------------------- input checks


def check_completion(completion: Any) -> str:
    if completion is None or not str(completion).strip():
        raise RewardInputError("Paste a completion: the reasoner's <think>…</think><answer>…</answer> text.")
    text = str(completion)
    if len(text) > MAX_COMPLETION_CHARS:
        raise RewardInputError(
            f"The completion has {len(text):,} characters; the reward view takes at most "
            f"{MAX_COMPLETION_CHARS:,} (a 2048-token answer is about 10,000)."
        )
    return text


def check_gt(gt: str, kind: str) -> str:
    """The ground-truth text, checked for the kind's format (a clear message instead of a silent 0)."""
    if len(gt) > MAX_GT_CHARS:
        raise RewardInputError(
            f"The ground truth has {len(gt):,} characters; at most {MAX_GT_CHARS:,} are taken."
        )
    if kind in ("segzero", "pixelthink"):
        if not rw.SEGZERO_GT_BOX.search(gt.strip()):
            raise RewardInputError(
                "Seg-Zero / PixelThink ground truth must be written <box>(x1,y1),(x2,y2)</box>"
                "<points>(x1,y1),(x2,y2)</points> (integers, no spaces)."
            )
        return gt
    try:
        data = json.loads(gt)
    except ValueError as exc:
        raise RewardInputError(
            f"The ground truth is not JSON ({exc.msg} at character {exc.pos}); write a list like "
            '[{"bbox_2d": [x1, y1, x2, y2], "point_2d": [x, y]}].'
        ) from None
    if not isinstance(data, list) or not all(
        isinstance(t, dict) and "bbox_2d" in t and "point_2d" in t for t in data
    ):
        raise RewardInputError(
            'The ground truth must be a JSON list of {"bbox_2d": [...], "point_2d": [...]} objects.'
        )
    return gt


def parse_difficulty(value: Any) -> float | dict[str, float] | None:
    """Blank -> None; a number -> D; a JSON object -> the five axis scores (checked by the rater)."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        d = float(value)
    else:
        text = str(value).strip()
        if not text:
            return None
        try:
            parsed = json.loads(text)
        except ValueError:
            raise RewardInputError(
                f"Difficulty {text[:40]!r} is neither a number (D in 1..10) nor a JSON object of the five axis scores."
            ) from None
        if isinstance(parsed, dict):
            from videoseg.core.config import PipelineConfig
            from videoseg.reasoning.difficulty import rate

            try:
                rate(parsed, PipelineConfig())
                return {str(k): float(v) for k, v in parsed.items()}
            except (TypeError, ValueError) as exc:
                raise RewardInputError(f"Difficulty scores: {exc}") from None
        if isinstance(parsed, bool) or not isinstance(parsed, (int, float)):
            raise RewardInputError(
                "Difficulty must be a number (D in 1..10) or a JSON object of the five axis scores."
            )
        d = float(parsed)
    if not np.isfinite(d) or not 0 <= d <= 10:
        raise RewardInputError(f"Difficulty D must be between 1 and 10, got {d:g}.")
    return d


# --------------------------------------------------------------------------- examples as ground truth


def example_labels(examples: list[Example]) -> list[str]:
    """One dropdown entry per (example, expression): "name · expression text"."""
    return [f"{ex.name} · {e['text']}" for ex in examples for e in ex.expressions]


def find_expression(examples: list[Example], label: str) -> tuple[Example, dict]:
    for ex in examples:
        for e in ex.expressions:
            if f"{ex.name} · {e['text']}" == label:
                return ex, e
    raise RewardInputError(f"No bundled example is called {label!r}; pick one from the list.")


@dataclass
class GroundTruthFrame:
    """A bundled example's ground truth on one frame, in that frame's pixels."""

    frame_idx: int
    frame: np.ndarray  # (H, W, 3) RGB
    targets: list[dict[str, Any]]
    mask: np.ndarray  # (H, W) bool union of the expression's objects


def example_frame(ex: Example, expression: dict, frame_idx: int | None) -> GroundTruthFrame:
    """Targets (box = extreme pixels, centre point, negative point), mask and pixels of one frame;
    ``frame_idx`` None: the frame where the expression's objects show most."""
    from videoseg.io.video import open_video
    from videoseg.training.data import object_targets, target_frame_for

    ids = read_annotations(ex.annotations)
    obj_ids = [int(i) for i in expression["obj_ids"]]
    if frame_idx is None:
        frame_idx = target_frame_for(ids, obj_ids)
        if frame_idx is None:
            raise RewardInputError(f"The objects of “{expression['text']}” never show in {ex.name}.")
    if not 0 <= frame_idx < len(ids):
        raise RewardInputError(f"Frame {frame_idx} is outside {ex.name} (frames 0 to {len(ids) - 1}).")
    with open_video(ex.video) as video:
        frame = video.frames([frame_idx])[0]
    id_map = ids[frame_idx]
    if id_map.shape != frame.shape[:2]:
        id_map = cv2.resize(id_map, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_NEAREST)
    targets = object_targets(id_map, obj_ids)
    return GroundTruthFrame(
        frame_idx, frame, targets, np.isin(id_map, np.asarray(obj_ids, dtype=id_map.dtype))
    )


# --------------------------------------------------------------------------- scoring + drawing


def score_view(
    completion: str,
    gt: str,
    kind: str = "videoseg-r1",
    *,
    frame: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    difficulty: float | dict[str, float] | None = None,
    uncertainty: float = 0.0,
    n_tokens: int | None = None,
) -> RewardView:
    """Score ``completion`` against ``gt`` (strings as the official datasets store them) and lay the
    computation out; ``frame`` (RGB, answer-space pixels) gets the drawing, ``mask`` (H, W) bool is the
    target mask of the negative-point term. Pure: no UI, no files."""
    kind = rw.check_kind(kind)
    b = rw.breakdown(
        completion, gt, kind, mask=mask, difficulty=difficulty, uncertainty=uncertainty, n_tokens=n_tokens
    )
    view = RewardView(breakdown=b, gt=gt)
    if kind in ("visionreasoner", "videoseg-r1"):
        try:
            view.matching = rw.visionreasoner_matching(completion, gt)
        except Exception as exc:  # the official code's reasons for 0, told
            view.matching_error = why_accuracy_fails(completion, gt, exc)
        if kind == "videoseg-r1":
            negatives = rw.answer_negatives(completion)
            if mask is None:
                if negatives:
                    view.notes.append(
                        "No target mask: the negative points earn nothing (pick a bundled example)."
                    )
            else:
                for q, d in zip(negatives, rw.negative_distances(negatives, mask)):
                    earns = bool(mask.any() and d is not None and 0 < d <= rw.NEGATIVE_MAX_DISTANCE)
                    view.negatives.append({"point": q, "distance": d, "earns": earns})
    else:
        view.segzero = _segzero_details(completion, gt)
    if kind in ("pixelthink", "videoseg-r1"):
        if n_tokens is not None:
            what = "as counted by the caller"
        else:
            what = "words of the whole response" if kind == "pixelthink" else "words of the <think> part"
        view.notes.append(f"L_used = {b.length_used} ({what}).")
    if frame is not None:
        view.image = draw_view(frame, view, completion, mask)
    return view


def why_accuracy_fails(completion: str, gt: str, exc: Exception) -> str:
    """Words for the official accuracy's failure (it swallows every exception and scores 0)."""
    raw = f"{type(exc).__name__}: {exc}"[:200]
    try:
        gt_items = json.loads(gt)
    except (ValueError, RecursionError):
        return f"the ground truth is not JSON ({raw})"
    match = rw.ANSWER_PATTERN.search(completion)
    if not match:
        return "there is no <answer>…</answer> block"
    try:
        items = json.loads(match.group(1))
    except (ValueError, RecursionError):
        return (
            f"the answer is not strict JSON: no code fences, double quotes only, no trailing commas ({raw})"
        )
    if isinstance(gt_items, list) and not gt_items:
        return "the ground truth is empty (no target on this frame): any answer scores 0 there"
    if isinstance(items, list) and not items:
        return "the answer is an empty list: it scores 0, even against an empty ground truth"
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        return "the answer must be a JSON list of objects"
    if not all("bbox_2d" in i and "point_2d" in i for i in items):
        return "every answer item needs both bbox_2d and point_2d"
    return f"numpy cannot compare these boxes and points (lengths or types differ: {raw})"


def _segzero_details(completion: str, gt: str) -> dict[str, Any]:
    out: dict[str, Any] = {"iou": rw.segzero_box_iou(completion, gt), "points_distance": None}
    try:
        data = rw._segzero_answer(completion)
        gp = rw._segzero_gt_points(gt)
        p = [
            [int(data["points_1"][0]), int(data["points_1"][1])],
            [int(data["points_2"][0]), int(data["points_2"][1])],
        ]
        out["points_distance"] = rw.segzero_points_distance(p, gp)
        out["points"] = p
        out["box"] = data.get("bbox")
    except Exception:
        pass
    try:
        out["gt_box"] = rw._segzero_gt_box(gt)
        out["gt_points"] = rw._segzero_gt_points(gt)
    except Exception:
        pass
    return out


def _finite(values: Any, n: int) -> list[float] | None:
    try:
        out = [float(v) for v in np.asarray(values, dtype=float).reshape(-1)]
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(np.isfinite(out)) else None


DRAW_SIDE = 640  # small frames are enlarged to this long side so labels stay readable


def draw_view(frame: np.ndarray, view: RewardView, completion: str, mask: np.ndarray | None) -> np.ndarray:
    """The frame with the target mask tinted, the prediction in its target colours (box, + point,
    − negative points with their distance), the ground truth on top in white (box, ● point, "g<i>"),
    and a line from each predicted box centre to its matched ground truth, labelled and coloured by
    the criteria met (green 3/3 … red 0/3). Coordinates are the answer's own (the frame's pixels);
    a small frame is enlarged for drawing."""
    img = np.ascontiguousarray(frame[..., :3].astype(np.uint8))
    h, w = img.shape[:2]
    k = max(1.0, DRAW_SIDE / max(h, w))
    if k > 1:
        img = cv2.resize(img, (round(w * k), round(h * k)), interpolation=cv2.INTER_LINEAR)
    if mask is not None and mask.shape == (h, w) and mask.any():
        big = (
            cv2.resize(mask.astype(np.uint8), (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
            > 0
        )
        img = overlay_masks(img, big[None], alpha=0.25, contour=True, colour_offset=6)
    s = max(img.shape[:2]) / 640.0
    line = max(1, round(2 * s))
    font = 0.5 * max(s, 0.8)

    def pt(v: Sequence[float]) -> tuple[int, int]:
        return round(v[0] * k), round(v[1] * k)

    gt_boxes: list[list[float] | None] = []
    gt_points: list[list[float] | None] = []
    pred: list[TargetCues] = []
    if view.matching is not None:
        m = view.matching
        gt_boxes = [_finite(b, 4) for b in m.gt_boxes]
        gt_points = [_finite(p, 2) for p in m.gt_points]
        for i, (b, p) in enumerate(zip(m.pred_boxes, m.pred_points)):
            pred.append(TargetCues(box=_finite(b, 4), point=_finite(p, 2), obj_id=i + 1))
    elif view.segzero is not None:
        z = view.segzero
        if z.get("gt_box"):
            gt_boxes = [z["gt_box"]]
            gt_points = list(z.get("gt_points") or [])
        box = _finite(z.get("box"), 4) if z.get("box") is not None else None
        pts = z.get("points") or []
        pred.append(TargetCues(box=box, point=pts[0] if pts else None, obj_id=1))
        if len(pts) > 1:
            pred.append(TargetCues(point=pts[1], obj_id=1))
    else:
        try:
            for item in json.loads(view.gt):
                gt_boxes.append(_finite(item.get("bbox_2d"), 4))
                gt_points.append(_finite(item.get("point_2d"), 2))
        except (ValueError, AttributeError, TypeError, RecursionError):
            pass
    negs = [TargetCues(negatives=[n["point"]], obj_id=1) for n in view.negatives]
    shown = [c for c in pred if c.box is not None or c.point is not None] + negs
    # draw_cues orders an inverted box's corners for drawing only; the scores took it as written
    img = draw_cues(img, [c.scaled(k, k) for c in shown])
    for i, b in enumerate(gt_boxes):
        if b is None:
            continue
        cv2.rectangle(img, pt(b[:2]), pt(b[2:]), GT_COLOUR, 1, cv2.LINE_AA)
        _label(img, f"g{i + 1}", (pt(b[2:])[0] + 3, pt(b[2:])[1]), GT_COLOUR, font)
    for p in gt_points:
        if p is not None:
            cv2.circle(img, pt(p), max(3, round(4 * s)), (0, 0, 0), -1, cv2.LINE_AA)
            cv2.circle(img, pt(p), max(2, round(3 * s)), GT_COLOUR, -1, cv2.LINE_AA)
    if view.matching is not None:
        m = view.matching
        for p, g in m.pairs:
            pb, gb = _finite(m.pred_boxes[p], 4), _finite(m.gt_boxes[g], 4)
            if pb is None or gb is None:
                continue
            score = int(m.criteria[p, g])
            colour = MATCH_COLOURS.get(score, GT_COLOUR)
            a, c = pt(_centre(pb)), pt(_centre(gb))
            cv2.line(img, a, c, colour, line, cv2.LINE_AA)
            top = pt((min(pb[0], pb[2]), min(pb[1], pb[3])))
            _label(img, f"p{p + 1}-g{g + 1} {score}/3", (top[0], max(12, top[1] - 6)), colour, font)
    for n in view.negatives:
        text = "off image" if n["distance"] is None else f"{n['distance']:.0f}px"
        x, y = pt(n["point"])
        _label(
            img,
            text,
            (x + round(12 * s), y - round(8 * s)),
            MATCH_COLOURS[3] if n["earns"] else MATCH_COLOURS[0],
            font,
        )
    return img


def _label(
    img: np.ndarray, text: str, org: tuple[int, int], colour: tuple[int, int, int], font: float
) -> None:
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, font, colour, 1, cv2.LINE_AA)


def _centre(box: Sequence[float]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def blank_canvas(gt: str, completion: str) -> np.ndarray:
    """A dark canvas large enough for every coordinate in the texts (no frame given)."""
    numbers = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", gt + " " + completion)[:2000]]
    side = int(min(max([64.0, *[abs(v) for v in numbers]]) * 1.1, 2048))
    return np.full((side, side, 3), 40, dtype=np.uint8)


# --------------------------------------------------------------------------- the endpoint


def reward_endpoint(
    ctx: Any,
    completion: str | None,
    ground_truth: str | None = None,
    example: str | None = None,
    frame: float | str | None = None,
    difficulty: Any = None,
    kind: str | None = "videoseg-r1",
    uncertainty: float | None = 0.0,
) -> tuple[str, np.ndarray | None, dict[str, Any]]:
    """(markdown, picture, breakdown dict) for the UI and the ``reward`` API; bad input -> a message."""
    try:
        text = check_completion(completion)
        kind = rw.check_kind(kind or "videoseg-r1")
        d = parse_difficulty(difficulty)
        u = float(uncertainty or 0.0)
        if not np.isfinite(u) or not 0 <= u <= 1:
            raise RewardInputError(f"Uncertainty must be between 0 and 1, got {u:g}.")
        gt_text = (ground_truth or "").strip()
        picture = mask = None
        note = None
        if example and example != NO_EXAMPLE:
            ex, expression = find_expression(ctx.examples, example)
            idx = None if frame is None or str(frame).strip() == "" else _frame_index(frame)
            g = example_frame(ex, expression, idx)
            picture, mask = g.frame, g.mask
            if not gt_text:
                gt_text = rw.row_solution({"targets": g.targets}, kind)
            note = f"Ground truth: {ex.name}, “{expression['text']}”, frame {g.frame_idx} (frame pixels)."
        elif not gt_text:
            raise RewardInputError("Give the ground truth (JSON or Seg-Zero text) or pick a bundled example.")
        gt_text = check_gt(gt_text, kind)
        view = score_view(
            text,
            gt_text,
            kind,
            frame=picture if picture is not None else blank_canvas(gt_text, text),
            mask=mask,
            difficulty=d,
            uncertainty=u,
        )
        if note:
            view.notes.insert(0, note)
        return view.markdown(), view.image, view.to_dict()
    except (RewardInputError, ValueError) as exc:
        return f"### ❌ {html.escape(str(exc))}", None, {"error": str(exc)}


def _frame_index(frame: Any) -> int:
    try:
        f = float(frame)
    except (TypeError, ValueError):
        raise RewardInputError(f"Frame must be a whole number, got {frame!r}.") from None
    if not np.isfinite(f) or f != round(f):
        raise RewardInputError(f"Frame must be a whole number, got {frame!r}.")
    return int(f)


# --------------------------------------------------------------------------- a run's own reward


def run_profile(state: Any) -> Any | None:
    """The reasoner profile the run was configured with (``videoseg.reasoning.profiles``), or None."""
    name = state.config.get("profile")
    if not name:
        return None
    try:
        from videoseg.reasoning.profiles import get_profile

        return get_profile(str(name))
    except (ImportError, ValueError):
        return None


def answer_size_of_run(state: Any) -> tuple[int, int]:
    """(width, height) of the space the run's reasoner answered in: the frame for a weights-free
    reasoner; else its profile's answer space (840 x 840 for VisionReasoner / Seg-Zero, Qwen2.5-VL's
    smart resize with the processor defaults otherwise: the trace does not record the loaded
    processor's pixel limits)."""
    width, height = int(state.video.get("width") or 0), int(state.video.get("height") or 0)
    backend = state.backends.get("reasoner")
    if backend is None or backend.weights_free or not backend.model_id:
        return width, height
    profile = run_profile(state)
    if profile is not None:
        return tuple(profile.answer_size(width, height))  # type: ignore[return-value]
    from videoseg.reasoning import qwen

    if qwen.uses_fixed_answer_size(backend.model_id):
        return qwen.FIXED_REASONER_SIZE
    return qwen.qwen_answer_space(width, height, factor=28, min_pixels=56 * 56, max_pixels=28 * 28 * 1280)


def run_reward_kind(state: Any) -> str:
    """The reward that matches the run's answer schema: Seg-Zero's for a Seg-Zero profile (its answer
    is one ``{"bbox", "points_1", "points_2"}``), the paper's otherwise."""
    profile = run_profile(state)
    return "segzero" if getattr(profile, "answer_schema", "") == "seg-zero" else "videoseg-r1"


def run_reward(ctx: Any, record: dict[str, Any] | None) -> tuple[str, np.ndarray | None]:
    """The training reward of a finished run's completion against the bundled example's ground truth
    on the frame the reasoner looked at (the paper's; Seg-Zero's for a Seg-Zero-profile run);
    ("", None) when there is nothing to score (no run, no ground truth, no completion)."""
    if not record or not record.get("trace"):
        return "", None
    try:
        from videoseg.core.state import RunState
        from videoseg.core.trace import read_trace
        from videoseg.training.data import object_targets

        state = RunState.from_events(read_trace(record["trace"]))
        ex = match_example(record.get("video") or "", ctx.examples)
        expression = ex.expression_for(state.query or record.get("query", "")) if ex is not None else None
        if expression is None or state.reasoning is None:
            return "", None
        idx = (
            int(state.cues[0].get("frame_idx", 0))
            if state.cues
            else (state.sampler_result.target_frame if state.sampler_result else None)
        )
        if idx is None:
            return "", None
        g = example_frame(ex, expression, idx)
        aw, ah = answer_size_of_run(state)
        frame, mask = g.frame, g.mask
        targets = g.targets
        if (aw, ah) != (frame.shape[1], frame.shape[0]):
            from videoseg.training.data import to_answer_space

            ids = read_annotations(ex.annotations)[idx]
            frame, ids = to_answer_space(frame, ids, (aw, ah))
            obj_ids = [int(i) for i in expression["obj_ids"]]
            targets = object_targets(ids, obj_ids)
            mask = np.isin(ids, np.asarray(obj_ids, dtype=ids.dtype))
        d = state.difficulty
        kind = run_reward_kind(state)
        view = score_view(
            state.reasoning.raw_text,
            rw.row_solution({"targets": targets}, kind),
            kind,
            frame=frame,
            mask=mask,
            difficulty=None if d is None else d.difficulty,
            n_tokens=state.reasoning.think_tokens,
        )
        view.notes.insert(
            0,
            f"The run's own completion against {ex.name}, “{expression['text']}”, frame {idx} "
            f"(answer space {aw}×{ah}); L_used = the reasoner's think tokens, D = its difficulty rating.",
        )
        return view.markdown(), view.image
    except Exception as exc:  # decoration after a run: never break the run view
        return f"_The reward of this run could not be computed: {html.escape(str(exc))}_", None


def attach_run_reward(ctx: Any, finished: list[Any], last_run: gr.State) -> dict[str, Any]:
    """Under the Run tab: a panel, hidden until a run on a bundled example ends, then shown open with
    :func:`run_reward`'s breakdown (hidden again after a run with nothing to score)."""
    with gr.Accordion(
        "Training reward of this run (the paper's GRPO reward vs the example's ground truth)",
        open=True,
        visible=False,
    ) as panel:
        md = gr.Markdown("")
        image = gr.Image(
            label="Matching: prediction (colours) vs ground truth (white)", type="numpy", interactive=False
        )

    def show(record: dict[str, Any] | None) -> tuple[Any, str, np.ndarray | None]:
        text, picture = run_reward(ctx, record)
        return gr.Accordion(visible=bool(text), open=True), text, picture

    for dep in finished:
        dep.then(show, inputs=last_run, outputs=[panel, md, image], api_visibility="private")
    return {"panel": panel, "markdown": md, "image": image, "show": show}


EXAMPLE_COMPLETION = (
    "<think>The query names the red triangle. It is left of the blue square.</think>"
    '<answer>[{"bbox_2d": [10, 10, 40, 40], "point_2d": [25, 25], "neg_point_2d": [50, 25]}]</answer>'
)


def starter_completion(examples: list[Example], label: str) -> str:
    """A completion to start from on the first bundled example: its target found with a box 4 px off
    and the right centre and negative points, plus a wrong extra target (accuracy 3 / 2 = 1.5: an
    extra prediction dilutes the matched score); the static one when the example cannot be read."""
    try:
        ex, expression = find_expression(examples, label)
        t = example_frame(ex, expression, None).targets[0]
    except Exception:  # a starter text only: never stop the explorer from opening
        return EXAMPLE_COMPLETION
    x1, y1, x2, y2 = t["bbox_2d"]
    item = {"bbox_2d": [x1 + 4, y1 + 4, x2 + 4, y2 + 4], "point_2d": t["point_2d"]}
    if "neg_point_2d" in t:
        item["neg_point_2d"] = t["neg_point_2d"]
    extra = {"bbox_2d": [5, 5, 25, 25], "point_2d": [15, 15]}
    return (
        f"<think>The query asks for {expression['text']}. I find it in the frame. "
        "There may be a second one in the corner.</think>"
        f"<answer>{json.dumps([item, extra])}</answer>"
    )


def build_reward_tab(ctx: Any) -> dict[str, Any]:
    """Build the tab inside the current Blocks; returns its components by name."""
    labels = example_labels(ctx.examples)
    starter = starter_completion(ctx.examples, labels[0]) if labels else EXAMPLE_COMPLETION
    gr.Markdown(
        "Score any reasoning chain the way GRPO training scores it: the official VisionReasoner, "
        "Seg-Zero and PixelThink rewards, and the paper's (VisionReasoner + negative points, times the "
        "soft length factor). Pick a bundled example (its annotation gives the targets and the mask) "
        "or paste a ground truth."
    )
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=320):
            completion = gr.Textbox(
                label="Completion", lines=8, value=starter, max_length=MAX_COMPLETION_CHARS
            )
            ground_truth = gr.Textbox(
                label="Ground truth (blank: from the example)",
                lines=3,
                placeholder='[{"bbox_2d": [x1, y1, x2, y2], "point_2d": [x, y]}]  or  <box>(x1,y1),(x2,y2)</box><points>(x1,y1),(x2,y2)</points>',
            )
            with gr.Row():
                example = gr.Dropdown(
                    choices=[NO_EXAMPLE, *labels],
                    value=labels[0] if labels else NO_EXAMPLE,
                    label="Bundled example",
                    allow_custom_value=True,
                )
                # a Textbox, not a Number: a Number shows and sends 0 for "blank"
                frame = gr.Textbox(label="Frame (blank: where the target shows most)", value="")
            with gr.Row():
                # custom values reach reward_endpoint, which names the known kinds in its message
                kind = gr.Dropdown(
                    choices=list(rw.KINDS), value="videoseg-r1", label="Reward", allow_custom_value=True
                )
                difficulty = gr.Textbox(
                    label="Difficulty D (1..10) or the five axis scores as JSON",
                    value="2.5",
                    info='e.g. 4.2 or {"scene": 3, "segmentation": 4, "temporal": 2, "motion": 3, "linguistic": 5}',
                )
                uncertainty = gr.Number(label="Uncertainty (PixelThink, 0..1)", value=0.0)
            score_btn = gr.Button("Score", variant="primary")
        with gr.Column(scale=3, min_width=320):
            summary = gr.Markdown("")
            picture = gr.Image(
                label="Matching: prediction (colours) vs ground truth (white)",
                type="numpy",
                interactive=False,
            )
            details = gr.JSON(label="Breakdown")

    def reward(
        completion: str,
        ground_truth: str = "",
        example: str = NO_EXAMPLE,
        frame: str | None = None,
        difficulty: str = "",
        kind: str = "videoseg-r1",
        uncertainty: float = 0.0,
    ) -> tuple[str, Any, dict[str, Any]]:
        return reward_endpoint(ctx, completion, ground_truth, example, frame, difficulty, kind, uncertainty)

    score_btn.click(
        reward,
        inputs=[completion, ground_truth, example, frame, difficulty, kind, uncertainty],
        outputs=[summary, picture, details],
        api_name="reward",
    )
    return {
        "completion": completion,
        "ground_truth": ground_truth,
        "example": example,
        "frame": frame,
        "kind": kind,
        "difficulty": difficulty,
        "uncertainty": uncertainty,
        "score": score_btn,
        "summary": summary,
        "picture": picture,
        "details": details,
    }


__all__ = [
    "MAX_COMPLETION_CHARS",
    "RewardInputError",
    "RewardView",
    "attach_run_reward",
    "build_reward_tab",
    "example_frame",
    "parse_difficulty",
    "reward_endpoint",
    "run_reward",
    "score_view",
]
