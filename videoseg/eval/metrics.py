"""Benchmark scores (paper: Experiments): J, F, J&F, ReVOS robustness R, per-expression aggregation,
and the image scores gIoU / cIoU.

Each function reproduces a named reference evaluation exactly, so numbers computed here can be put
beside the numbers the paper and its peers report:

- :func:`jaccard`, :func:`boundary_f`, :func:`db_statistics`, :func:`jf_summary`: the DAVIS 2017
  evaluation toolkit (``davisvideochallenge/davis2017-evaluation``, ``davis2017/metrics.py``:
  ``db_eval_iou``, ``db_eval_boundary`` / ``f_measure`` / ``_seg2bmap``; ``davis2017/utils.py``:
  ``db_statistics``). MeViS and ReVOS score with copies of the same functions.
- :func:`robustness`, :func:`expression_scores`, :func:`aggregate_expressions`: the ReVOS / MeViS
  evaluation scripts (VISA ``tools/eval_revos.py``, ``tools/eval_mevis.py``, ``tools/metrics.py``).
- :func:`image_iou`, :func:`giou`, :func:`ciou`: LISA's ``validate()`` (ReasonSeg gIoU, refCOCO cIoU).

The toolkit builds each boundary map from several full-frame numpy temporaries and dilates the whole
frame by a disk; here J is vectorised over all frames, the boundary map is one 2x2 min/max filter in
OpenCV, the disk dilation is done as the union of a few rectangle dilations (the same pixels, ~3x
cheaper) and only on the bounding box of the boundary pixels. ``bench/bench_metrics.py`` prints the
speed-up; ``tests/eval/test_metrics.py`` checks equality with a literal re-implementation of the toolkit
(``tests/davis_reference.py``).

Masks: ``(T, H, W)`` (or a single ``(H, W)`` frame, scored as ``T = 1``) arrays; any non-zero value is
foreground, as in the toolkit (it casts with ``astype(bool)``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

BOUND_TH = 0.008
"""DAVIS boundary tolerance: a fraction of the image diagonal (< 1) or, if >= 1, pixels."""

EXPRESSION_TYPES = ("referring", "reasoning")

_LISA_IOU_EPS = 1e-5  # LISA: intersection / (union + 1e-5) per mask
_LISA_COUNT_EPS = 1e-5  # LISA AverageMeter.all_reduce: sum / (count + 1e-5)
_LISA_CIOU_EPS = 1e-10  # LISA: total intersection / (total union + 1e-10)
_REVOS_R_EPS = 1e-6  # ReVOS: |pred outside GT| / (|foreground| + 1e-6)

# 2x2 window {p, east, south, south-east}: anchor (0, 0) puts p at the window's top-left corner.
_QUAD = np.ones((2, 2), dtype=np.uint8)


# --------------------------------------------------------------------------------------------- input


def _as_masks(name: str, masks: Any) -> np.ndarray:
    """Any (H, W) / (T, H, W) array -> (T, H, W) C-contiguous bool (non-zero = foreground)."""
    arr = np.asarray(masks)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"{name}: expected a (T, H, W) or (H, W) mask array, got shape {arr.shape}")
    if arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ValueError(f"{name}: frames have no pixels (shape {arr.shape})")
    if arr.dtype != bool:
        if not np.issubdtype(arr.dtype, np.number):
            raise ValueError(f"{name}: expected a numeric or bool mask array, got dtype {arr.dtype}")
        arr = arr != 0
    return np.ascontiguousarray(arr)


def _same_shape(**arrays: np.ndarray) -> None:
    shapes = {name: a.shape for name, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        described = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"mask shapes differ: {described}")


def _pred_gt_void(pred: Any, gt: Any, void: Any | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    p = _as_masks("pred", pred)
    g = _as_masks("gt", gt)
    if void is None:
        _same_shape(pred=p, gt=g)
        return p, g, None
    v = _as_masks("void", void)
    _same_shape(pred=p, gt=g, void=v)
    return p, g, v


def _count(masks: np.ndarray) -> np.ndarray:
    """(T, H, W) bool -> (T,) int64 number of True pixels per frame."""
    return np.count_nonzero(masks, axis=(1, 2)).astype(np.int64)


# ------------------------------------------------------------------------------------------------- J


def jaccard(pred: Any, gt: Any, void: Any | None = None) -> np.ndarray:
    """Region similarity J per frame: ``|pred & gt| / |pred | gt|``, void pixels left out of both.

    A frame whose union is empty scores 1 (toolkit: ``j[np.isclose(union, 0)] = 1``; the union is an
    integer count, so that is ``union == 0``).

    Args:
        pred, gt: (T, H, W) or (H, W) masks.
        void: optional masks of the same shape; pixels set there count for nothing.
    Returns:
        (T,) float64.
    """
    p, g, v = _pred_gt_void(pred, gt, void)
    inter_px = p & g
    union_px = p | g
    if v is not None:
        keep = ~v
        inter_px &= keep
        union_px &= keep
    inter = _count(inter_px)
    union = _count(union_px)
    j = np.ones(len(p), dtype=np.float64)
    has_union = union > 0
    j[has_union] = inter[has_union] / union[has_union]
    return j


# ------------------------------------------------------------------------------------------------- F


def boundary_tolerance(height: int, width: int, bound_th: float = BOUND_TH) -> float:
    """The toolkit's ``bound_pix``: ``bound_th`` itself if >= 1, else ``ceil(bound_th * diagonal)``.

    480x854 (DAVIS 480p) -> 8 px. The diagonal is taken with ``np.linalg.norm`` as the toolkit does, so
    the ceiling agrees with it to the last bit.
    """
    if not math.isfinite(bound_th) or bound_th < 0:
        raise ValueError(f"bound_th must be a finite number >= 0, got {bound_th!r}")
    if bound_th >= 1:
        return float(bound_th)
    return float(np.ceil(bound_th * np.linalg.norm((height, width))))


def disk_footprint(radius: float) -> np.ndarray:
    """``skimage.morphology.disk(radius)`` as uint8, built without scikit-image.

    Offsets run over ``arange(-radius, radius + 1)`` on both axes and a cell is set when
    ``dx^2 + dy^2 <= radius^2``. For a non-integer radius (``bound_th >= 1`` given as e.g. 2.5) that
    grid is even-sized and off-centre; the toolkit hands it to ``cv2.dilate`` with the default anchor
    and so do we, so even that case matches.
    """
    if not math.isfinite(radius) or radius < 0:
        raise ValueError(f"disk radius must be a finite number >= 0, got {radius!r}")
    offsets = np.arange(-radius, radius + 1)
    dy, dx = np.meshgrid(offsets, offsets, indexing="ij")
    return (dx**2 + dy**2 <= radius**2).astype(np.uint8)


def _frame_boundary(frame: np.ndarray) -> np.ndarray:
    """(H, W) uint8 0/1 -> (H, W) uint8 0/1 boundary map, the toolkit's ``_seg2bmap`` rule.

    ``_seg2bmap`` marks p when it differs from its east, south or south-east neighbour; on the last
    row only the east neighbour is compared, on the last column only the south one, and the bottom-
    right pixel is never a boundary. That is exactly "the 2x2 window starting at p is not constant"
    with the image edge replicated outwards (a replicated neighbour always equals p or its east /
    south neighbour), i.e. max != min over the window.
    """
    hi = cv2.dilate(frame, _QUAD, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    lo = cv2.erode(frame, _QUAD, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    return cv2.bitwise_xor(hi, lo)


def boundary_map(masks: Any) -> np.ndarray:
    """DAVIS ``_seg2bmap`` per frame: (T, H, W) or (H, W) masks -> (T, H, W) bool boundary maps.

    The toolkit's optional ``width`` / ``height`` resampling is not offered: ``f_measure`` never
    passes them, so it plays no part in any published score.
    """
    m = _as_masks("masks", masks).view(np.uint8)
    out = np.zeros(m.shape, dtype=bool)
    for t, frame in enumerate(m):
        out[t] = _frame_boundary(frame)
    return out


def _rectangle_cover(footprint: np.ndarray) -> list[np.ndarray] | None:
    """Centred rectangles whose union is ``footprint``, or None when it is not such a union.

    A disk of integer radius is the union of about ``radius`` centred rectangles (one per distinct
    row half-width). Dilating by a union of footprints is the maximum of the dilations by each, and
    OpenCV dilates by a rectangle separably, so this is ~3x faster than one dilation by the disk and
    gives the same pixels. Even-sized footprints (non-integer radius) keep the plain dilation.
    """
    rows, cols = footprint.shape
    if rows != cols or rows % 2 == 0:
        return None
    radius = rows // 2
    max_dy_for_half_width: dict[int, int] = {}
    for dy in range(radius + 1):
        width = int(footprint[radius + dy].sum())
        if width == 0:
            break
        max_dy_for_half_width[(width - 1) // 2] = dy
    rebuilt = np.zeros_like(footprint)
    rectangles = []
    for half_width, dy in max_dy_for_half_width.items():
        rebuilt[radius - dy : radius + dy + 1, radius - half_width : radius + half_width + 1] = 1
        rectangles.append(np.ones((2 * dy + 1, 2 * half_width + 1), dtype=np.uint8))
    return rectangles if np.array_equal(rebuilt, footprint) else None


def _dilate(boundary: np.ndarray, footprint: np.ndarray, rectangles: list[np.ndarray] | None) -> np.ndarray:
    if rectangles is None:
        return cv2.dilate(boundary, footprint)
    out = cv2.dilate(boundary, rectangles[0])
    for rectangle in rectangles[1:]:
        cv2.bitwise_or(out, cv2.dilate(boundary, rectangle), dst=out)
    return out


def _matched(
    src: np.ndarray, other: np.ndarray, footprint: np.ndarray, rectangles: list[np.ndarray] | None
) -> int:
    """Pixels of boundary ``src`` within the footprint placed on some pixel of boundary ``other``."""
    near_other = _dilate(other, footprint, rectangles)
    return int(cv2.countNonZero(cv2.bitwise_and(src, near_other)))


def boundary_f(pred: Any, gt: Any, void: Any | None = None, bound_th: float = BOUND_TH) -> np.ndarray:
    """Contour accuracy F per frame, the DAVIS ``f_measure`` exactly.

    Void pixels are removed from both masks first (before the boundaries are drawn). Boundaries come
    from the ``_seg2bmap`` rule; a pred (gt) boundary pixel is matched when a gt (pred) boundary pixel
    lies within the disk of radius :func:`boundary_tolerance` around it. Then, in the toolkit's order:
    no pred boundary but a gt boundary -> P = 1, R = 0; a pred boundary but no gt boundary -> P = 0,
    R = 1; neither -> P = R = 1; else P = matched pred / pred, R = matched gt / gt. F = 0 when
    P + R == 0, else 2PR / (P + R). So both boundaries empty -> 1 and exactly one empty -> 0.

    Args:
        pred, gt: (T, H, W) or (H, W) masks.
        void: optional masks of the same shape.
        bound_th: tolerance, a fraction of the image diagonal if < 1, else pixels.
    Returns:
        (T,) float64.
    """
    p, g, v = _pred_gt_void(pred, gt, void)
    if v is not None:
        keep = ~v
        p = p & keep
        g = g & keep
    n_frames, height, width = p.shape
    footprint = disk_footprint(boundary_tolerance(height, width, bound_th))
    rectangles = _rectangle_cover(footprint)
    p8 = p.view(np.uint8)
    g8 = g.view(np.uint8)

    n_fg = np.zeros(n_frames, dtype=np.int64)
    n_gt = np.zeros(n_frames, dtype=np.int64)
    fg_match = np.zeros(n_frames, dtype=np.int64)
    gt_match = np.zeros(n_frames, dtype=np.int64)
    for t in range(n_frames):
        fg_b = _frame_boundary(p8[t])
        gt_b = _frame_boundary(g8[t])
        n_fg[t] = cv2.countNonZero(fg_b)
        n_gt[t] = cv2.countNonZero(gt_b)
        if n_fg[t] == 0 or n_gt[t] == 0:
            continue  # decided by the special cases below; no matching needed
        # Only boundary pixels are dilated and only boundary pixels are counted, so everything
        # happens inside the boundaries' joint bounding box (dilation treats outside pixels as unset).
        x, y, w, h = cv2.boundingRect(cv2.bitwise_or(fg_b, gt_b))
        fg_crop = fg_b[y : y + h, x : x + w]
        gt_crop = gt_b[y : y + h, x : x + w]
        fg_match[t] = _matched(fg_crop, gt_crop, footprint, rectangles)
        gt_match[t] = _matched(gt_crop, fg_crop, footprint, rectangles)

    return _f_from_counts(n_fg, n_gt, fg_match, gt_match)


def _f_from_counts(
    n_fg: np.ndarray, n_gt: np.ndarray, fg_match: np.ndarray, gt_match: np.ndarray
) -> np.ndarray:
    """Precision / recall / F from boundary counts with the toolkit's special cases, in its order."""
    precision = np.zeros(len(n_fg), dtype=np.float64)
    recall = np.zeros(len(n_fg), dtype=np.float64)
    only_gt = (n_fg == 0) & (n_gt > 0)
    only_fg = (n_fg > 0) & (n_gt == 0)
    neither = (n_fg == 0) & (n_gt == 0)
    both = ~(only_gt | only_fg | neither)
    precision[only_gt], recall[only_gt] = 1.0, 0.0
    precision[only_fg], recall[only_fg] = 0.0, 1.0
    precision[neither], recall[neither] = 1.0, 1.0
    precision[both] = fg_match[both] / n_fg[both].astype(np.float64)
    recall[both] = gt_match[both] / n_gt[both].astype(np.float64)

    f = np.zeros(len(n_fg), dtype=np.float64)
    nonzero = (precision + recall) != 0
    # Same operation order as the toolkit (2 * P * R / (P + R)) so the floats agree bit for bit.
    f[nonzero] = 2 * precision[nonzero] * recall[nonzero] / (precision[nonzero] + recall[nonzero])
    return f


