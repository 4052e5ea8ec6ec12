"""The official rewards (VisionReasoner, Seg-Zero strict, PixelThink) and the paper's terms, by table.

Every expected value below is worked out by hand from the formulas of the official files named in
``videoseg/training/rewards.py`` (Seg-Zero ``verl/utils/reward_score/vision_reasoner.py`` and
``seg_restrict.py``; PixelThink ``verl/utils/reward_score/seg_pixelthink.py`` / ``length.py``); the
comment on a row says why. Rows marked "quirk" are where the official code is stricter (or odder)
than a lenient reading, and where the old in-repo reward differed.
"""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest

from videoseg.core.masks import encode_rle
from videoseg.training import rewards as rw
from videoseg.training.rewards import (
    accuracy,
    answer_negatives,
    format_reward,
    length_factor,
    length_words,
    negative_point_reward,
    non_repeat,
    pixelthink_total,
    pixelthink_uncertainty,
    reasoning_words,
    seg_format,
    segzero_box_iou,
    segzero_box_l1,
    segzero_format,
    segzero_iou,
    segzero_point,
    segzero_total,
    soft_length_factor,
    think_format,
    total,
    trl_reward_funcs,
    trl_reward_weights,
    videoseg_r1_total,
)

A = {"bbox_2d": [10, 10, 49, 49], "point_2d": [30, 30]}
B = {"bbox_2d": [100, 10, 139, 49], "point_2d": [120, 30]}
GT_A = json.dumps([A])
GT_AB = json.dumps([A, B])


def vr(items, think: str = "I look at the frame") -> str:
    """A well-formed VisionReasoner completion (no trailing newline)."""
    return f"<think>{think}</think><answer>{json.dumps(items)}</answer>"


# --------------------------------------------------------------------------- VisionReasoner

VR_TABLE = [
    # (completion, gt, think_format, seg_format, accuracy, non_repeat, why)
    (vr([A]), GT_A, 1, 2, 3, 1, "exact answer: 1 + 2 + 3 + 1 = 7"),
    (vr([A]) + "\n", GT_A, 0, 2, 3, 1, "quirk: fullmatch on the unstripped text, a trailing newline fails"),
    (" " + vr([A]), GT_A, 0, 2, 3, 1, "quirk: a leading space fails the think format"),
    (vr([A]) + " done", GT_A, 0, 2, 3, 1, "text after </answer> fails the think format"),
    (
        f"<answer>{json.dumps([A])}</answer>",
        GT_A,
        0,
        2,
        3,
        1,
        "no <think>: format 0, the answer still counts",
    ),
    (
        "<think>a</think><answer>```json\n" + json.dumps([A]) + "\n```</answer>",
        GT_A,
        1,
        0,
        0,
        1,
        "quirk: a fenced answer is not JSON: seg_format and accuracy 0",
    ),
    (
        "<think>a</think><answer>[{'bbox_2d': [10, 10, 49, 49], 'point_2d': [30, 30]}]</answer>",
        GT_A,
        1,
        0,
        0,
        1,
        "quirk: single quotes are not JSON",
    ),
    (
        "<think>a</think><answer>[]</answer>",
        "[]",
        1,
        0,
        0,
        1,
        "quirk: an empty answer scores 0 even against an empty ground truth",
    ),
    ("<think>a</think><answer>[]</answer>", GT_A, 1, 0, 0, 1, "empty answer, one target"),
    (vr([A, 5]), GT_A, 1, 1, 0, 1, "quirk: item 2 raises; item 1 keeps its 2/2 share; accuracy fails"),
    (vr([5, A]), GT_A, 1, 0, 0, 1, "quirk: item 1 raises first: nothing kept"),
    (vr(A), GT_A, 1, 0, 0, 1, "quirk: an object, not a list: iterating its keys raises"),
    (
        vr([{"bbox_2d": [10, 10, 49], "point_2d": [30, 30]}]),
        GT_A,
        1,
        1,
        0,
        1,
        "a 3-number box: format 1 of 2; numpy cannot split it in 4: accuracy 0",
    ),
    (
        vr([{"bbox_2d": ["10", "10", "49", "49"], "point_2d": [30, 30]}]),
        GT_A,
        1,
        2,
        0,
        1,
        "quirk: format does not look at the numbers; string boxes make accuracy raise",
    ),
    (vr([{"bbox_2d": [10, 10, 49, 49]}]), GT_A, 1, 1, 0, 1, "no point: format 1, accuracy raises (KeyError)"),
    (
        vr([{"bbox_2d": [10, 10, 19, 19], "point_2d": [15, 15]}]),
        json.dumps([{"bbox_2d": [10, 10, 19, 29], "point_2d": [15, 20]}]),
        1,
        2,
        2,
        1,
        "IoU = 100/200 = 0.5 is not > 0.5; L1 = 10/4 = 2.5 < 10; point 5 px and inside: 2",
    ),
    (
        vr([{"bbox_2d": [10, 10, 19, 19], "point_2d": [25, 15]}]),
        json.dumps([{"bbox_2d": [10, 10, 19, 19], "point_2d": [25, 15]}]),
        1,
        2,
        2,
        1,
        "point on the GT point but outside its own predicted box: point criterion 0",
    ),
    (
        vr([{"bbox_2d": [49, 49, 10, 10], "point_2d": [30, 30]}]),
        GT_A,
        1,
        2,
        0,
        1,
        "quirk: an inverted box is not reordered: no intersection, L1 39, point not inside: 0",
    ),
    (
        vr([A, {"bbox_2d": [300, 300, 310, 310], "point_2d": [305, 305]}]),
        GT_A,
        1,
        2,
        1.5,
        1,
        "one match of 3, an extra prediction: 3 / max(2, 1) = 1.5",
    ),
    (vr([B, A]), GT_AB, 1, 2, 3, 1, "Hungarian matching: the order of the predictions does not matter"),
    (vr([A]), GT_AB, 1, 2, 1.5, 1, "one of two targets found: 3 / 2"),
    (vr([A]), "not json", 1, 2, 0, 1, "a ground truth that is not JSON: accuracy 0"),
    (vr([A]), json.dumps([{"bbox_2d": [10, 10, 49, 49]}]), 1, 2, 0, 1, "a ground truth without point_2d: 0"),
    (vr([A], think="x. a. b. a. b. c"), GT_A, 1, 2, 3, 0, "two repeated sentences: non_repeat 0"),
    (vr([A], think="x. a. b. a. c"), GT_A, 1, 2, 3, 1, "a single repeat is free"),
]


