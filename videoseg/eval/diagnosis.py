"""Failure analysis for the Inspect tab: score recorded runs against ground truth, rank expressions by
J&F, find the worst frames, and say which paper stage most likely went wrong.

The stage heuristics follow the pipeline's order, the first that fires wins:

1. sampler (step 1): the target frame lies outside the frames where the ground truth is present;
2. reasoner (step 2): no usable cues, or the cue boxes overlap the ground-truth boxes on the target
   frame by IoU < ``box_iou_min``;
3. segmenter (step 3a): the keyframe mask has IoU < ``mask_iou_min`` with the ground truth there;
4. propagator (step 3b): the keyframe is good but J&F over the video is < ``jf_ok`` (decay);
5. otherwise the run is fine (J&F >= ``jf_ok``).

Predictions come from traces (``*.jsonl``, full stage information) or from folders of PNG masks
(``pred/<expression id>/%05d.png``; only the propagation view is possible then).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from videoseg.core.masks import decode_rle, mask_box, union_stack
from videoseg.core.state import RunState
from videoseg.core.trace import read_trace

BOX_IOU_MIN = 0.5
MASK_IOU_MIN = 0.5
JF_OK = 0.7


def box_of(mask: np.ndarray) -> list[float] | None:
    """[x1, y1, x2, y2] (inclusive pixel edges as floats) of a (H, W) bool mask, None if empty."""
    box = mask_box(mask)  # the one mask-to-box rule (videoseg.core.masks)
    return None if box is None else [float(v) for v in box]


def box_iou(a: Sequence[float] | None, b: Sequence[float] | None) -> float:
    """IoU of two [x1, y1, x2, y2] boxes in pixel units (edges inclusive); 0 when either is None."""
    if a is None or b is None:
        return 0.0
    ix = min(a[2], b[2]) - max(a[0], b[0]) + 1
    iy = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return float(inter / (area_a + area_b - inter))


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool masks; 1 when both are empty (the benchmarks' convention for J)."""
    union = np.logical_or(a, b).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(a, b).sum() / union)


def cue_box_score(pred_boxes: Sequence[Sequence[float] | None], gt_boxes: Sequence[Sequence[float]]) -> float:
    """Mean over ground-truth objects of the best IoU with any predicted cue box (0 without boxes)."""
    if not gt_boxes:
        return 0.0
    return float(np.mean([max((box_iou(p, g) for p in pred_boxes), default=0.0) for g in gt_boxes]))


@dataclass
class Diagnosis:
    stage: str  # "sampler" | "reasoner" | "segmenter" | "propagator" | "ok" | "unknown"
    reason: str


def diagnose(
    jf: Sequence[float],
    gt_present: Sequence[bool],
    target_frame: int | None,
    cue_box_iou: float | None,
    keyframe_iou: float | None,
    has_cues: bool = True,
    box_iou_min: float = BOX_IOU_MIN,
    mask_iou_min: float = MASK_IOU_MIN,
    jf_ok: float = JF_OK,
) -> Diagnosis:
    """The stage most likely at fault (see the module docstring). ``None`` values mean "not known"
    (predictions without a trace), and those checks are skipped."""
    mean = float(np.mean(jf)) if len(jf) else 0.0
    present = [i for i, p in enumerate(gt_present) if p]
    if target_frame is not None and present and not gt_present[target_frame]:
        return Diagnosis(
            "sampler",
            f"target frame {target_frame} is outside the frames where the target is "
            f"present ({present[0]}–{present[-1]}, {len(present)} frames)",
        )
    if target_frame is not None and not has_cues and present:
        return Diagnosis("reasoner", "the reasoner gave no usable cues (parse error or empty answer)")
    if cue_box_iou is not None and present and cue_box_iou < box_iou_min:
        return Diagnosis(
            "reasoner",
            f"cue box IoU with the ground truth on the target frame is {cue_box_iou:.2f} (< {box_iou_min})",
        )
    if keyframe_iou is not None and keyframe_iou < mask_iou_min:
        return Diagnosis(
            "segmenter",
            f"keyframe mask IoU with the ground truth is {keyframe_iou:.2f} "
            f"(< {mask_iou_min}) although the cues were right",
        )
    if mean < jf_ok:
        if target_frame is not None and 0 <= target_frame < len(jf):
            return Diagnosis(
                "propagator",
                f"J&F falls from {jf[target_frame]:.2f} on the keyframe "
                f"to a mean of {mean:.2f} over the video",
            )
        return Diagnosis("unknown", f"J&F is {mean:.2f}; without a trace the failing stage is unknown")
    return Diagnosis("ok", f"J&F {mean:.2f} ≥ {jf_ok}")


