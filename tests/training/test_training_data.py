"""Ground-truth masks -> training targets and TRL rows (hand-made masks, one tiny shapes scenario)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from videoseg.core.masks import decode_rle
from videoseg.training.data import (
    negative_point,
    object_box,
    object_point,
    object_targets,
    shapes_dataset,
    target_frame_for,
    training_example,
)
from videoseg.training.rewards import mask_distance, videoseg_r1_total


def canvas(h: int = 60, w: int = 60) -> np.ndarray:
    return np.zeros((h, w), dtype=np.uint8)


def rect(m: np.ndarray, x1: int, y1: int, x2: int, y2: int, value: int = 1) -> np.ndarray:
    """Fill columns x1..x2 and rows y1..y2 (inclusive)."""
    m[y1 : y2 + 1, x1 : x2 + 1] = value
    return m


def l_shape() -> np.ndarray:
    m = rect(canvas(), 5, 10, 8, 30)
    return rect(m, 5, 27, 25, 30) > 0


def two_blobs() -> np.ndarray:
    # a 7x7 square in the frame corner and a 5x5 square far right: the centroid (13, 3) is in the gap
    m = rect(canvas(10, 40), 0, 0, 6, 6)
    return rect(m, 30, 1, 34, 5) > 0


@pytest.mark.parametrize(
    ("mask", "box"),
    [
        (rect(canvas(), 7, 3, 7, 3) > 0, [7, 3, 7, 3]),  # one pixel
        (rect(canvas(), 3, 2, 9, 6) > 0, [3, 2, 9, 6]),
        (l_shape(), [5, 10, 25, 30]),
        (two_blobs(), [0, 0, 34, 6]),
    ],
)
def test_object_box_is_the_extreme_pixels(mask: np.ndarray, box: list[int]) -> None:
    assert object_box(mask) == box


@pytest.mark.parametrize(
    ("mask", "point"),
    [
        (rect(canvas(), 7, 3, 7, 3) > 0, [7, 3]),
        (rect(canvas(), 3, 2, 9, 6) > 0, [6, 4]),  # the centroid, on the mask
        # split mask: centroid off the mask -> the deepest pixel, the 7x7 square's centre (the frame
        # border counts as boundary: unpadded, the corner pixel (0, 0) would look 7 px deep)
        (two_blobs(), [3, 3]),
    ],
)
def test_object_point(mask: np.ndarray, point: list[int]) -> None:
    assert object_point(mask) == point


def test_object_point_of_a_non_convex_mask_is_inside_and_deepest() -> None:
    ring = rect(canvas(), 10, 10, 40, 40)
    ring = rect(ring, 16, 16, 34, 34, 0) > 0  # a 6 px thick square ring: its centroid is in the hole
    x, y = object_point(ring)
    assert ring[y, x]
    depth = distance_transform_edt(np.pad(ring, 1))[1:-1, 1:-1]
    # a straight side is 3 px deep at most; the corners' 6x6 blocks reach 4 px (e.g. (13, 13))
    assert depth[y, x] == depth.max() == 4.0


def test_box_and_point_reject_empty_masks() -> None:
    with pytest.raises(ValueError, match="empty"):
        object_box(canvas() > 0)
    with pytest.raises(ValueError, match="empty"):
        object_point(canvas() > 0)


def test_negative_point_prefers_a_nearby_distractor() -> None:
    ids = rect(canvas(), 10, 10, 19, 19, 1)
    rect(ids, 30, 10, 39, 19, 2)  # a distractor 11 px to the right
    # distractor pixels 11 px away (column 30) are the closest to the 10 px offset; the row nearest
    # the target's centre (14, 14) wins
    assert negative_point(ids, 1, [1]) == [30, 14]


def test_negative_point_on_background_avoids_other_targets() -> None:
    ids = rect(canvas(), 10, 10, 19, 19, 1)
    q = negative_point(ids, 1, [1])
    d = mask_distance(ids == 1)
    assert d[q[1], q[0]] == 10.0
    # another target right beside object 1: its pixels never become negative points
    rect(ids, 20, 0, 59, 59, 3)
    q = negative_point(ids, 1, [1, 3])
    assert ids[q[1], q[0]] == 0 and 0 < d[q[1], q[0]] <= 40
    # object 1 fills all the frame that is not another target: no negative point
    full = rect(canvas(20, 20), 0, 0, 19, 19, 1)
    assert negative_point(full, 1, [1]) is None


def test_object_targets_skip_absent_objects_and_keep_query_order() -> None:
    ids = rect(canvas(), 40, 40, 49, 49, 2)
    rect(ids, 2, 2, 11, 11, 5)
    targets = object_targets(ids, [5, 7, 2], with_negatives=False)
    assert targets == [
        {"bbox_2d": [2, 2, 11, 11], "point_2d": [6, 6], "obj_id": 5},  # centroid 6.5 rounds to even
        {"bbox_2d": [40, 40, 49, 49], "point_2d": [44, 44], "obj_id": 2},
    ]
    with pytest.raises(ValueError, match="object-id map"):
        object_targets(np.zeros((2, 3, 4), dtype=np.uint8), [1])


def test_training_example_row() -> None:
    ids = rect(canvas(40, 40), 10, 10, 19, 19, 1)
    rect(ids, 30, 30, 35, 35, 2)
    frame = np.full((40, 40, 3), 128, dtype=np.uint8)
    row = training_example(frame, ids, [1], "the grey square", budget=96, answer_size=(80, 80))
    # nearest-neighbour 2x: columns 10..19 -> 20..39
    assert row["targets"][0]["bbox_2d"] == [20, 20, 39, 39]
    assert row["images"][0].size == (80, 80)
    assert (row["width"], row["height"], row["budget"], row["obj_ids"]) == (80, 80, 96, [1])
    mask = decode_rle(row["target_mask"])
    assert mask.shape == (80, 80) and mask.sum() == 400 and mask[20, 20] and not mask[60, 60]
    text = row["prompt"][0]["content"][1]["text"]
    assert '"the grey square"' in text and "80 x 80" in text and "96 tokens" in text
    assert row["prompt"][0]["content"][0] == {"type": "image"}
    json.dumps({k: v for k, v in row.items() if k != "images"})  # JSON-ready columns


@pytest.mark.parametrize(
    ("frame", "ids", "query", "message"),
    [
        (np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4), np.uint8), "q", "does not match"),
        (np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8), "q", "frame must be"),
        (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8), "  ", "query is empty"),
    ],
)
def test_training_example_rejects_bad_input(frame, ids, query, message) -> None:
    with pytest.raises(ValueError, match=message):
        training_example(frame, ids, [1], query)


def test_target_frame_is_where_the_objects_show_most() -> None:
    masks = np.zeros((3, 10, 10), dtype=np.uint8)
    masks[0, :2, :2] = 1
    masks[1, :3, :3] = 1
    masks[2, :3, :3] = 1
    masks[2, 5:, 5:] = 2
    assert target_frame_for(masks, [1]) == 1  # 9 px, earliest of the ties
    assert target_frame_for(masks, [1, 2]) == 2
    assert target_frame_for(masks, [4]) is None


def test_shapes_dataset_rows_are_consistent_and_an_oracle_answer_scores_the_maximum() -> None:
    rows = shapes_dataset([3], size=(160, 120))
    assert rows
    for row in rows:
        mask = decode_rle(row["target_mask"])
        assert mask.shape == (120, 160)
        assert len(row["targets"]) == len(row["obj_ids"])  # the chosen frame shows every object
        d = mask_distance(mask)
        for t in row["targets"]:
            x1, y1, x2, y2 = t["bbox_2d"]
            x, y = t["point_2d"]
            assert mask[y, x] and x1 <= x <= x2 and y1 <= y <= y2
            nx, ny = t["neg_point_2d"]
            assert 0 < d[ny, nx] <= 40
        oracle = [{k: t[k] for k in ("bbox_2d", "point_2d", "neg_point_2d")} for t in row["targets"]]
        text = f"<think>I find the target.</think><answer>{json.dumps(oracle)}</answer>"
        assert videoseg_r1_total(text, json.dumps(row["targets"]), mask) == 8.0