@pytest.mark.parametrize("completion,gt,think,seg,acc,rep,why", VR_TABLE, ids=[r[-1][:40] for r in VR_TABLE])
def test_visionreasoner_table(completion, gt, think, seg, acc, rep, why) -> None:
    assert think_format(completion) == think, why
    assert seg_format(completion) == pytest.approx(seg), why
    assert format_reward(completion) == pytest.approx(think + seg), why
    assert accuracy(completion, gt) == pytest.approx(acc), why
    assert non_repeat(completion) == rep, why
    assert total(completion, gt) == pytest.approx(think + seg + acc + rep), why


def test_accuracy_caps_both_lists_at_120_objects() -> None:
    # 121 copies of the right answer: the list is cut to 120, one of them matches: 3 / 120
    assert accuracy(vr([A] * 121), GT_A) == pytest.approx(3 / 120)
    assert accuracy(vr([A] * 120), GT_A) == pytest.approx(3 / 120)
    # 130 targets answered in full: only the first 120 of each are compared, all match
    many = [{"bbox_2d": [i * 50, 0, i * 50 + 39, 39], "point_2d": [i * 50 + 20, 20]} for i in range(130)]
    assert accuracy(vr(many), json.dumps(many)) == pytest.approx(3.0)
    # without the cap the same answer against 130 targets would be 3 * 120 / 130 if the GT kept them all
    assert accuracy(vr(many[:120]), json.dumps(many)) == pytest.approx(3.0)


def test_matching_reports_pairs_and_criteria() -> None:
    m = rw.visionreasoner_matching(vr([B, A]), GT_AB)
    assert sorted(m.pairs) == [(0, 1), (1, 0)]
    assert m.criteria[0, 1] == 3 and m.criteria[0, 0] == 0
    assert m.iou[1, 0] == pytest.approx(1.0)
    with pytest.raises(IndexError):  # np.split of the empty answer: what the official code swallows
        rw.visionreasoner_matching("<think>a</think><answer>[]</answer>", "[]")


