"""The GRPO reward terms, the length factor and the TRL callables (hand-computed tables)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from videoseg.core.config import PipelineConfig
from videoseg.core.cues import TargetCues
from videoseg.core.masks import encode_rle
from videoseg.training.rewards import (
    REWARD_CLASSES,
    RewardConfig,
    TotalReward,
    accuracy_reward,
    answer_format_reward,
    completion_length_factor,
    completion_text,
    make_reward_funcs,
    negative_point_reward,
    non_repeat_reward,
    reasoning_text,
    reward_terms,
    row_budget,
    think_format_reward,
    total_reward,
)

A = {"bbox_2d": [100, 100, 199, 199], "point_2d": [150, 150]}
B = {"bbox_2d": [300, 50, 379, 129], "point_2d": [340, 90]}


def T(box=None, point=None, negatives=()) -> TargetCues:
    return TargetCues(box=box, point=point, negatives=[list(n) for n in negatives])


def answer(items, think: str = "I look at the frame.") -> str:
    return f"<think>{think}</think><answer>{json.dumps(items)}</answer>"


# --------------------------------------------------------------------------- think format


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>a</think><answer>[]</answer>", 1.0),
        ("\n<think>a\nb</think>\n  <answer>[1]</answer>\n", 1.0),  # outer / in-between whitespace ok
        ("<think></think><answer></answer>", 1.0),  # empty parts still have the structure
        ("Sure! <think>a</think><answer>[]</answer>", 0.0),  # text before <think>
        ("<think>a</think><answer>[]</answer> done", 0.0),  # text after </answer>
        ("<think>a</think> so <answer>[]</answer>", 0.0),  # text between the blocks
        ("<answer>[]</answer><think>a</think>", 0.0),  # wrong order
        ("<think>a<answer>[]</answer>", 0.0),  # no </think>
        ("<think>a</think><answer>[]", 0.0),  # truncated answer
        ("[]", 0.0),
    ],
)
def test_think_format(text: str, expected: float) -> None:
    assert think_format_reward(text) == expected


# --------------------------------------------------------------------------- answer format


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (answer([A, B]), 2.0),  # every item has a box and a point
        (answer([{"bbox_2d": [1, 2, 3, 4]}]), 1.0),  # box only
        (answer([{"point_2d": [1, 2]}]), 1.0),  # point only
        (answer([A, {"bbox_2d": [1, 2, 3, 4]}]), 1.5),  # (2 + 1) / 2
        (answer([{**A, "neg_point_2d": [5, 5]}]), 2.0),  # negatives are not part of this term
        (answer([]), 0.0),  # empty list: nothing to score (VisionReasoner)
        (answer([{"bbox_2d": [1, 2, 3]}]), 0.0),  # 3-number box: unparsable
        (answer([{"label": "cat"}]), 0.0),  # neither box nor point
        ("<think>a</think><answer>not json</answer>", 0.0),
        ("<think>a</think>", 0.0),  # no answer block
    ],
)
def test_answer_format(text: str, expected: float) -> None:
    assert answer_format_reward(text) == pytest.approx(expected)


# --------------------------------------------------------------------------- accuracy

GT_A = T([100, 100, 199, 199], [150, 150])
GT_B = T([300, 50, 379, 129], [340, 90])


@pytest.mark.parametrize(
    ("pred", "gt", "expected"),
    [
        ([GT_A], [GT_A], 3.0),  # perfect
        # shifted 5 px: IoU 95^2 / (2*100^2 - 95^2) = 0.82, mean L1 5, same point -> 3
        ([T([105, 105, 204, 204], [150, 150])], [GT_A], 3.0),
        # shifted 10 px: IoU 0.68 yes, mean L1 10 is not < 10, point ok -> 2
        ([T([110, 110, 209, 209], [150, 150])], [GT_A], 2.0),
        # shifted 20 px: IoU 80^2 / 13600 = 0.47 no, L1 20 no, point still ok -> 1
        ([T([120, 120, 219, 219], [150, 150])], [GT_A], 1.0),
        # wrong box far away, point right but outside its own box -> 0
        ([T([400, 400, 450, 450], [150, 150])], [GT_A], 0.0),
        # point 42.4 px from the GT point -> box criteria only
        ([T([100, 100, 199, 199], [180, 180])], [GT_A], 2.0),
        # point 15 px from the GT point but outside the predicted box -> 2
        ([T([100, 100, 199, 199], [95, 150])], [T([100, 100, 199, 199], [110, 150])], 2.0),
        # box only: the point criterion fails
        ([T([100, 100, 199, 199])], [GT_A], 2.0),
        # extra prediction: (3 + 0) / max(2, 1)
        ([GT_A, T([0, 0, 9, 9], [5, 5])], [GT_A], 1.5),
        # missing prediction: 3 / max(1, 2)
        ([GT_A], [GT_A, GT_B], 1.5),
        # swapped order is matched by Hungarian: (3 + 3) / 2
        ([GT_B, GT_A], [GT_A, GT_B], 3.0),
        # swapped with one imperfect: (3 + 1) / 2
        ([T([120, 120, 219, 219], [150, 150]), GT_B], [GT_B, GT_A], 2.0),
        ([], [], 3.0),  # correct "no target"
        ([], [GT_A], 0.0),
        ([GT_A], [], 0.0),
    ],
)
def test_accuracy(pred: list[TargetCues], gt: list[TargetCues], expected: float) -> None:
    assert accuracy_reward(pred, gt) == pytest.approx(expected)


def test_accuracy_matches_by_cost_not_by_index() -> None:
    # Criteria matrix (pred x gt) = [[1, 3], [3, 1]]: pred 0 vs gt 0 keeps only the point (IoU 0.47,
    # L1 20); pred 1 vs gt 1 only the point (28.3 px, inside its box). Index pairing would give
    # (1 + 1) / 2 = 1; the Hungarian matching takes the off-diagonal, (3 + 3) / 2.
    gt = [T([0, 0, 99, 99], [50, 50]), T([20, 20, 119, 119], [70, 70])]
    pred = [T([20, 20, 119, 119], [60, 60]), T([0, 0, 99, 99], [50, 50])]
    assert accuracy_reward(pred, gt) == pytest.approx(3.0)


@pytest.mark.parametrize(("point_in_gt_box", "expected"), [(False, 3.0), (True, 2.0)])
def test_accuracy_point_box_choice(point_in_gt_box: bool, expected: float) -> None:
    # The predicted box reaches 10 px further left than the GT box (IoU 0.91, L1 2.5); the point
    # (15 px from the GT point) is inside the predicted box but outside the GT box.
    pred = [T([90, 100, 199, 199], [95, 150])]
    gt = [T([100, 100, 199, 199], [110, 150])]
    assert accuracy_reward(pred, gt, RewardConfig(point_in_gt_box=point_in_gt_box)) == expected


# --------------------------------------------------------------------------- non-repetition


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A cat. A dog. A bird.", 1.0),
        ("A cat. A cat. A dog.", 1.0),  # one repeat is tolerated
        ("A cat. A cat. A cat.", 0.0),  # two repeats
        ("A cat. A dog. A cat. A dog.", 0.0),
        ("A cat.. . A dog.", 1.0),  # empty pieces are dropped
        ("A cat.  A cat .A cat", 0.0),  # pieces are stripped before comparing
        ("", 1.0),
    ],
)
def test_non_repeat(text: str, expected: float) -> None:
    assert non_repeat_reward(text) == expected


# --------------------------------------------------------------------------- negative point


def square_mask() -> np.ndarray:
    mask = np.zeros((200, 200), dtype=bool)
    mask[40:60, 40:60] = True  # columns / rows 40..59
    return mask


@pytest.mark.parametrize(
    ("negatives", "expected"),
    [
        ([(50, 50)], 0.0),  # inside the mask
        ([(59, 50)], 0.0),  # on its last column
        ([(60, 50)], 1.0),  # 1 px outside
        ([(69, 50)], 1.0),  # 10 px
        ([(68.6, 50.2)], 1.0),  # rounded to (69, 50)
        ([(99, 50)], 1.0),  # 40 px: the band is inclusive
        ([(100, 50)], 0.0),  # 41 px
        ([(250, 50)], 0.0),  # outside the image
        ([(69, 50), (50, 50)], 0.5),  # 1/K each, K = 2
        ([(69, 50), (100, 50), (50, 50)], 1 / 3),
        ([(69, 50), (30, 50), (50, 69), (50, 30)], 1.0),  # all four sides, 10 px each
        ([], 0.0),  # no negative point
    ],
)
def test_negative_point(negatives: list[tuple[float, float]], expected: float) -> None:
    assert negative_point_reward(negatives, square_mask()) == pytest.approx(expected)


def test_negative_point_distance_is_euclidean_and_empty_mask_scores_zero() -> None:
    # (89, 89) is 30 px right and 30 px below the corner (59, 59): 42.4 px -> 0; (85, 85) 36.8 px -> 1.
    assert negative_point_reward([(89, 89)], square_mask()) == 0.0
    assert negative_point_reward([(85, 85)], square_mask()) == 1.0
    assert negative_point_reward([(10, 10)], np.zeros((50, 50), dtype=bool)) == 0.0
    assert negative_point_reward([(69, 50)], square_mask(), max_distance=5) == 0.0


# --------------------------------------------------------------------------- length factor


def words(n: int) -> str:
    return " ".join(["word"] * n)


@pytest.mark.parametrize(
    ("think_words", "budget", "expected"),
    [
        (50, 96, 1.0),  # under budget
        (96, 96, 1.0),  # at budget
        (100, 96, 1 - 0.002 * 4),
        (346, 96, 0.5),  # 1 - 0.002 * 250
        (700, 96, 0.0),  # clamped at 0
        (700, None, 1.0),  # no budget: no penalty
    ],
)
def test_length_factor(think_words: int, budget: int | None, expected: float) -> None:
    text = answer([A], think=words(think_words))
    assert completion_length_factor(text, budget) == pytest.approx(expected)


def test_length_counts_reasoning_only_and_uses_the_tokenizer() -> None:
    text = answer([A], think="abcd efgh")
    # whitespace words: 2; a character "tokenizer" sees 9 characters
    assert completion_length_factor(text, 1, RewardConfig(beta=0.1)) == pytest.approx(0.9)
    assert completion_length_factor(text, 1, RewardConfig(beta=0.1, tokenizer=list)) == pytest.approx(0.2)
    # without <think> tags everything before <answer> is reasoning, so dropping the tags does not help
    assert reasoning_text("one two three <answer>[]</answer>") == "one two three"
    assert reasoning_text(answer([A], think=" why ")) == "why"


@pytest.mark.parametrize(
    ("budget", "difficulty", "expected"),
    [
        (50, 9.0, 50),  # an explicit budget wins
        (None, 2.0, 96),  # easy
        (None, 4.0, None),  # medium: no penalty (PixelThink)
        (None, 6.0, 256),  # hard
        (None, {"scene": 1, "segmentation": 2, "temporal": 3, "motion": 4, "linguistic": 5}, 96),
        (None, None, None),
    ],
)
def test_row_budget(budget: int | None, difficulty: object, expected: int | None) -> None:
    assert row_budget(budget, difficulty) == expected


# --------------------------------------------------------------------------- total and TRL callables

NEG_OK = {"bbox_2d": [40, 40, 59, 59], "point_2d": [50, 50], "neg_point_2d": [69, 50]}


def test_total_reward_perfect_is_eight_and_scaled_by_the_length_factor() -> None:
    gt = [T([40, 40, 59, 59], [50, 50])]
    perfect = answer([NEG_OK], think="The red square is the target.")
    assert reward_terms(perfect, gt, square_mask()) == {
        "think_format": 1.0,
        "answer_format": 2.0,
        "accuracy": 3.0,
        "non_repeat": 1.0,
        "negative_point": 1.0,
    }
    assert total_reward(perfect, gt, square_mask()) == 8.0
    assert total_reward(perfect, gt) == 7.0  # no mask: no negative term (VisionReasoner's maximum)
    long = answer([NEG_OK], think=words(196))  # 100 over a budget of 96 -> s = 0.8
    assert total_reward(long, gt, square_mask(), budget=96) == pytest.approx(0.8 * 8.0)
    off = RewardConfig(use_length_factor=False)
    assert total_reward(long, gt, square_mask(), budget=96, config=off) == 8.0


COMPLETIONS = [
    answer([NEG_OK], think="The red square is the target."),
    answer([{"bbox_2d": [120, 120, 139, 139], "point_2d": [130, 130], "neg_point_2d": [50, 50]}]),
    "I think it is the square. " + answer([NEG_OK]),  # text before <think>
    answer([NEG_OK], think=words(200)),
    "<think>no idea</think><answer>nothing</answer>",
]


def trl_kwargs(n: int) -> dict:
    gt = [{"bbox_2d": [40, 40, 59, 59], "point_2d": [50, 50]}]
    return {
        "prompts": ["p"] * n,
        "targets": [gt] * n,
        "target_mask": [encode_rle(square_mask())] * n,
        "budget": [96] * n,
        "trainer_state": object(),  # not a per-row column: ignored
    }


def test_trl_funcs_sum_to_total_reward() -> None:
    funcs = make_reward_funcs()
    assert [f.__name__ for f in funcs] == [
        "think_format",
        "answer_format",
        "accuracy",
        "non_repeat",
        "negative_point",
    ]
    kwargs = trl_kwargs(len(COMPLETIONS))
    per_term = np.array([f(completions=COMPLETIONS, **kwargs) for f in funcs])
    gt = [T([40, 40, 59, 59], [50, 50])]
    expected = [total_reward(c, gt, square_mask(), budget=96) for c in COMPLETIONS]
    assert per_term.sum(axis=0) == pytest.approx(expected)
    assert TotalReward()(completions=COMPLETIONS, **kwargs) == pytest.approx(expected)
    # hand-computed: perfect 8; wrong box, neg point inside the mask: 1 + 2 + 0 + 1 + 0 = 4;
    # text before <think>: 8 - 1; 200 think words, 104 over budget: 8 * (1 - 0.208); garbage: 1 + 1
    assert expected == pytest.approx([8.0, 4.0, 7.0, 8.0 * 0.792, 2.0])


def test_trl_funcs_read_conversational_completions_and_pickle() -> None:
    text = COMPLETIONS[0]
    conversational = [
        [{"role": "assistant", "content": text}],
        [
            {
                "role": "assistant",
                "content": [{"type": "text", "text": text[:20]}, {"type": "text", "text": text[20:]}],
            }
        ],
    ]
    assert completion_text(conversational[1]) == text
    funcs = pickle.loads(pickle.dumps(make_reward_funcs()))
    kwargs = trl_kwargs(2)
    assert [sum(v) for v in zip(*(f(completions=conversational, **kwargs) for f in funcs))] == [8.0, 8.0]
    with pytest.raises(TypeError, match="cannot read a completion"):
        completion_text(42)


def test_trl_funcs_take_budgets_from_the_pipeline_config_and_difficulty() -> None:
    cfg = PipelineConfig(easy_budget=10)
    text = answer([NEG_OK], think=words(20))  # 10 over -> s = 0.98
    funcs = make_reward_funcs(cfg)
    gt = json.dumps([{"bbox_2d": [40, 40, 59, 59], "point_2d": [50, 50]}])  # JSON string cells work too
    values = [f(completions=[text], targets=[gt], difficulty=[1.0])[0] for f in funcs]
    # no target_mask column: the negative term is 0
    assert values == pytest.approx([0.98, 1.96, 2.94, 0.98, 0.0])
    assert len(REWARD_CLASSES) == 5
    with pytest.raises(TypeError, match="expected RewardConfig"):
        make_reward_funcs("strict")


def test_reward_config_validates() -> None:
    with pytest.raises(ValueError, match="iou_threshold"):
        RewardConfig(iou_threshold=1.5)
    with pytest.raises(ValueError, match="beta"):
        RewardConfig(beta=-1)