def worst_frames(jf: Sequence[float], count: int = 4) -> list[int]:
    """Indices of the ``count`` lowest J&F frames, worst first (ties: earlier frame first)."""
    order = sorted(range(len(jf)), key=lambda i: (jf[i], i))
    return order[:count]


@dataclass
class Case:
    """One expression with ground truth and a prediction (a trace or a PNG folder)."""

    gt_dir: Path  # folder with Annotations/ and expressions.json (and usually video.mp4)
    expression: dict[str, Any]
    trace: Path | None = None
    pred_dir: Path | None = None

    @property
    def label(self) -> str:
        return f"{self.gt_dir.name} · {self.expression.get('id')} · {self.expression['text']}"


@dataclass
class CaseResult:
    case: Case
    scores: dict[str, list[float]]
    mean: dict[str, float]
    target_frame: int | None
    cue_box_iou: float | None
    keyframe_iou: float | None
    diagnosis: Diagnosis
    worst: list[int] = field(default_factory=list)


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _trace_header(path: Path) -> dict[str, Any] | None:
    try:
        with path.open(encoding="utf-8") as f:
            first = json.loads(f.readline())
    except (OSError, ValueError):
        return None
    return first if isinstance(first, dict) and first.get("type") == "run_started" else None


def _json_kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}
    return names.get(type(value), "a number")


def _expression_problem(item: Any, seen_ids: set[str]) -> str | None:
    """Why one entry of ``expressions.json`` cannot be used (None when it can)."""
    if not isinstance(item, dict):
        return f'it must be an object with "text" and "obj_ids", not {_json_kind(item)}'
    for key in ("text", "obj_ids"):
        if key not in item:
            return f'"{key}" is missing'
    if not isinstance(item["text"], str) or not item["text"].strip():
        return f'"text" must be a non-empty string, not {_json_kind(item["text"])}'
    ids = item["obj_ids"]
    # object ids are the values of the Annotations PNGs (uint8, 0 is the background)
    if (
        not isinstance(ids, list)
        or not ids
        or not all(isinstance(o, int) and not isinstance(o, bool) and 1 <= o <= 255 for o in ids)
    ):
        shown = json.dumps(ids)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        return f'"obj_ids" must be a non-empty list of object ids 1 to 255, not {shown}'
    if "id" in item:
        if isinstance(item["id"], bool) or not isinstance(item["id"], (str, int)):
            return f'"id" must be a string or a number, not {_json_kind(item["id"])}'
        if str(item["id"]) in seen_ids:  # pred/<id>/ would be ambiguous
            return f'"id" {str(item["id"])!r} is used twice'
    return None