# --------------------------------------------------------------------------- Seg-Zero strict

SZ_GT = "<box>(10,10),(49,49)</box><points>(20,20),(40,40)</points>"
SZ_OK = '{"bbox": [10, 10, 49, 49], "points_1": [20, 20], "points_2": [40, 40]}'


def sz(answer: str, think: str = "a") -> str:
    return f"<think>{think}</think><answer>{answer}</answer>"


SZ_TABLE = [
    # (completion, gt, format, iou, box_l1, point, why); think_format is 1 unless said
    (sz(SZ_OK), SZ_GT, 1, 1, 1, 1, "exact: 1 + 1 + 1 + 1 + 1 = 5"),
    (
        sz('{"bbox": [10, 10, 49, 49], "points_1": [40, 40], "points_2": [20, 20]}'),
        SZ_GT,
        1,
        1,
        1,
        1,
        "swapped points: the crossed pairing is taken",
    ),
    (
        sz('{"bbox": [10, 10, 49, 49], "points_1": [20.9, 20.9], "points_2": [40.2, 40]}'),
        SZ_GT,
        1,
        1,
        1,
        1,
        "points are cut by int(): 20.9 -> 20",
    ),
    (
        sz('{"bbox": [12, 12, 51, 51], "points_1": [20, 20], "points_2": [40, 40]}'),
        SZ_GT,
        1,
        1,
        1,
        1,
        "shifted 2 px: IoU 38*38/(1600+1600-1444) = 0.82, L1 2",
    ),
    (
        sz('{"bbox": [10, 10, 49, 69], "points_1": [20, 20], "points_2": [40, 40]}'),
        SZ_GT,
        1,
        1,
        1,
        1,
        "taller box: IoU 1600/2400 = 0.67 > 0.5, L1 20/4 = 5 < 10",
    ),
    (
        sz('{"bbox": [10, 10, 49, 89], "points_1": [20, 20], "points_2": [40, 40]}'),
        SZ_GT,
        1,
        0,
        0,
        1,
        "IoU 1600/3200 = 0.5 is not > 0.5, L1 40/4 = 10 is not < 10",
    ),
    (
        sz('{"bbox": [49, 49, 10, 10], "points_1": [20, 20], "points_2": [40, 40]}'),
        SZ_GT,
        1,
        0,
        0,
        0,
        "quirk: inverted box: no intersection, L1 39, points never inside",
    ),
    (
        sz('{"bbox": [10, 10, 49, 49, 0], "points_1": [20, 20], "points_2": [40, 40]}'),
        SZ_GT,
        0,
        0,
        0,
        0,
        "a 5-number box: every term 0",
    ),
    (
        sz('{"bbox": [10, 10, 49, 49], "points_1": [20, 20]}'),
        SZ_GT,
        0,
        1,
        1,
        0,
        "no points_2: format 0, point 0 (KeyError); the box terms still pay",
    ),
    (
        sz('{"bbox": [10, 10, 49, 49], "points_1": [20, 20], "points_2": [40, 40], "x": 1}'),
        SZ_GT,
        1,
        1,
        1,
        1,
        "extra keys are allowed",
    ),
    (
        '<think>try {"bbox": [0, 0, 1, 1]} first</think><answer>' + SZ_OK + "</answer>",
        SZ_GT,
        0,
        0,
        0,
        0,
        "quirk: the first {...} anywhere is read, here the one in <think>",
    ),
    (sz("[" + SZ_OK + "]"), SZ_GT, 1, 1, 1, 1, "the brace group inside a list is still found"),
    (sz("```json\n" + SZ_OK + "\n```"), SZ_GT, 1, 1, 1, 1, "a fence around the object does not matter here"),
    (sz(SZ_OK.replace('"', "'")), SZ_GT, 0, 0, 0, 0, "single quotes are not JSON"),
    (
        sz(SZ_OK),
        "<box>(10, 10),(49,49)</box><points>(20,20),(40,40)</points>",
        1,
        0,
        0,
        1,
        "quirk: a space in the GT box: no box, iou and L1 0 (the points still parse)",
    ),
    (sz(SZ_OK), "<box>(10,10),(49,49)</box>", 1, 1, 1, 0, "a GT without <points>: point 0"),
]


