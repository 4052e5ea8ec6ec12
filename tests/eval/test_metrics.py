"""videoseg.eval.metrics: hand-computed cases, then randomized equality with the literal toolkit port."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from skimage.morphology import disk

from tests.support import davis_reference as ref
from videoseg.eval.metrics import (
    ExpressionResult,
    aggregate_expressions,
    boundary_f,
    boundary_map,
    boundary_tolerance,
    ciou,
    db_statistics,
    disk_footprint,
    expression_scores,
    giou,
    image_iou,
    jaccard,
    jf_summary,
    robustness,
)


def canvas(h: int = 10, w: int = 10) -> np.ndarray:
    return np.zeros((h, w), dtype=bool)


def square(y: int, x: int, size: int = 4, h: int = 10, w: int = 10) -> np.ndarray:
    m = canvas(h, w)
    m[y : y + size, x : x + size] = True
    return m


def pixel(y: int, x: int, h: int = 480, w: int = 854) -> np.ndarray:
    m = canvas(h, w)
    m[y, x] = True
    return m


# ------------------------------------------------------------------------------------------------- J

J_CASES = [
    # identical masks
    (square(2, 2), square(2, 2), None, 1.0),
    # disjoint masks
    (square(0, 0), square(5, 5), None, 0.0),
    # 4x4 vs shifted one column: intersection 4x3 = 12, union 16 + 16 - 12 = 20
    (square(2, 2), square(2, 3), None, 12 / 20),
    # 4x4 vs shifted one row and one column: intersection 3x3 = 9, union 32 - 9 = 23
    (square(2, 2), square(3, 3), None, 9 / 23),
    # both empty: empty union scores 1
    (canvas(), canvas(), None, 1.0),
    # empty prediction, non-empty ground truth
    (canvas(), square(2, 2), None, 0.0),
    # void removes the prediction's extra column: 4x5 vs 4x4 with column 6 void -> identical
    (np.logical_or(square(2, 2), square(2, 3)), square(2, 2), square(2, 6, size=4) & ~square(2, 7), 1.0),
    # everything void: union empty -> 1
    (square(0, 0), square(5, 5), np.ones((10, 10), bool), 1.0),
]


@pytest.mark.parametrize(("pred", "gt", "void", "expected"), J_CASES)
def test_jaccard_hand_cases(pred, gt, void, expected):
    got = jaccard(pred, gt, void)
    assert got.shape == (1,)
    assert got[0] == pytest.approx(expected, abs=1e-12)
    np.testing.assert_allclose(
        got, ref.db_eval_iou(gt[None], pred[None], None if void is None else void[None])
    )


def test_jaccard_per_frame_and_dtypes():
    pred = np.stack([square(2, 2), square(2, 2), canvas()]).astype(np.uint8) * 255  # 0/255 PNG style
    gt = np.stack([square(2, 2), square(2, 3), canvas()])
    np.testing.assert_allclose(jaccard(pred, gt), [1.0, 0.6, 1.0])


# ------------------------------------------------------------------------------------------------- F


@pytest.mark.parametrize(
    ("height", "width", "bound_th", "expected"),
    [
        (480, 854, 0.008, 8.0),  # DAVIS 480p: ceil(0.008 * 979.6) = 8
        (100, 100, 0.008, 2.0),  # ceil(1.131)
        (10, 10, 0.008, 1.0),  # ceil(0.113)
        (1080, 1920, 0.008, 18.0),  # ceil(17.62)
        (50, 50, 3, 3.0),  # >= 1 means pixels
        (50, 50, 2.5, 2.5),  # kept as given, like the toolkit
        (50, 50, 0, 0.0),  # ceil(0) -> no tolerance
    ],
)
def test_boundary_tolerance(height, width, bound_th, expected):
    assert boundary_tolerance(height, width, bound_th) == expected


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf])
def test_boundary_tolerance_rejects(bad):
    with pytest.raises(ValueError, match="bound_th"):
        boundary_tolerance(10, 10, bad)


@pytest.mark.parametrize("radius", [0, 1, 2, 2.5, 3, 7.0, 8, 8.0, 12, 17.5, 30])
def test_disk_footprint_equals_skimage(radius):
    np.testing.assert_array_equal(disk_footprint(radius), disk(radius).astype(np.uint8))


def _bmap_case(h: int, w: int, on: list[tuple[int, int]]) -> np.ndarray:
    m = canvas(h, w)
    for y, x in on:
        m[y, x] = True
    return m


BMAP_CASES = [
    # a single interior pixel: boundary = the 2x2 block of windows that touch it (offset towards the origin)
    (_bmap_case(5, 5, [(2, 2)]), [(1, 1), (1, 2), (2, 1), (2, 2)]),
    # a pixel at the origin: only its own window exists
    (_bmap_case(5, 5, [(0, 0)]), [(0, 0)]),
    # a pixel in the bottom-right corner: last row compares east only, last column south only, corner is 0
    (_bmap_case(4, 5, [(3, 4)]), [(2, 3), (2, 4), (3, 3)]),
    # the last row all set: the row above is boundary, the last row itself never is
    (np.pad(np.ones((1, 5), bool), ((3, 0), (0, 0))), [(2, x) for x in range(5)]),
    # the whole frame set: no boundary anywhere
    (np.ones((3, 4), bool), []),
]


@pytest.mark.parametrize(("mask", "expected_on"), BMAP_CASES)
def test_boundary_map_hand_cases(mask, expected_on):
    expected = canvas(*mask.shape)
    for y, x in expected_on:
        expected[y, x] = True
    got = boundary_map(mask)
    assert got.shape == (1, *mask.shape)
    np.testing.assert_array_equal(got[0], expected)
    np.testing.assert_array_equal(ref.seg2bmap(mask), expected)


def shifted_square(dy: int, dx: int, h: int = 480, w: int = 854) -> np.ndarray:
    """A 5x5 square at (100, 100), moved by (dy, dx)."""
    return square(100 + dy, 100 + dx, size=5, h=h, w=w)


F_CASES = [
    # identical masks
    (square(2, 2), square(2, 2), None, 0.008, 1.0),
    # both empty: no boundary on either side -> 1
    (canvas(), canvas(), None, 0.008, 1.0),
    # empty prediction: P = 1, R = 0 -> 0
    (canvas(), square(2, 2), None, 0.008, 0.0),
    # empty ground truth: P = 0, R = 1 -> 0
    (square(2, 2), canvas(), None, 0.008, 0.0),
    # far apart (tolerance 1 px on 10x10): nothing matched, P + R = 0 -> 0
    (square(0, 0), square(6, 6), None, 0.008, 0.0),
    # full frame vs empty: neither has a boundary (the rule never marks the image edge) -> 1
    (np.ones((10, 10), bool), canvas(), None, 0.008, 1.0),
    # void hides the whole prediction: both boundaries drawn from void-free masks -> empty pred -> 0
    (square(0, 0), square(5, 5), square(0, 0), 0.008, 0.0),
    # void hides the only difference (the prediction's extra blob) -> identical after masking
    (square(0, 0) | square(6, 6), square(0, 0), square(5, 5, size=5), 0.008, 1.0),
    # 480x854 -> tolerance 8 px. 5x5 squares have 20 boundary pixels (the 6x6 ring). A shift of 8 keeps
    # every boundary pixel within 8 px of the other ring.
    (shifted_square(0, 8), shifted_square(0, 0), None, 0.008, 1.0),
    # shift 9: each ring's far column (6 pixels) is 9 px from the other ring -> P = R = 14/20
    (shifted_square(0, 9), shifted_square(0, 0), None, 0.008, 0.7),
    # the same at a 2 px tolerance given in pixels: shift 2 -> all matched, shift 3 -> 14/20
    (square(5, 5, 5, 20, 20), square(5, 7, 5, 20, 20), None, 2, 1.0),
    (square(5, 5, 5, 20, 20), square(5, 8, 5, 20, 20), None, 2, 0.7),
    # the tolerance is a disk, not a square: single pixels moved diagonally. Their 2x2 boundary blocks
    # are offset by (dy-1..dy, dx-1..dx); (5,6): all four offsets have dy^2+dx^2 <= 64 -> 1
    (pixel(100, 100), pixel(105, 106), None, 0.008, 1.0),
    # (6,6): offset (6,6) has 72 > 64 (a square window would still match it) -> P = R = 3/4
    (pixel(100, 100), pixel(106, 106), None, 0.008, 0.75),
    # (1,8): offsets (0,7) (0,8) (1,7) match, (1,8) = 65 > 64 does not -> 3/4
    (pixel(100, 100), pixel(101, 108), None, 0.008, 0.75),
]


@pytest.mark.parametrize(("pred", "gt", "void", "bound_th", "expected"), F_CASES)
def test_boundary_f_hand_cases(pred, gt, void, bound_th, expected):
    got = boundary_f(pred, gt, void, bound_th=bound_th)
    assert got.shape == (1,)
    assert got[0] == pytest.approx(expected, abs=1e-12)
    assert ref.f_measure(pred, gt, void, bound_th) == pytest.approx(expected, abs=1e-12)


def test_boundary_f_precision_and_recall_differ():
    # gt = 5x5 square; pred = the same square plus a far single pixel (4 boundary pixels, unmatched):
    # P = 20/24, R = 1 -> F = 2PR / (P + R) = 10/11
    gt = shifted_square(0, 0)
    pred = gt | pixel(300, 600)
    assert boundary_f(pred, gt)[0] == pytest.approx(2 * (20 / 24) / (20 / 24 + 1), abs=1e-12)
    # roles swap: P = 1, R = 20/24, same F
    assert boundary_f(gt, pred)[0] == pytest.approx(2 * (20 / 24) / (20 / 24 + 1), abs=1e-12)


# ----------------------------------------------------------------------- randomized vs the reference


def _random_case(rng: np.random.Generator, kind: str, h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), dtype=np.uint8)
    if kind == "noise":
        return rng.random((h, w)) < rng.uniform(0, 0.6)
    if kind == "blobs":
        for _ in range(int(rng.integers(1, 4))):
            centre = (int(rng.integers(-5, w + 5)), int(rng.integers(-5, h + 5)))
            axes = (int(rng.integers(1, max(2, w // 2))), int(rng.integers(1, max(2, h // 2))))
            cv2.ellipse(m, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    elif kind == "lines":
        for _ in range(int(rng.integers(1, 4))):
            p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.line(m, p1, p2, 1, 1)
    elif kind == "pixels":
        n = int(rng.integers(0, 6))
        m[rng.integers(0, h, n), rng.integers(0, w, n)] = 1
    elif kind == "edges":  # touching the last row / column, where the boundary rule is special
        m[-int(rng.integers(1, h + 1)) :, -int(rng.integers(1, w + 1)) :] = 1
    return m.astype(bool)


KINDS = ["noise", "blobs", "lines", "pixels", "edges", "empty"]
SIZES = [(1, 1), (1, 9), (9, 1), (2, 2), (7, 13), (31, 17), (64, 64), (45, 80), (120, 213)]


@pytest.mark.parametrize("bound_th", [0.008, 0.05, 1, 2, 2.5, 0])
@pytest.mark.parametrize("size", SIZES, ids=[f"{h}x{w}" for h, w in SIZES])
def test_random_shapes_match_reference(size, bound_th):
    h, w = size
    rng = np.random.default_rng(hash((h, w, bound_th)) % 2**32)
    frames = 12
    pred = np.stack([_random_case(rng, KINDS[t % len(KINDS)], h, w) for t in range(frames)])
    gt = np.stack([_random_case(rng, KINDS[(t * 5 + 1) % len(KINDS)], h, w) for t in range(frames)])
    gt[::4] = pred[::4]  # some exact hits
    gt[1::4] = np.roll(pred[1::4], 2, axis=2)  # some near misses
    void = rng.random((frames, h, w)) < 0.05
    for v in (None, void):
        np.testing.assert_allclose(jaccard(pred, gt, v), ref.db_eval_iou(gt, pred, v), rtol=0, atol=1e-6)
        np.testing.assert_allclose(
            boundary_f(pred, gt, v, bound_th), ref.db_eval_boundary(gt, pred, v, bound_th), rtol=0, atol=1e-6
        )
    np.testing.assert_array_equal(boundary_map(pred), np.stack([ref.seg2bmap(m) for m in pred]))


def test_davis_size_blobs_match_reference():
    rng = np.random.default_rng(7)
    gt = np.stack([_random_case(rng, "blobs", 480, 854) for _ in range(6)])
    pred = np.roll(gt, (4, -9), axis=(1, 2)) | np.stack(
        [_random_case(rng, "lines", 480, 854) for _ in range(6)]
    )
    np.testing.assert_allclose(boundary_f(pred, gt), ref.db_eval_boundary(gt, pred), rtol=0, atol=1e-6)
    np.testing.assert_allclose(jaccard(pred, gt), ref.db_eval_iou(gt, pred), rtol=0, atol=1e-6)


@pytest.mark.parametrize("radius", [3, 4, 8, 13, 18, 25, 40])
def test_large_integer_tolerances_match_reference(radius):
    # 1080p uses 18 px; the disk is dilated as a union of rectangles, which must be the same pixels
    rng = np.random.default_rng(radius)
    gt = np.stack([_random_case(rng, "blobs", 100, 150) for _ in range(3)])
    pred = np.stack([_random_case(rng, kind, 100, 150) for kind in ("lines", "pixels", "noise")])
    np.testing.assert_allclose(
        boundary_f(pred, gt, bound_th=radius),
        ref.db_eval_boundary(gt, pred, bound_th=radius),
        rtol=0,
        atol=1e-6,
    )


@pytest.mark.parametrize("radius", [1, 3, 8, 18])
def test_reference_cv2_dilation_equals_binary_dilation(radius):
    # The toolkit switched from a binary dilation to cv2.dilate with the same disk; for integer
    # radii (every 0.008-diagonal tolerance) the two agree, so either is "the toolkit".
    rng = np.random.default_rng(radius)
    gt = np.stack([_random_case(rng, "blobs", 60, 90) for _ in range(4)])
    pred = np.stack([_random_case(rng, "lines", 60, 90) for _ in range(4)])
    np.testing.assert_array_equal(
        ref.db_eval_boundary(gt, pred, bound_th=radius),
        ref.db_eval_boundary(gt, pred, bound_th=radius, dilation="binary"),
    )


@pytest.mark.parametrize(
    ("pred", "gt", "void", "message"),
    [
        (np.zeros((2, 4, 4)), np.zeros((3, 4, 4)), None, "shapes differ"),
        (np.zeros((4, 4)), np.zeros((4, 5)), None, "shapes differ"),
        (np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((4, 5)), "shapes differ"),
        (np.zeros((1, 2, 4, 4)), np.zeros((1, 2, 4, 4)), None, r"\(T, H, W\)"),
        (np.zeros((2, 0, 4)), np.zeros((2, 0, 4)), None, "no pixels"),
        (np.array([["a"]]), np.zeros((1, 1)), None, "dtype"),
    ],
)
def test_bad_inputs_raise(pred, gt, void, message):
    with pytest.raises(ValueError, match=message):
        jaccard(pred, gt, void)
    with pytest.raises(ValueError, match=message):
        boundary_f(pred, gt, void)


def test_zero_frames_give_empty_scores():
    empty = np.zeros((0, 4, 6), dtype=bool)
    assert jaccard(empty, empty).shape == (0,)
    assert boundary_f(empty, empty).shape == (0,)


# ------------------------------------------------------------------------------- DAVIS statistics


def test_db_statistics_hand_case():
    # T = 8: bin edges round(linspace(1, 8, 5)) - 1 = [0, 2, 4, 5, 7]; first bin = frames 0..2 (mean 0.9),
    # last bin = frames 5..7 (mean 0.4) -> decay 0.5; recall counts values strictly above 0.5 -> 5 / 8
    values = np.array([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    mean, recall, decay = db_statistics(values)
    assert mean == pytest.approx(0.65)
    assert recall == pytest.approx(5 / 8)
    assert decay == pytest.approx(0.5)


def test_db_statistics_single_frame_and_empty():
    assert db_statistics([0.7]) == pytest.approx((0.7, 1.0, 0.0))
    assert all(math.isnan(v) for v in db_statistics([]))


@pytest.mark.parametrize("frames", [1, 2, 3, 4, 5, 7, 10, 33, 100, 255, 256])
def test_db_statistics_matches_reference(frames):
    values = np.random.default_rng(frames).random(frames)
    values[::7] = np.nan  # the toolkit is NaN-aware (nanmean), and counts NaN as "not above 0.5"
    np.testing.assert_allclose(db_statistics(values), ref.db_statistics(values), rtol=0, atol=1e-12)


def test_db_statistics_uint8_bins_reproduce_the_toolkit_past_256_frames():
    values = np.linspace(1.0, 0.0, 300)
    toolkit = ref.db_statistics(values)
    np.testing.assert_allclose(
        db_statistics(values, uint8_bins=True), toolkit, rtol=0, atol=1e-12, equal_nan=True
    )
    # with integer bins the decay is first quarter minus last quarter of a falling ramp: clearly positive
    _, _, decay = db_statistics(values)
    first = values[0 : round(1 + 299 / 4)].mean()
    last = values[round(1 + 3 * 299 / 4) - 1 :].mean()
    assert decay == pytest.approx(first - last)
    assert decay > 0.7


def test_jf_summary_keys_and_values():
    j = np.array([1.0, 0.8, 0.6, 0.4])
    f = np.array([0.2, 0.4, 0.6, 0.8])
    row = jf_summary(j, f)
    assert row["J-Mean"] == pytest.approx(0.7)
    assert row["F-Mean"] == pytest.approx(0.5)
    assert row["J&F-Mean"] == pytest.approx(0.6)
    assert row["J-Recall"] == pytest.approx(0.75)
    assert row["F-Recall"] == pytest.approx(0.5)
    # T = 4: edges [0, 1, 2, 2, 3]: first bin frames 0..1, last bin frames 2..3
    assert row["J-Decay"] == pytest.approx(0.9 - 0.5)
    assert row["F-Decay"] == pytest.approx(0.3 - 0.7)


# ------------------------------------------------------------------------------------- robustness


def _label_frame() -> np.ndarray:
    """10x10 ids: object 1 = 10 px (row 0), object 2 = 20 px (rows 2-3), object 3 = 10 px (row 5)."""
    labels = np.zeros((10, 10), dtype=np.uint8)
    labels[0] = 1
    labels[2:4] = 2
    labels[5] = 3
    return labels


R_CASES = [
    # prediction exactly the target: nothing outside -> 1
    (_label_frame() == 1, _label_frame() == 1, _label_frame() > 0, 1.0),
    # target + 8 pixels outside it; 40 annotated foreground pixels -> 1 - 8/40
    (
        (_label_frame() == 1) | square(7, 0, size=2) | square(7, 3, size=2),
        _label_frame() == 1,
        _label_frame() > 0,
        0.8,
    ),
    # the wrong object (20 px outside the target) -> 1 - 20/40
    (_label_frame() == 2, _label_frame() == 1, _label_frame() > 0, 0.5),
    # more wrong pixels than foreground: clamped at 0
    (np.ones((10, 10), bool), _label_frame() == 1, _label_frame() > 0, 0.0),
    # no foreground annotated, one false positive: 1 - 1/1e-6 -> 0
    (square(0, 0, size=1), canvas(), canvas(), 0.0),
    # nothing predicted, nothing annotated -> 1
    (canvas(), canvas(), canvas(), 1.0),
]


@pytest.mark.parametrize(("pred", "gt", "foreground", "expected"), R_CASES)
def test_robustness_hand_cases(pred, gt, foreground, expected):
    got = robustness(pred, gt, foreground)
    assert got.shape == (1,)
    assert got[0] == pytest.approx(expected, abs=1e-6)


def test_robustness_matches_revos_script():
    rng = np.random.default_rng(3)
    gt = rng.random((20, 30, 40)) < 0.2
    foreground = gt | (rng.random((20, 30, 40)) < 0.3)
    pred = rng.random((20, 30, 40)) < rng.random((20, 1, 1))
    expected = ref.revos_robustness(gt.astype(np.uint8), pred.astype(np.uint8), foreground.astype(np.uint8))
    np.testing.assert_allclose(robustness(pred, gt, foreground), expected, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------ per-expression scoring


def test_expression_scores_use_the_union_of_the_objects():
    labels = np.stack([_label_frame()] * 3)
    union = np.isin(labels, [1, 3])
    pred = union.copy()
    pred[2] = labels[2] == 2  # last frame: the wrong object
    result = expression_scores(pred, labels, [1, 3], expr_id="e0", expr_type="reasoning")
    assert result.type == "reasoning" and result.expr_id == "e0"
    np.testing.assert_allclose(result.j, [1.0, 1.0, 0.0])
    np.testing.assert_allclose(result.f, boundary_f(pred, union))
    assert result.f[0] == 1.0 and result.f[2] < 1.0
    # frame 2: 20 wrong pixels, 40 annotated foreground pixels (every object, not only the target's)
    np.testing.assert_allclose(result.r, [1.0, 1.0, 0.5], atol=1e-6)
    assert result.j_mean == pytest.approx(2 / 3)
    assert result.jf_mean == pytest.approx((result.j_mean + result.f_mean) / 2)
    assert result.to_dict()["J&F"] == pytest.approx(result.jf_mean)


def test_expression_scores_void_label():
    labels = _label_frame()
    labels[8] = 255  # a void row
    pred = (labels == 1) | (labels == 255)  # claims the void row too
    result = expression_scores(pred, labels, [1], void_label=255)
    assert result.j[0] == 1.0 and result.f[0] == 1.0
    # void pixels are not annotated foreground, and R is taken on the raw prediction as ReVOS does
    assert result.r[0] == pytest.approx(1 - 10 / 40, abs=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"obj_ids": []}, "no object ids"),
        ({"obj_ids": [1], "expr_type": "other"}, "type"),
        ({"obj_ids": [1], "pred_masks": np.zeros((2, 10, 10), bool)}, "shapes differ"),
        ({"obj_ids": [1], "gt_masks": np.zeros((1, 10, 10), np.float32)}, "integer"),
        ({"obj_ids": [255], "void_label": 255}, "void"),
        ({"obj_ids": [1], "gt_masks": np.zeros((0, 10, 10), np.uint8)}, "no frames"),
    ],
)
def test_expression_scores_reject(kwargs, message):
    args = {"pred_masks": np.zeros((1, 10, 10), bool), "gt_masks": _label_frame()[None]} | kwargs
    with pytest.raises(ValueError, match=message):
        expression_scores(args.pop("pred_masks"), args.pop("gt_masks"), args.pop("obj_ids"), **args)


def _result(expr_id: str, kind: str, j: float, f: float, r: float = 1.0) -> ExpressionResult:
    return ExpressionResult(expr_id, kind, np.array([j, j]), np.array([f, f]), np.array([r, r]))


def test_aggregate_expressions_revos_averages_the_two_subsets():
    results = [
        _result("a", "referring", 0.8, 0.6, 0.9),
        _result("b", "referring", 0.4, 0.2, 0.7),
        _result("c", "reasoning", 1.0, 1.0, 0.5),
    ]
    agg = aggregate_expressions(results)
    # every expression counts once (MeViS): J = (0.8 + 0.4 + 1.0) / 3
    assert agg["overall"]["J"] == pytest.approx(2.2 / 3)
    assert agg["overall"]["F"] == pytest.approx(0.6)
    assert agg["overall"]["J&F"] == pytest.approx((2.2 / 3 + 0.6) / 2)
    assert agg["overall"]["count"] == 3
    assert agg["referring"] == pytest.approx({"J": 0.6, "F": 0.4, "J&F": 0.5, "R": 0.8, "count": 2})
    assert agg["reasoning"] == pytest.approx({"J": 1.0, "F": 1.0, "J&F": 1.0, "R": 0.5, "count": 1})
    # ReVOS: mean of the subset means, not of the pooled expressions
    assert agg["revos"] == pytest.approx({"J": 0.8, "F": 0.7, "J&F": 0.75, "R": 0.65, "count": 3})
    assert [row["id"] for row in agg["per_expression"]] == ["a", "b", "c"]


def test_aggregate_expressions_accepts_mappings_and_one_subset():
    agg = aggregate_expressions([{"id": "x", "type": "referring", "J": 0.5, "F": 0.7}])
    assert agg["overall"]["J&F"] == pytest.approx(0.6)
    assert agg["reasoning"] is None and agg["revos"] is None
    assert math.isnan(agg["overall"]["R"])


@pytest.mark.parametrize(
    ("results", "message"),
    [
        ([], "no expression results"),
        ([{"type": "referring", "J": 0.5}], "needs"),
        ([{"type": "other", "J": 0.5, "F": 0.5}], "type must be"),
    ],
)
def test_aggregate_expressions_reject(results, message):
    with pytest.raises(ValueError, match=message):
        aggregate_expressions(results)


# ------------------------------------------------------------------------------------- gIoU / cIoU


def test_giou_ciou_hand_case():
    preds = [square(2, 2), canvas(), square(0, 0, size=2)]
    gts = [square(2, 3), canvas(), square(6, 6, size=2)]
    # image 1: 12 / 20 (with LISA's +1e-5), image 2: empty union -> 1, image 3: disjoint -> 0;
    # the mean divides by count + 1e-5 as LISA's meter does
    assert giou(preds, gts) == pytest.approx((12 / (20 + 1e-5) + 1 + 0) / (3 + 1e-5), rel=1e-12)
    # cIoU pools pixels: 12 / (20 + 0 + 8)
    assert ciou(preds, gts) == pytest.approx(12 / 28, rel=1e-9)
    assert image_iou(canvas(), canvas()) == 1.0
    assert image_iou(square(2, 2), square(2, 2)) == pytest.approx(16 / (16 + 1e-5), rel=1e-15)
    assert image_iou(square(2, 2), square(2, 2)) < 1.0


def test_giou_ciou_match_lisa_with_ignored_pixels():
    rng = np.random.default_rng(11)
    preds, gts, voids, lisa_gts = [], [], [], []
    for i in range(12):
        h, w = int(rng.integers(5, 40)), int(rng.integers(5, 40))
        pred = rng.random((h, w)) < rng.uniform(0, 0.5)
        gt = rng.random((h, w)) < (0 if i == 3 else rng.uniform(0, 0.5))
        void = rng.random((h, w)) < 0.1
        if i == 3:
            pred[:] = False  # an image with an empty union
        preds.append(pred)
        gts.append(gt)
        voids.append(void)
        lisa_gts.append(np.where(void, 255, gt.astype(np.int64)))  # LISA's ignore_index
    lisa_giou, lisa_ciou = ref.lisa_giou_ciou(preds, lisa_gts)
    assert giou(preds, gts, voids) == pytest.approx(lisa_giou, abs=1e-9)
    assert ciou(preds, gts, voids) == pytest.approx(lisa_ciou, abs=1e-9)


@pytest.mark.parametrize(
    ("preds", "gts", "message"),
    [
        ([], [], "zero images"),
        ([canvas()], [], "1 predicted masks but 0"),
        ([canvas(4, 4)], [canvas(4, 5)], "shapes differ"),
        ([np.zeros((2, 4, 4))], [np.zeros((2, 4, 4))], "one \\(H, W\\) mask"),
    ],
)
def test_giou_ciou_reject(preds, gts, message):
    with pytest.raises(ValueError, match=message):
        giou(preds, gts)
    with pytest.raises(ValueError, match=message):
        ciou(preds, gts)