def read_expressions(path: Path, name: str | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """(usable expressions, problems) of an ``expressions.json``: a list of objects with ``text``
    and ``obj_ids`` (``id`` optional). A file that cannot be read gives no expressions; each
    problem names the file (as ``name``, e.g. its path inside an uploaded zip) and what is wrong."""
    name = name or path.name
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        return [], [f"{name} is not UTF-8 text"]
    except json.JSONDecodeError as exc:
        return [], [f"{name} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"]
    except OSError as exc:
        return [], [f"{name} cannot be read ({exc.strerror or type(exc).__name__})"]
    if not isinstance(data, list):
        return [], [f"{name} must be a JSON list of expressions, not {_json_kind(data)}"]
    if not data:
        return [], [f"{name} lists no expression"]
    good, problems, seen = [], [], set()
    for i, item in enumerate(data, 1):
        problem = _expression_problem(item, seen)
        if problem is None:
            good.append(item)
            if "id" in item:
                seen.add(str(item["id"]))
        else:
            problems.append(f"{name}: expression {i}: {problem}")
    return good, problems


def collect_cases(
    root: Path, extra_traces: Sequence[Path] = (), problems: list[str] | None = None
) -> list[Case]:
    """Cases under ``root``: every folder with ``expressions.json`` + ``Annotations/``, matched with
    traces below it (or in ``extra_traces``, matched by the recorded video's folder name) whose query
    is one of its expressions, and with ``pred/<expression id>/`` PNG folders. What is wrong with an
    ``expressions.json`` (named by its path under ``root``) is appended to ``problems``."""
    gt_dirs = [
        p.parent for p in sorted(root.rglob("expressions.json")) if (p.parent / "Annotations").is_dir()
    ]
    cases: list[Case] = []
    expressions: dict[Path, list[dict[str, Any]]] = {}
    for d in gt_dirs:
        path = d / "expressions.json"
        items, found = read_expressions(path, path.relative_to(root).as_posix())
        if problems is not None:
            problems.extend(found)
        if items:
            expressions[d] = items
    traces = [(t, None) for t in sorted(root.rglob("*.jsonl"))] + [(t, None) for t in extra_traces]
    for trace, _ in traces:
        head = _trace_header(trace)
        if head is None:
            continue
        owner = next(
            (d for d in sorted(expressions, key=lambda p: -len(p.parts)) if d in trace.parents), None
        )
        if owner is None:
            video_dir = Path(str((head.get("video") or {}).get("path") or "")).parent.name
            owner = next((d for d in expressions if d.name == video_dir), None)
        if owner is None:
            continue
        match = next(
            (e for e in expressions[owner] if _norm(e["text"]) == _norm(head.get("query", ""))), None
        )
        if match is not None:
            cases.append(Case(owner, match, trace=trace))
    for d, items in expressions.items():
        for e in items:
            pred = d / "pred" / str(e.get("id"))
            if pred.is_dir() and any(pred.glob("*.png")):
                cases.append(Case(d, e, pred_dir=pred))
    return cases


def load_prediction(case: Case, num_frames: int, size: tuple[int, int]) -> tuple[np.ndarray, RunState | None]:
    """((T, H, W) bool union over targets, the trace's folded state or None)."""
    h, w = size
    if case.trace is not None:
        state = RunState.from_events(read_trace(case.trace))
        return union_stack(state.masks, num_frames, h, w), state
    from videoseg.io.video import read_mask_pngs

    pred_ids = read_mask_pngs(case.pred_dir)
    if pred_ids.shape != (num_frames, h, w):
        raise ValueError(
            f"{case.label}: predictions {pred_ids.shape} do not match ground truth {(num_frames, h, w)}"
        )
    return pred_ids > 0, None


def analyse(case: Case) -> CaseResult:
    """Score one case and diagnose it."""
    from videoseg.io.video import read_mask_pngs
    from videoseg.viz.curves import per_frame_scores, summarise

    ids = read_mask_pngs(case.gt_dir / "Annotations")
    obj_ids = np.asarray(case.expression["obj_ids"], dtype=np.uint8)
    gt = np.isin(ids, obj_ids)
    pred, state = load_prediction(case, len(gt), gt.shape[1:])
    scores = per_frame_scores(pred, gt)
    present = gt.reshape(len(gt), -1).any(axis=1).tolist()
    target = cue_iou = key_iou = None
    has_cues = True
    if state is not None:
        if state.sampler_result is not None:
            target = state.sampler_result.target_frame
        elif state.keyframe is not None:
            target = state.keyframe
        if target is not None and 0 <= target < len(gt):
            has_cues = bool(state.cues)
            gt_boxes = [b for b in (box_of(ids[target] == o) for o in obj_ids) if b is not None]
            pred_boxes = [c.get("box") for c in (state.cues or [])]
            cue_iou = cue_box_score(pred_boxes, gt_boxes) if gt_boxes else None
            if state.keyframe_masks:
                key = np.zeros(gt.shape[1:], dtype=bool)
                for e in state.keyframe_masks.values():
                    m = decode_rle(e.rle)
                    if m.shape == key.shape:
                        key |= m
                key_iou = mask_iou(key, gt[target])
        else:
            target = None
    diagnosis = diagnose(scores["J&F"], present, target, cue_iou, key_iou, has_cues=has_cues)
    return CaseResult(
        case, scores, summarise(scores), target, cue_iou, key_iou, diagnosis, worst_frames(scores["J&F"])
    )


# --------------------------------------------------------------------------- per-propagator drift

DRIFT_IOU = 0.5  # a frame whose mask overlaps the previous frame's by less than this has jumped


@dataclass
class TrackDiagnosis:
    """How a run's masks evolve over the video (paper step 3b): where a propagator starts to drift.

    ``areas``: pixels of the targets' union per frame; ``iou_prev``: IoU of each frame's union with the
    previous frame's (None for frame 0; 1 when both are empty, as J); ``drift_frame``: the first frame
    (walking away from the keyframe on each side, the earliest of the two in time) whose IoU with its
    neighbour towards the keyframe is below ``DRIFT_IOU``, None when none is; ``worst_frame``: the frame
    with the lowest J&F when ground truth is given, else the largest jump (lowest ``iou_prev``);
    ``frames_per_second`` and ``peak_memory_mb`` from the propagator's stage timing when it reported them.
    """

    areas: list[int]
    iou_prev: list[float | None]
    keyframe: int | None
    drift_frame: int | None
    worst_frame: int | None
    worst_reason: str
    frames_per_second: float | None = None
    peak_memory_mb: float | None = None
    jf: list[float] | None = None


def track_diagnosis(
    masks: np.ndarray,
    keyframe: int | None = None,
    gt: np.ndarray | None = None,
    timing: dict[str, Any] | None = None,
    drift_iou: float = DRIFT_IOU,
) -> TrackDiagnosis:
    """Diagnose a (T, H, W) bool union of a run's masks (see :class:`TrackDiagnosis`).

    ``gt``: (T, H, W) bool ground truth, for the worst frame by J&F; ``timing``: the propagator's
    ``StageTiming.details`` (``frames_per_second``, ``peak_cuda_mb`` or ``peak_rss_mb``)."""
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"expected (T, H, W) masks, got {masks.shape}")
    num_frames = len(masks)
    areas = [int(m.sum()) for m in masks]
    iou_prev: list[float | None] = [None] + [mask_iou(masks[i - 1], masks[i]) for i in range(1, num_frames)]
    key = keyframe if keyframe is not None and 0 <= keyframe < num_frames else 0
    drift = _first_drift(iou_prev, key, drift_iou)
    jf: list[float] | None = None
    worst: int | None = None
    reason = "no frames"
    if gt is not None:
        from videoseg.viz.curves import per_frame_scores

        jf = per_frame_scores(masks, gt)["J&F"]
        worst = int(np.argmin(jf)) if jf else None
        reason = "lowest J&F against the ground truth"
    elif num_frames > 1:
        jumps = [v if v is not None else 2.0 for v in iou_prev]
        worst = int(np.argmin(jumps))
        reason = "largest change from the previous frame (lowest IoU with it)"
    elif num_frames == 1:
        worst, reason = 0, "the only frame"
    timing = timing or {}
    fps = timing.get("frames_per_second")
    peak = timing.get("peak_cuda_mb", timing.get("peak_rss_mb"))
    return TrackDiagnosis(
        areas=areas,
        iou_prev=iou_prev,
        keyframe=keyframe,
        drift_frame=drift,
        worst_frame=worst,
        worst_reason=reason,
        frames_per_second=None if fps is None else float(fps),
        peak_memory_mb=None if peak is None else float(peak),
        jf=jf,
    )