@pytest.mark.parametrize("completion,gt,fmt,iou,l1,point,why", SZ_TABLE, ids=[r[-1][:40] for r in SZ_TABLE])
def test_segzero_table(completion, gt, fmt, iou, l1, point, why) -> None:
    assert segzero_format(completion) == fmt, why
    assert segzero_iou(completion, gt) == iou, why
    assert segzero_box_l1(completion, gt) == l1, why
    assert segzero_point(completion, gt) == point, why
    assert segzero_total(completion, gt) == think_format(completion) + fmt + iou + l1 + point, why


def test_segzero_iou_counts_no_intersection_for_boxes_that_share_an_edge() -> None:
    # quirk: ix1 = ix2 = 10 fails "ix1 < ix2"; VisionReasoner's IoU would count a 1 x 11 column
    c = sz('{"bbox": [0, 0, 10, 10], "points_1": [5, 5], "points_2": [5, 5]}')
    assert segzero_box_iou(c, "<box>(10,0),(20,10)</box>") == 0.0
    # overlap (15 - 10 + 1) * (10 - 0 + 1) = 66 px; areas 16 * 11 = 176 and 121: union 231
    c = sz('{"bbox": [0, 0, 15, 10], "points_1": [5, 5], "points_2": [5, 5]}')
    assert segzero_box_iou(c, "<box>(10,0),(20,10)</box>") == pytest.approx(66 / 231)


def test_segzero_point_threshold_is_100_px_mean_matched_distance() -> None:
    gt = "<box>(0,0),(400,400)</box><points>(20,20),(40,40)</points>"
    on = sz('{"bbox": [0, 0, 400, 400], "points_1": [20, 20], "points_2": [239, 40]}')
    off = sz('{"bbox": [0, 0, 400, 400], "points_1": [20, 20], "points_2": [240, 40]}')
    assert segzero_point(on, gt) == 1.0  # (0 + 199) / 2 = 99.5 < 100
    assert segzero_point(off, gt) == 0.0  # (0 + 200) / 2 = 100, not < 100


# --------------------------------------------------------------------------- PixelThink

LF_TABLE = [
    # (n_tokens, difficulty, uncertainty, factor, why)
    (96, 2.0, 0.0, 1.0, "easy (D < 3.5): budget 96, at budget"),
    (50, 2.0, 0.0, 1.0, "under budget: 1 + beta * 46, clamped to 1"),
    (146, 2.0, 0.0, 0.9, "50 over: 1 - 0.002 * 50"),
    (596, 3.49, 0.0, 0.0, "500 over: 0"),
    (900, 3.49, 0.0, 0.0, "further over: clamped at 0"),
    (5000, 3.5, 0.0, 1.0, "3.5 <= D < 5: no budget, no penalty"),
    (5000, 4.99, 1.0, 1.0, "medium ignores uncertainty"),
    (306, 5.0, 0.0, 0.9, "hard: budget 256, 50 over"),
    (306, 5.0, 1.0, 0.95, "hard with uncertainty 1: budget 256 + 25 = 281, 25 over"),
    (146, 2.0, 1.0, 0.9, "uncertainty only moves the hard budget"),
]


@pytest.mark.parametrize("n,d,u,factor,why", LF_TABLE, ids=[r[-1][:40] for r in LF_TABLE])
def test_pixelthink_length_factor_table(n, d, u, factor, why) -> None:
    assert length_factor(n, d, u) == pytest.approx(factor), why


def test_pixelthink_counts_words_of_the_whole_response_by_default() -> None:
    answer = '{"bbox":[10,10,49,49],"points_1":[20,20],"points_2":[40,40]}'
    text = "<think>" + " ".join(["w"] * 146) + "</think><answer>" + answer + "</answer>"
    # "<think>w", 144 x "w", "w</think><answer>{...}</answer>": 146 words
    assert length_words(text) == 146
    assert reasoning_words(text) == 146
    assert segzero_total(text, SZ_GT) == 5.0
    assert pixelthink_total(text, SZ_GT, 2.0) == pytest.approx(5 * 0.9)
    assert pixelthink_total(text, SZ_GT, 4.0) == 5.0
    assert pixelthink_total(text, SZ_GT, 2.0, length_used=96) == 5.0  # the reasoning-tokens mode
    assert length_words("") == 0 and reasoning_words("no tags here") == 0
    assert reasoning_words("<think>  a b\n c </think> x y") == 3


