"""Test-only baseline: a slow, literal re-implementation of the reference evaluation code.

Written from the documented behaviour of
- the DAVIS 2017 toolkit (``davisvideochallenge/davis2017-evaluation``: ``db_eval_iou``,
  ``db_eval_boundary``, ``f_measure``, ``_seg2bmap``, ``db_statistics``),
- ReVOS's ``get_r2vos_robustness`` (VISA ``tools/metrics.py``),
- LISA's ``validate()`` (``intersectionAndUnionGPU`` with K = 2 and the gIoU / cIoU meters),
step for step: one frame at a time, the same intermediate arrays, the same footprint from
``skimage.morphology.disk`` handed to ``cv2.dilate``, the same branch order. It exists so that
``videoseg.eval.metrics`` (which computes the same numbers differently and faster) can be checked against
it, and so the benchmark has the toolkit's cost as its baseline. Needs scikit-image (dev requirement).
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import torch
from scipy.ndimage import binary_dilation
from skimage.morphology import disk

# ------------------------------------------------------------------------------------ DAVIS toolkit


def db_eval_iou(annotation: np.ndarray, segmentation: np.ndarray, void_pixels: np.ndarray | None = None):
    """J for an (H, W) frame (returns a scalar) or a (T, H, W) stack (returns (T,))."""
    assert annotation.shape == segmentation.shape
    annotation = annotation.astype(bool)
    segmentation = segmentation.astype(bool)
    if void_pixels is None:
        void_pixels = np.zeros_like(segmentation)
    else:
        assert void_pixels.shape == annotation.shape
        void_pixels = void_pixels.astype(bool)
    valid = np.logical_not(void_pixels)
    inters = np.sum((segmentation & annotation) & valid, axis=(-2, -1))
    union = np.sum((segmentation | annotation) & valid, axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        j = inters / union
    if j.ndim == 0:
        return 1 if np.isclose(union, 0) else j
    j[np.isclose(union, 0)] = 1
    return j


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """The toolkit's ``_seg2bmap`` without resampling (``f_measure`` never asks for it)."""
    seg = seg.astype(bool)
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    # last row: compare with the east neighbour only; last column: with the south neighbour only
    b[-1, :] = seg[-1, :] ^ east[-1, :]
    b[:, -1] = seg[:, -1] ^ south[:, -1]
    b[-1, -1] = 0
    return b


def f_measure(
    foreground_mask: np.ndarray,
    gt_mask: np.ndarray,
    void_pixels: np.ndarray | None = None,
    bound_th: float = 0.008,
    dilation: str = "cv2",
) -> float:
    """F of one (H, W) frame. ``dilation="binary"`` dilates with a binary dilation (the toolkit's
    older, now commented-out ``binary_dilation`` line; scipy's, which scikit-image's wrapped) instead
    of ``cv2.dilate``; both give the same result for integer radii."""
    if void_pixels is None:
        void_pixels = np.zeros_like(foreground_mask).astype(bool)
    else:
        void_pixels = void_pixels.astype(bool)
    bound_pix = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(foreground_mask.shape))

    fg_boundary = seg2bmap(foreground_mask * np.logical_not(void_pixels))
    gt_boundary = seg2bmap(gt_mask * np.logical_not(void_pixels))

    if dilation == "cv2":
        fg_dil = cv2.dilate(fg_boundary.astype(np.uint8), disk(bound_pix).astype(np.uint8))
        gt_dil = cv2.dilate(gt_boundary.astype(np.uint8), disk(bound_pix).astype(np.uint8))
    else:
        fg_dil = binary_dilation(fg_boundary, structure=disk(bound_pix))
        gt_dil = binary_dilation(gt_boundary, structure=disk(bound_pix))

    gt_match = gt_boundary * fg_dil
    fg_match = fg_boundary * gt_dil
    n_fg = np.sum(fg_boundary)
    n_gt = np.sum(gt_boundary)

    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision = np.sum(fg_match) / float(n_fg)
        recall = np.sum(gt_match) / float(n_gt)

    if precision + recall == 0:
        return 0
    return 2 * precision * recall / (precision + recall)