# ------------------------------------------------------------------------------------ DAVIS summaries


def db_statistics(per_frame: Any, *, uint8_bins: bool = False) -> tuple[float, float, float]:
    """The toolkit's ``db_statistics``: (mean, recall, decay) of per-frame J or F values.

    mean = nanmean; recall = nanmean(value > 0.5); decay = mean of the first quarter minus mean of the
    last quarter, where the 4 bins run between indices ``round(linspace(1, T, 5) + 1e-10) - 1`` and each
    bin includes its right edge (neighbouring bins share one frame).

    The toolkit casts those indices to ``uint8``, which goes wrong for sequences longer than 256 frames
    (DAVIS has none, MeViS / ReVOS do) and then gives a meaningless or NaN decay. By default the indices
    stay integers; ``uint8_bins=True`` reproduces the cast (with numpy 1.x promotion of ``edge + 1``, the
    numpy the toolkit ran on). Both agree for T <= 256.
    An empty input gives NaN for all three.
    """
    values = np.asarray(per_frame, dtype=np.float64).reshape(-1)
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = _nanmean_or_nan(values)
    # nanmean of a bool array is a plain mean: a NaN frame counts as "not above 0.5", as in the toolkit.
    recall = float(np.mean(values > 0.5))
    edges = np.round(np.linspace(1, len(values), 5) + 1e-10) - 1
    if uint8_bins:
        with np.errstate(invalid="ignore"):
            edges = edges.astype(np.uint8)
    edges = edges.astype(np.int64)
    bins = [values[edges[i] : edges[i + 1] + 1] for i in range(4)]
    decay = _nanmean_or_nan(bins[0]) - _nanmean_or_nan(bins[3])
    return mean, recall, float(decay)