def test_pixelthink_uncertainty_is_the_mean_top_two_margin() -> None:
    # token 1: 1 - (0.7 - 0.2) = 0.5; token 2 has a single candidate: skipped; token 3: 1 - (0.9 - 0.05) = 0.15
    lp = [[math.log(0.7), math.log(0.2)], [math.log(0.99)], [math.log(0.9), math.log(0.05), math.log(0.01)]]
    assert pixelthink_uncertainty(lp) == pytest.approx((0.5 + 0.15) / 2, abs=1e-6)
    assert pixelthink_uncertainty([]) == 0.0


# --------------------------------------------------------------------------- the paper's terms


def square_mask() -> np.ndarray:
    m = np.zeros((100, 100), dtype=bool)
    m[40:60, 30:50] = True  # columns 30..49, rows 40..59
    return m


def test_negative_point_reward_table() -> None:
    m = square_mask()
    # (60, 50): 11 px right of column 49 -> earns; (40, 50): on the mask (0) -> not; (89, 50): 40 px -> earns
    assert negative_point_reward([[60, 50], [40, 50], [89, 50]], m) == pytest.approx(2 / 3)
    assert negative_point_reward([[90, 50]], m) == 0.0  # 41 px
    assert negative_point_reward([[120, 50]], m) == 0.0  # outside the image
    assert negative_point_reward([], m) == 0.0
    assert negative_point_reward([[60, 50]], None) == 0.0
    assert negative_point_reward([[60, 50]], np.zeros_like(m)) == 0.0


def test_answer_negatives_are_read_strictly() -> None:
    one = vr([{**A, "neg_point_2d": [60, 50]}])
    two = vr([{**A, "neg_point_2d": [[60, 50], [1, 2]]}, {**B, "neg_point_2d": []}])
    assert answer_negatives(one) == [[60.0, 50.0]]
    assert answer_negatives(two) == [[60.0, 50.0], [1.0, 2.0]]
    assert answer_negatives('<answer>```json\n[{"neg_point_2d": [1, 2]}]\n```</answer>') == []
    assert answer_negatives(vr([{"neg_point_2d": ["a", 2]}])) == []


SOFT_TABLE = [
    # (n, difficulty, factor, why)
    (146, 2.0, 0.9, "easy: 96 budget, 50 over"),
    (5000, 4.0, 1.0, "medium: no budget"),
    (306, 6.0, 0.9, "hard: 256, 50 over"),
    (
        146,
        {"scene": 2, "segmentation": 2, "temporal": 2, "motion": 2, "linguistic": 2},
        0.9,
        "five axes, mean 2",
    ),
    (
        146,
        {"scene": 0, "segmentation": 1, "temporal": 1, "motion": 1, "linguistic": 1},
        0.9,
        "scores clamp to 1",
    ),
    (306, {"scene": 9, "segmentation": 9, "temporal": 1, "motion": 1, "linguistic": 5}, 0.9, "mean 5: hard"),
    (10_000, None, 1.0, "no difficulty: no penalty"),
]


@pytest.mark.parametrize("n,d,factor,why", SOFT_TABLE, ids=[r[-1][:40] for r in SOFT_TABLE])
def test_soft_length_factor_table(n, d, factor, why) -> None:
    assert soft_length_factor(n, d) == pytest.approx(factor), why


