"""Ground-truth masks -> training targets and TRL rows (hand-made masks, one tiny shapes scenario)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import distance_transform_edt

from videoseg.core.masks import decode_rle
from videoseg.training.data import (
    DISTRACTOR_ID,
    FramePlan,
    TrainingDataError,
    benchmark_id_maps,
    negative_point,
    object_box,
    object_point,
    object_targets,
    oracle_plan,
    reason_request,
    segzero_solution,
    shapes_dataset,
    target_frame_for,
    training_example,
    trl_prompt,
    video_training_row,
    visible_span,
    visionreasoner_solution,
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


# --------------------------------------------------------------------------- video rows (trainer)


class FakeProfile:
    """A profile stand-in: answers in a 2x upscaled space, shows every key frame then the target."""

    max_new_tokens = 64

    def answer_size(self, width: int, height: int) -> tuple[int, int]:
        return 2 * width, 2 * height

    def reason_messages(self, request) -> list[dict]:
        content = [{"type": "text", "text": "key:"}]
        content += [{"type": "image", "image": f} for f in request.key_clip.frames]  # arrays
        content += [{"type": "text", "text": f"target {request.target_index}, budget {request.budget}"}]
        content += [{"type": "image", "image": Image.fromarray(request.target_frame)}]
        return [{"role": "system", "content": "be brief"}, {"role": "user", "content": content}]


def test_visible_span_and_oracle_plan() -> None:
    masks = np.zeros((10, 8, 8), dtype=np.uint8)
    masks[3, :2, :2] = 1
    masks[5, :4, :4] = 1  # largest
    masks[7, :1, :1] = 2
    assert visible_span(masks, [1]) == (3, 5)
    assert visible_span(masks, [1, 2]) == (3, 7)
    assert visible_span(masks, [9]) is None
    plan = oracle_plan(masks, [1, 2], num_key_frames=3, num_reference_frames=4)
    # key segment 3..7, target = frame 5 (most area), 3 frames evenly over it; references over 0..9
    assert plan == FramePlan(
        key_segment=(3, 7), target=5, key_frames=[3, 5, 7], reference_frames=[0, 3, 6, 9]
    )
    plan = oracle_plan(masks, [1], num_key_frames=2, num_reference_frames=0)
    assert plan.target == 5 and plan.key_frames == [3, 5] and plan.reference_frames == []
    assert oracle_plan(masks, [9], 3, 2) is None


def test_trl_prompt_moves_images_out_and_refuses_videos() -> None:
    frame = np.full((4, 6, 3), 7, dtype=np.uint8)
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image", "image": frame},
                                     {"type": "image", "image": Image.fromarray(frame).convert("L")}]},
    ]  # fmt: skip
    prompt, images = trl_prompt(messages)
    assert prompt == [
        {"role": "system", "content": [{"type": "text", "text": "sys"}]},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image"}, {"type": "image"}]},
    ]
    assert [im.size for im in images] == [(6, 4), (6, 4)] and all(im.mode == "RGB" for im in images)
    with pytest.raises(TrainingDataError, match="'video'"):
        trl_prompt([{"role": "user", "content": [{"type": "video", "video": [frame]}]}])
    with pytest.raises(TrainingDataError, match="without its image"):
        trl_prompt([{"role": "user", "content": [{"type": "image"}]}])


def test_ground_truth_strings_in_the_official_formats() -> None:
    targets = [{"bbox_2d": [1, 2, 30, 40], "point_2d": [15, 20], "neg_point_2d": [35, 20], "obj_id": 3}]
    assert json.loads(visionreasoner_solution(targets)) == [{"bbox_2d": [1, 2, 30, 40], "point_2d": [15, 20]}]
    assert segzero_solution(targets) == "<box>(1,2),(30,40)</box><points>(15,20),(15,20)</points>"
    assert segzero_solution([]) == "" and visionreasoner_solution([]) == "[]"


def test_video_training_row_from_a_shapes_scenario() -> None:
    from videoseg.shapes import generate

    sc = generate(3, size=(128, 96))
    expr = sc.expressions[0]
    plan = oracle_plan(sc.masks, expr.obj_ids, num_key_frames=3, num_reference_frames=2)
    request = reason_request(lambda idx: sc.frames[idx], sc.fps, sc.num_frames, plan, expr.text, budget=96)
    assert request.key_clip.frame_indices == plan.key_frames and request.target_index == plan.target
    assert request.reference_clip.frame_indices == plan.reference_frames
    assert np.array_equal(request.target_frame, sc.frames[plan.target])
    row = video_training_row(request, sc.masks[plan.target], expr.obj_ids, FakeProfile(), difficulty=2.0,
                             key="k", extra={"seed": 3})  # fmt: skip
    assert len(row["images"]) == 4 and row["images"][-1].size == (128, 96)
    assert row["prompt"][1]["content"][-2] == {"type": "text", "text": f"target {plan.target}, budget 96"}
    assert (row["width"], row["height"], row["budget"], row["difficulty"], row["seed"]) == (
        256,
        192,
        96,
        2.0,
        3,
    )
    # the ground truth is on the target frame, in the (2x) answer space
    mask = decode_rle(row["target_mask"])
    truth = np.isin(sc.masks[plan.target], expr.obj_ids)
    assert mask.shape == (192, 256) and mask.sum() == 4 * truth.sum()
    targets = json.loads(row["targets"])
    ys, xs = np.nonzero(sc.masks[plan.target] == expr.obj_ids[0])
    assert targets[0]["bbox_2d"] == [2 * xs.min(), 2 * ys.min(), 2 * xs.max() + 1, 2 * ys.max() + 1]
    assert json.loads(row["solution"])[0]["bbox_2d"] == targets[0]["bbox_2d"]
    with pytest.raises(TrainingDataError, match="does not match"):
        video_training_row(request, sc.masks[plan.target][:5], expr.obj_ids, FakeProfile(), key="k")


def test_benchmark_id_maps_label_each_object_and_the_distractors(tmp_path) -> None:
    from tests.eval.test_benchmark_datasets import REVOS_NAMES, SCENARIOS, make_revos
    from videoseg.eval.datasets import load_benchmark

    bench = load_benchmark("revos", make_revos(tmp_path / "revos"), "valid")
    multi = next(e for e in bench.expressions() if len(e.anno_ids) == 2)
    sc = SCENARIOS[{v: k for k, v in REVOS_NAMES.items()}[multi.video]]
    labels, ids = benchmark_id_maps(bench, multi, sc.size)
    assert ids == [1, 2] and labels.shape == sc.masks.shape
    truth = next(e for e in sc.expressions if e.text == multi.text)
    for k, obj in enumerate(truth.obj_ids):
        assert np.array_equal(labels == k + 1, sc.masks == obj)
    others = (sc.masks != 0) & ~np.isin(sc.masks, truth.obj_ids)
    assert np.array_equal(labels == DISTRACTOR_ID, others)