def _first_drift(iou_prev: list[float | None], keyframe: int, drift_iou: float) -> int | None:
    """The earliest frame, walking away from the keyframe on each side, whose overlap with its
    neighbour towards the keyframe is below ``drift_iou`` (propagation runs outwards from it)."""
    found: list[int] = []
    for i in range(keyframe + 1, len(iou_prev)):  # forward: frame i vs i - 1
        if (iou_prev[i] or 0.0) < drift_iou:
            found.append(i)
            break
    for i in range(keyframe - 1, -1, -1):  # backward: frame i vs i + 1 (= iou_prev[i + 1])
        if (iou_prev[i + 1] or 0.0) < drift_iou:
            found.append(i)
            break
    if not found:
        return None
    return min(found, key=lambda i: abs(i - keyframe))


def diagnose_run(state: RunState, gt: np.ndarray | None = None) -> TrackDiagnosis:
    """:func:`track_diagnosis` of a run's event-folded state (union of its targets per frame)."""
    width, height = int(state.video.get("width") or 0), int(state.video.get("height") or 0)
    if (not width or not height) and len(state.masks):
        height, width = state.masks[next(iter(state.masks))].shape[1:]
    masks = union_stack(state.masks, state.num_frames, height, width)
    return track_diagnosis(masks, state.keyframe, gt=gt, timing=state.timing_details.get("propagator"))


__all__ = [
    "DRIFT_IOU",
    "Case",
    "CaseResult",
    "Diagnosis",
    "TrackDiagnosis",
    "analyse",
    "box_iou",
    "box_of",
    "collect_cases",
    "cue_box_score",
    "diagnose",
    "diagnose_run",
    "mask_iou",
    "read_expressions",
    "track_diagnosis",
    "worst_frames",
]