def test_videoseg_r1_total_composes_the_paper_reward() -> None:
    m = square_mask()
    gt = json.dumps([{"bbox_2d": [30, 40, 49, 59], "point_2d": [40, 50]}])
    item = {"bbox_2d": [30, 40, 49, 59], "point_2d": [40, 50], "neg_point_2d": [60, 50]}
    short = vr([item])
    assert videoseg_r1_total(short, gt, m, 2.0) == pytest.approx(8.0)  # 7 + 1, 5 words of reasoning
    long = vr([item], think=" ".join(["w"] * 146))
    assert videoseg_r1_total(long, gt, m, 2.0) == pytest.approx(8.0 * 0.9)  # 146 reasoning words, budget 96
    assert videoseg_r1_total(long, gt, m, 4.0) == pytest.approx(8.0)
    assert videoseg_r1_total(long, gt, m, 2.0, n_tokens=96) == pytest.approx(8.0)
    assert videoseg_r1_total(long, gt, None, 2.0) == pytest.approx(7.0 * 0.9)  # no mask: no negative term
    b = rw.breakdown(long, gt, "videoseg-r1", mask=m, difficulty=2.0)
    assert b.terms == {
        "think_format": 1,
        "seg_format": 2,
        "accuracy": 3,
        "non_repeat": 1,
        "negative_point": 1,
    }
    assert (b.factor, b.length_used, b.budget) == (pytest.approx(0.9), 146, 96)
    assert b.total == pytest.approx(7.2)


# --------------------------------------------------------------------------- TRL wrappers


def test_trl_reward_funcs_sum_to_the_official_totals() -> None:
    m = square_mask()
    item = {"bbox_2d": [30, 40, 49, 59], "point_2d": [40, 50], "neg_point_2d": [60, 50]}
    targets = [{"bbox_2d": [30, 40, 49, 59], "point_2d": [40, 50], "obj_id": 1}]
    completions = [
        vr([item], think=" ".join(["w"] * 146)),
        [{"role": "assistant", "content": vr([item])}],  # conversational
        "garbage",
    ]
    texts = [rw.completion_text(c) for c in completions]
    columns = {
        "targets": [targets] * 3,
        "target_mask": [encode_rle(m)] * 3,
        "difficulty": [2.0, 6.0, None],
        "prompts": ["p"] * 3,
    }
    funcs = trl_reward_funcs("videoseg-r1")
    assert [f.__name__ for f in funcs] == [
        "think_format",
        "seg_format",
        "accuracy",
        "non_repeat",
        "negative_point",
        "length_penalty",
    ]
    sums = np.sum([f(completions, **columns) for f in funcs], axis=0)
    gt = json.dumps(targets)
    want = [videoseg_r1_total(t, gt, m, d) for t, d in zip(texts, columns["difficulty"])]
    assert sums == pytest.approx(want) and want == pytest.approx(
        [7.2, 8.0, 1.0]
    )  # "garbage" keeps non_repeat 1
    # VisionReasoner from an official "solution" column
    vfuncs = trl_reward_funcs("visionreasoner")
    sums = np.sum([f(texts, solution=[gt] * 3) for f in vfuncs], axis=0)
    assert sums == pytest.approx([total(t, gt) for t in texts])
    # Seg-Zero and PixelThink (whole-response words, difficulty and uncertainty columns)
    sz_texts = [sz(SZ_OK, think=" ".join(["w"] * 150)), sz(SZ_OK)]
    for kind, want in (
        ("segzero", [segzero_total(t, SZ_GT) for t in sz_texts]),
        ("pixelthink", [pixelthink_total(t, SZ_GT, 6.0, 0.5) for t in sz_texts]),
    ):
        got = np.sum(
            [
                f(sz_texts, solution=[SZ_GT] * 2, difficulty=[6.0] * 2, uncertainty=[0.5] * 2)
                for f in trl_reward_funcs(kind)
            ],
            axis=0,
        )
        assert got == pytest.approx(want), kind
    assert trl_reward_weights("pixelthink", log_length_factor=True)[-1] == 0.0
    logged = trl_reward_funcs("pixelthink", log_length_factor=True)[-1]
    assert logged.__name__ == "length_factor"
    assert logged([sz_texts[0]], solution=[SZ_GT], difficulty=[2.0]) == [
        pytest.approx(length_factor(length_words(sz_texts[0]), 2.0))
    ]


def test_trl_reward_funcs_are_picklable_and_checked() -> None:
    for kind in rw.KINDS:
        funcs = trl_reward_funcs(kind)
        again = pickle.loads(pickle.dumps(funcs))
        assert [f.__name__ for f in again] == list(rw.TRL_TERMS[kind])
    with pytest.raises(ValueError, match="unknown reward kind"):
        trl_reward_funcs("lenient")
    with pytest.raises(ValueError, match="needs a tokenizer"):
        trl_reward_funcs("videoseg-r1", length_mode="reasoning_tokens")