def db_eval_boundary(
    annotation: np.ndarray,
    segmentation: np.ndarray,
    void_pixels: np.ndarray | None = None,
    bound_th: float = 0.008,
    dilation: str = "cv2",
):
    """F per frame of a (T, H, W) stack (returns (T,)) or of one (H, W) frame (returns a scalar)."""
    assert annotation.shape == segmentation.shape
    if annotation.ndim == 2:
        return f_measure(segmentation, annotation, void_pixels, bound_th, dilation)
    out = np.zeros(annotation.shape[0])
    for t in range(annotation.shape[0]):
        void_t = None if void_pixels is None else void_pixels[t]
        out[t] = f_measure(segmentation[t], annotation[t], void_t, bound_th, dilation)
    return out


def db_statistics(per_frame_values: np.ndarray) -> tuple[float, float, float]:
    """Mean, recall, decay, with the toolkit's uint8 bin indices.

    The toolkit ran on numpy 1.x (it uses ``np.bool``), where ``uint8 + 1`` is promoted to a wider
    integer; under numpy 2 it would wrap 255 + 1 to 0. The edges are taken as Python ints to keep the
    numpy 1.x behaviour.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = np.nanmean(per_frame_values)
        recall = np.nanmean(per_frame_values > 0.5)
    ids = np.round(np.linspace(1, len(per_frame_values), 4 + 1) + 1e-10) - 1
    with np.errstate(invalid="ignore"):
        ids = ids.astype(np.uint8)
    edges = [int(i) for i in ids]
    bins = [per_frame_values[edges[i] : edges[i + 1] + 1] for i in range(4)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        decay = np.nanmean(bins[0]) - np.nanmean(bins[3])
    return mean, recall, decay


# --------------------------------------------------------------------------------------------- ReVOS


def revos_robustness(
    gt_masks: np.ndarray, pred_masks: np.ndarray, foreground_masks: np.ndarray
) -> np.ndarray:
    """Per frame, on uint8 0/1 masks, as ReVOS's script computes it."""
    out = []
    for gt, pred, fg in zip(gt_masks, pred_masks, foreground_masks):
        neg = ((1 - gt) * pred).sum()
        pos = fg.sum()
        out.append(max(1 - neg / (pos + 1e-6), 0.0))
    return np.array(out)


# ---------------------------------------------------------------------------------------------- LISA


def _intersection_and_union(output: torch.Tensor, target: torch.Tensor, k: int = 2, ignore_index: int = 255):
    output = output.view(-1).clone()
    target = target.view(-1)
    output[target == ignore_index] = ignore_index
    intersection = output[output == target]
    area_intersection = torch.histc(intersection.float(), bins=k, min=0, max=k - 1)
    area_output = torch.histc(output.float(), bins=k, min=0, max=k - 1)
    area_target = torch.histc(target.float(), bins=k, min=0, max=k - 1)
    return area_intersection, area_output + area_target - area_intersection


def lisa_giou_ciou(preds: list[np.ndarray], gts: list[np.ndarray]) -> tuple[float, float]:
    """gIoU and cIoU the way LISA's ``validate()`` accumulates them (one mask per sample).

    ``gts`` may hold 255 for ignored pixels. Sums are kept in float64 here; LISA's final all-reduce in
    float32 is left out so that the check can be tight.
    """
    inter_sum = np.zeros(2)
    union_sum = np.zeros(2)
    iou_sum = np.zeros(2)
    count = 0
    for pred, gt in zip(preds, gts):
        inter, union = _intersection_and_union(
            torch.from_numpy(pred.astype(np.int64)), torch.from_numpy(gt.astype(np.int64))
        )
        inter, union = inter.double(), union.double()
        acc_iou = inter / (union + 1e-5)
        acc_iou[union == 0] += 1.0
        inter_sum += inter.numpy()
        union_sum += union.numpy()
        iou_sum += acc_iou.numpy()
        count += 1
    giou = (iou_sum / (count + 1e-5))[1]
    ciou = (inter_sum / (union_sum + 1e-10))[1]
    return float(giou), float(ciou)