def _nanmean_or_nan(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(np.mean(finite)) if len(finite) else math.nan


def jf_summary(j: Any, f: Any, *, uint8_bins: bool = False) -> dict[str, float]:
    """DAVIS table row for one object / expression from its per-frame J and F.

    Keys as in the toolkit's result tables: ``J&F-Mean``, ``J-Mean``, ``J-Recall``, ``J-Decay``,
    ``F-Mean``, ``F-Recall``, ``F-Decay``. ``J&F-Mean`` = (J-Mean + F-Mean) / 2.
    """
    jm, jr, jd = db_statistics(j, uint8_bins=uint8_bins)
    fm, fr, fd = db_statistics(f, uint8_bins=uint8_bins)
    return {
        "J&F-Mean": (jm + fm) / 2,
        "J-Mean": jm,
        "J-Recall": jr,
        "J-Decay": jd,
        "F-Mean": fm,
        "F-Recall": fr,
        "F-Decay": fd,
    }


# ------------------------------------------------------------------------------------- ReVOS R


def robustness(pred: Any, gt: Any, foreground: Any) -> np.ndarray:
    """ReVOS robustness R per frame: ``max(1 - |pred & ~gt| / (|foreground| + 1e-6), 0)``.

    ``gt`` is the expression's target (union of its objects), ``foreground`` every annotated object in
    the frame. Predicting nothing outside the target gives 1; every wrongly claimed pixel costs in
    proportion to the frame's annotated foreground; a false positive in a frame with no annotated
    foreground gives 0. Equal to ReVOS's ``get_r2vos_robustness`` on 0/1 masks whose annotations do
    not overlap; that script adds uint8 instance masks, so where annotations overlap it counts a
    foreground pixel twice and its ``1 - gt`` wraps to 255, while here every mask is a plain set.

    Returns:
        (T,) float64.
    """
    p = _as_masks("pred", pred)
    g = _as_masks("gt", gt)
    fg = _as_masks("foreground", foreground)
    _same_shape(pred=p, gt=g, foreground=fg)
    outside = _count(p & ~g)
    annotated = _count(fg)
    return np.maximum(1.0 - outside / (annotated + _REVOS_R_EPS), 0.0)


# ------------------------------------------------------------------------- per-expression scores


@dataclass(frozen=True)
class ExpressionResult:
    """Per-frame scores of one referring / reasoning expression over one video."""

    expr_id: str  # the expression's id within its benchmark
    type: str  # "referring" | "reasoning" (ReVOS splits its score by this)
    j: np.ndarray  # (T,) region similarity per frame
    f: np.ndarray  # (T,) contour accuracy per frame
    r: np.ndarray  # (T,) ReVOS robustness per frame

    @property
    def j_mean(self) -> float:
        return float(np.mean(self.j))

    @property
    def f_mean(self) -> float:
        return float(np.mean(self.f))

    @property
    def jf_mean(self) -> float:
        return (self.j_mean + self.f_mean) / 2

    @property
    def r_mean(self) -> float:
        return float(np.mean(self.r))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (means, no per-frame arrays)."""
        return {
            "id": self.expr_id,
            "type": self.type,
            "J": self.j_mean,
            "F": self.f_mean,
            "J&F": self.jf_mean,
            "R": self.r_mean,
        }


def expression_scores(
    pred_masks: Any,
    gt_masks: Any,
    obj_ids: Iterable[int],
    *,
    expr_id: str = "",
    expr_type: str = "referring",
    void_label: int | None = None,
    bound_th: float = BOUND_TH,
) -> ExpressionResult:
    """Score one expression the MeViS / ReVOS way.

    Args:
        pred_masks: (T, H, W) predicted masks of the expression (non-zero = foreground).
        gt_masks: (T, H, W) integer object-id maps (DAVIS layout: 0 background, k object k).
        obj_ids: the expression's objects; its ground truth is their union (MeViS / ReVOS add the
            objects' masks; any non-zero sum is foreground).
        void_label: an id to treat as void (DAVIS uses 255); None: no void pixels.
    Returns:
        per-frame J, F (toolkit semantics) and R, whose foreground is every non-zero, non-void id.
    """
    if expr_type not in EXPRESSION_TYPES:
        raise ValueError(f"expression type must be one of {EXPRESSION_TYPES}, got {expr_type!r}")
    ids = [int(i) for i in obj_ids]
    if not ids:
        raise ValueError(f"expression {expr_id!r} has no object ids")
    labels = np.asarray(gt_masks)
    if labels.ndim == 2:
        labels = labels[None]
    if labels.ndim != 3 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"gt_masks: expected (T, H, W) integer object ids, got {labels.dtype} {labels.shape}"
        )
    if void_label is not None and void_label in ids:
        raise ValueError(f"object id {void_label} is the void label")
    if len(labels) == 0:
        raise ValueError(f"expression {expr_id!r}: no frames to score")
    gt = np.isin(labels, ids)
    void = labels == void_label if void_label is not None else None
    foreground = labels != 0 if void is None else (labels != 0) & ~void
    pred = _as_masks("pred_masks", pred_masks)
    _same_shape(pred_masks=pred, gt_masks=gt)
    return ExpressionResult(
        expr_id=str(expr_id),
        type=expr_type,
        j=jaccard(pred, gt, void),
        f=boundary_f(pred, gt, void, bound_th=bound_th),
        r=robustness(pred, gt, foreground),
    )


def _result_means(result: ExpressionResult | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(result, ExpressionResult):
        return result.to_dict()
    try:
        means = {"id": str(result.get("id", "")), "type": result["type"]}
        means["J"] = float(result["J"])
        means["F"] = float(result["F"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"an expression result needs 'type', 'J' and 'F': {result!r}") from exc
    means["J&F"] = (means["J"] + means["F"]) / 2
    means["R"] = float(result["R"]) if result.get("R") is not None else math.nan
    return means


def _subset_means(rows: Sequence[Mapping[str, Any]]) -> dict[str, float] | None:
    if not rows:
        return None
    j = float(np.mean([row["J"] for row in rows]))
    f = float(np.mean([row["F"] for row in rows]))
    return {
        "J": j,
        "F": f,
        "J&F": (j + f) / 2,
        "R": float(np.mean([row["R"] for row in rows])),
        "count": len(rows),
    }


def aggregate_expressions(results: Iterable[ExpressionResult | Mapping[str, Any]]) -> dict[str, Any]:
    """Benchmark numbers from per-expression results.

    Every expression counts once, however many frames it has (J and F are first averaged over its
    frames). Returns:
        ``per_expression``: one row per expression (id, type, J, F, J&F, R);
        ``overall``: means over all expressions (the MeViS number; J&F = (J + F) / 2);
        ``referring`` / ``reasoning``: the same over each subset (None when the subset is empty);
        ``revos``: the ReVOS overall row, the mean of the two subset rows (None unless both exist).
    Results are ExpressionResult or mappings with ``type``, ``J``, ``F`` (and optionally ``R``, ``id``).
    ReVOS's script rounds each expression's percentages to 2 decimals before averaging; these means
    are unrounded (they differ from it by less than 0.005 points).
    """
    rows = [_result_means(r) for r in results]
    if not rows:
        raise ValueError("no expression results to aggregate")
    for row in rows:
        if row["type"] not in EXPRESSION_TYPES:
            raise ValueError(
                f"expression {row['id']!r}: type must be one of {EXPRESSION_TYPES}, got {row['type']!r}"
            )
    subsets = {kind: _subset_means([row for row in rows if row["type"] == kind]) for kind in EXPRESSION_TYPES}
    referring, reasoning = subsets["referring"], subsets["reasoning"]
    revos = None
    if referring is not None and reasoning is not None:
        revos = {key: (referring[key] + reasoning[key]) / 2 for key in ("J", "F", "J&F", "R")}
        revos["count"] = referring["count"] + reasoning["count"]
    return {
        "per_expression": rows,
        "overall": _subset_means(rows),
        "referring": referring,
        "reasoning": reasoning,
        "revos": revos,
    }


# ---------------------------------------------------------------------------------- gIoU / cIoU


def _image_pairs(
    preds: Sequence[Any], gts: Sequence[Any], voids: Sequence[Any] | None
) -> list[tuple[int, int]]:
    """(intersection, union) pixel counts per image, void pixels left out of both."""
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predicted masks but {len(gts)} ground-truth masks")
    if voids is not None and len(voids) != len(gts):
        raise ValueError(f"{len(voids)} void masks for {len(gts)} images")
    counts = []
    for i, (pred, gt) in enumerate(zip(preds, gts)):
        p = _as_masks(f"preds[{i}]", pred)
        g = _as_masks(f"gts[{i}]", gt)
        if p.shape[0] != 1:
            raise ValueError(f"preds[{i}]: expected one (H, W) mask per image, got shape {p.shape}")
        _same_shape(pred=p, gt=g)
        inter_px = p & g
        union_px = p | g
        if voids is not None:
            v = _as_masks(f"voids[{i}]", voids[i])
            _same_shape(gt=g, void=v)
            inter_px &= ~v
            union_px &= ~v
        counts.append((int(np.count_nonzero(inter_px)), int(np.count_nonzero(union_px))))
    return counts


def image_iou(pred: Any, gt: Any, void: Any | None = None) -> float:
    """LISA's per-mask IoU: ``intersection / (union + 1e-5)``, and 1.0 when the union is empty.

    (LISA adds 1.0 to the IoU where ``union == 0``; the intersection is then 0, so the IoU is 1.)
    ``void`` plays the part of LISA's ``ignore_index=255`` pixels: they count for nothing.
    """
    voids = None if void is None else [void]
    ((inter, union),) = _image_pairs([pred], [gt], voids)
    return 1.0 if union == 0 else inter / (union + _LISA_IOU_EPS)


def giou(preds: Sequence[Any], gts: Sequence[Any], voids: Sequence[Any] | None = None) -> float:
    """gIoU (ReasonSeg): the mean of :func:`image_iou` over (image, expression) pairs.

    LISA's meter divides the IoU sum by ``count + 1e-5``; so do we (a perfect run therefore scores a
    hair below 1). LISA reduces its sums in float32, so its printed value can differ from this one in
    the 7th digit. Pass one pair per expression (LISA counts each mask of a multi-expression image
    once). Empty input raises ValueError.
    """
    counts = _image_pairs(preds, gts, voids)
    if not counts:
        raise ValueError("gIoU of zero images is undefined")
    total = sum(1.0 if union == 0 else inter / (union + _LISA_IOU_EPS) for inter, union in counts)
    return total / (len(counts) + _LISA_COUNT_EPS)


def ciou(preds: Sequence[Any], gts: Sequence[Any], voids: Sequence[Any] | None = None) -> float:
    """cIoU (refCOCO): total intersection / (total union + 1e-10) over all pairs, as LISA computes it.

    All unions empty -> 0.0 (LISA's formula gives 0 / 1e-10). Empty input raises ValueError.
    """
    counts = _image_pairs(preds, gts, voids)
    if not counts:
        raise ValueError("cIoU of zero images is undefined")
    inter = sum(i for i, _ in counts)
    union = sum(u for _, u in counts)
    return inter / (union + _LISA_CIOU_EPS)