def test_reasoning_tokens_use_the_tokenizer() -> None:
    class Words:
        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": text.split() + (["<s>"] if add_special_tokens else [])}

    assert rw.reasoning_tokens("<think> a b c </think><answer>[]</answer>", Words()) == 3
    f = trl_reward_funcs("videoseg-r1", tokenizer=Words())[-1]
    text = vr([A], think=" ".join(["w"] * 146))
    assert f([text], solution=[GT_A], difficulty=[2.0]) == [pytest.approx(-0.1 * 7)]


def test_every_term_is_total_on_odd_input() -> None:
    odd = [
        "",
        "<answer>",
        "<answer></answer>",
        "{",
        "<answer>[null]</answer>",
        "<answer>[[1,2]]</answer>",
        "<answer>" + "[" * 5000 + "</answer>",
        '<answer>[{"bbox_2d": [1e999, 0, 1, 1], "point_2d": [0, 0]}]</answer>',
    ]
    for text in odd:
        for gt in ("", "[]", GT_A, SZ_GT, "<box>(1,1),(0,0)</box>"):
            for kind in rw.KINDS:
                b = rw.breakdown(text, gt, kind, mask=square_mask(), difficulty=2.0)
                assert 0.0 <= b.total <= rw.MAX_TOTAL[kind]


def test_row_solution_reads_the_trainers_columns() -> None:
    targets = [{"bbox_2d": [30, 40, 49, 59], "point_2d": [40, 50], "neg_point_2d": [60, 50], "obj_id": 1}]
    vr_gt = json.dumps([{"bbox_2d": [30, 40, 49, 59], "point_2d": [40, 50]}])
    sz_gt = "<box>(30,40),(49,59)</box><points>(40,50),(40,50)</points>"
    row = {"solution": vr_gt, "solution_segzero": sz_gt, "targets": json.dumps(targets)}
    assert rw.row_solution(row, "videoseg-r1") == vr_gt
    assert rw.row_solution(row, "pixelthink") == sz_gt
    # without the official strings: the targets (a list or its JSON); Seg-Zero writes the one point twice
    assert json.loads(rw.row_solution({"targets": targets}, "visionreasoner")) == targets
    assert rw.row_solution({"targets": json.dumps(targets)}, "segzero") == sz_gt
    assert rw.row_solution({"solution": sz_gt}, "segzero") == sz_gt
    assert rw.row_solution({}, "segzero") == "" and rw.row_solution({}, "videoseg-r1") == "[]"
    # an unreadable row scores 0 through the wrappers instead of raising inside the trainer
    (fmt,) = [f for f in trl_reward_funcs("segzero") if f.__name__ == "segzero_iou"]
    assert fmt([sz(SZ_OK)], targets=["not json"]) == [0.0]


def test_agrees_with_the_official_code_on_recorded_cases() -> None:
    """Outputs the official reward files gave on generated inputs (run outside the repository; their
    code is not vendored): odd JSON, fences, inverted and string boxes, caps, Seg-Zero brace groups,
    PixelThink lengths and difficulties. Every term must match exactly."""
    data = json.loads(Path(__file__).with_name("official_reward_cases.json").read_text())
    assert len(data["cases"]) >= 150
    for c in data["cases"]:
        text, gt = c["completion"], c["gt"]
        assert [format_reward(text), accuracy(text, gt), non_repeat(text), total(text, gt)] == c["vr"], c
        z, zgt = c["sz_completion"], c["sz_gt"]
        got = [
            think_format(z),
            segzero_format(z),
            segzero_iou(z, zgt),
            segzero_box_l1(z, zgt),
            segzero_point(z, zgt),
            segzero_total(z, zgt),
        ]
        assert got == c["sz"], c
        long = z.replace("<think>", "<think>" + " w" * c["pt_pad"], 1)
        assert length_words(long) == c["pt_words"]
        assert pixelthink_total(long, zgt, c["difficulty"], c["uncertainty"]) == c["pt"], c
