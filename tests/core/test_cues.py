"""Cue parsing (reasoner answer -> TargetCues), coordinate mapping, clipping and the cue ablation."""

from __future__ import annotations

import pytest

from videoseg.core.cues import CueParseError, TargetCues, parse_answer, split_think_answer

# (case, model output, expected [(box, point, negatives)])
GOOD = [
    (
        "canonical VisionReasoner list",
        '<think>red one</think><answer>[{"bbox_2d": [10, 20, 110, 220], "point_2d": [60, 120], '
        '"neg_point_2d": [5, 5]}]</answer>',
        [([10, 20, 110, 220], [60, 120], [[5, 5]])],
    ),
    (
        "code fence + single quotes + trailing comma + trailing prose",
        "<think>x</think><answer>```json\n[{'bbox_2d': [1, 2, 3, 4], 'point_2d': [2, 3],},]\n``` hope this helps</answer>",
        [([1, 2, 3, 4], [2, 3], [])],
    ),
    (
        "a dict instead of a list",
        '<answer>{"bbox_2d": [0, 0, 8, 8], "point_2d": [4, 4]}</answer>',
        [([0, 0, 8, 8], [4, 4], [])],
    ),
    (
        "two targets, several negative points",
        '<answer>[{"bbox_2d": [0,0,4,4], "point_2d": [2,2], "neg_point_2d": [[9,9],[7,7]]},'
        ' {"bbox_2d": [5,5,9,9]}]</answer>',
        [([0, 0, 4, 4], [2, 2], [[9, 9], [7, 7]]), ([5, 5, 9, 9], None, [])],
    ),
    (
        "reversed box corners are ordered",
        '<answer>[{"bbox_2d": [10, 10, 2, 3]}]</answer>',
        [([2, 3, 10, 10], None, [])],
    ),
    ("point only", '<answer>[{"point_2d": [3, 4]}]</answer>', [(None, [3, 4], [])]),
    ("empty list = no target", "<think>none</think><answer>[]</answer>", []),
    (
        "wrapped in targets key",
        '<answer>{"targets": [{"bbox_2d": [1,1,2,2]}]}</answer>',
        [([1, 1, 2, 2], None, [])],
    ),
    (
        "numbers as strings",
        '<answer>[{"bbox_2d": ["1", "2", "3", "4"]}]</answer>',
        [([1, 2, 3, 4], None, [])],
    ),
    (
        "unclosed answer tag still parses",
        '<think>a</think><answer>[{"bbox_2d": [1,2,3,4]}]',
        [([1, 2, 3, 4], None, [])],
    ),
]


@pytest.mark.parametrize(("case", "text", "expected"), GOOD, ids=[g[0] for g in GOOD])
def test_parse_good_answers(case: str, text: str, expected: list) -> None:
    parsed = parse_answer(text, frame_idx=7)
    assert len(parsed.targets) == len(expected)
    for i, (t, (box, point, negs)) in enumerate(zip(parsed.targets, expected)):
        assert t.box == (None if box is None else [float(v) for v in box])
        assert t.point == (None if point is None else [float(v) for v in point])
        assert t.negatives == [[float(a), float(b)] for a, b in negs]
        assert t.obj_id == i + 1
        assert t.frame_idx == 7


# (case, model output, fragment of the error message)
BAD = [
    ("empty output", "", "empty"),
    ("no answer tag", "<think>I think it is the cat</think>", "no <answer>"),
    ("empty answer", "<answer> </answer>", "empty"),
    ("prose only", "<answer>the red circle</answer>", "no JSON"),
    ("truncated JSON", '<answer>[{"bbox_2d": [1, 2, 3', "unbalanced"),
    ("garbage JSON", "<answer>[{bbox_2d: [1, 2, 3, 4]}]</answer>", "not valid JSON"),
    ("box with 3 numbers", '<answer>[{"bbox_2d": [1, 2, 3]}]</answer>', "4 numbers"),
    ("non-number", '<answer>[{"bbox_2d": [1, 2, "x", 4]}]</answer>', "non-number"),
    ("target is a string", '<answer>["cat"]</answer>', "expected an object"),
    ("no box no point", '<answer>[{"label": "cat"}]</answer>', "neither"),
    ("answer is a number list", "<answer>[[1, 2, 3, 4]]</answer>", "expected an object"),
    ("nan", '<answer>[{"point_2d": [NaN, 1]}]</answer>', "non-finite"),
]


@pytest.mark.parametrize(("case", "text", "fragment"), BAD, ids=[b[0] for b in BAD])
def test_parse_bad_answers_raise_precise_errors(case: str, text: str, fragment: str) -> None:
    with pytest.raises(CueParseError) as info:
        parse_answer(text)
    assert fragment in str(info.value)
    assert info.value.raw == text


def test_split_think_answer() -> None:
    assert split_think_answer("<think> a b </think><answer>[1]</answer>") == ("a b", "[1]")
    assert split_think_answer("no tags") == ("", None)


def test_model_space_maps_back_exactly() -> None:
    # Model saw an 840x840 image of a 1280x720 frame.
    cues = TargetCues(box=[84, 84, 420, 840], point=[420, 420], negatives=[[0, 840]])
    mapped = cues.from_model_space((840, 840), (1280, 720))
    assert mapped.box == pytest.approx([128.0, 72.0, 640.0, 720.0])
    assert mapped.point == pytest.approx([640.0, 360.0])
    assert mapped.negatives == [pytest.approx([0.0, 720.0])]


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ([-10, -5, 50, 60], [0, 0, 50, 60]),  # partly outside: clipped
        ([90, 10, 200, 200], [90, 10, 99, 79]),  # clipped to W-1, H-1
        ([150, 10, 200, 20], None),  # entirely right of the frame: dropped
        ([10, 90, 20, 120], None),  # entirely below the frame: no area left, dropped
    ],
)
def test_clipping(box: list[float], expected: list[float] | None) -> None:
    clipped = TargetCues(box=box, point=[100.5, -1], negatives=[[-1, 80.5], [50, 40]]).clipped(100, 80)
    assert clipped.box == (None if expected is None else [float(v) for v in expected])
    assert clipped.point == [99.0, 0.0]  # just outside (rounding): moved onto the border
    assert clipped.negatives == [[0.0, 79.0], [50.0, 40.0]]


@pytest.mark.parametrize(
    ("point", "kept"),
    [
        ([101.9, 40], [99.0, 40.0]),  # within 2 % of the 100-px side
        ([102.1, 40], None),  # farther: names no pixel of the frame
        ([-3, 40], None),
        ([50, 81.5], [50.0, 79.0]),  # within 2 % of the 80-px side (1.6 px)
        ([50, 81.7], None),
        ([500, -3], None),
    ],
)
def test_points_far_outside_the_frame_are_dropped(point: list[float], kept: list[float] | None) -> None:
    cues = TargetCues(box=[10, 10, 60, 60], point=point, negatives=[point]).clipped(100, 80)
    assert cues.point == kept
    assert cues.negatives == ([] if kept is None else [kept])
    assert cues.box == [10.0, 10.0, 60.0, 60.0]
    assert cues.count() == 1 + 2 * (kept is not None)


def test_a_coordinate_too_large_for_a_float_is_a_parse_error() -> None:
    huge = "9" * 400
    with pytest.raises(CueParseError, match="too large"):
        parse_answer(f'<answer>[{{"bbox_2d": [1, 2, 3, {huge}]}}]</answer>')


@pytest.mark.parametrize(
    ("kinds", "has_box", "has_point", "has_neg"),
    [
        (("box",), True, False, False),
        (("point",), False, True, False),
        (("box", "point"), True, True, False),
        (("box", "negative"), True, False, True),
        (("box", "point", "negative"), True, True, True),
    ],
)
def test_cue_ablation_filter(kinds: tuple[str, ...], has_box: bool, has_point: bool, has_neg: bool) -> None:
    t = TargetCues(box=[1, 2, 3, 4], point=[2, 3], negatives=[[9, 9]]).filtered(kinds)
    assert (t.box is not None, t.point is not None, bool(t.negatives)) == (has_box, has_point, has_neg)


def test_dict_round_trip_and_model_dict() -> None:
    t = TargetCues(box=[1.4, 2, 3, 4.6], point=[2, 3], negatives=[[9, 9]], obj_id=2, frame_idx=5)
    assert TargetCues.from_dict(t.to_dict()) == t
    assert t.to_model_dict() == {"bbox_2d": [1, 2, 3, 5], "point_2d": [2, 3], "neg_point_2d": [9, 9]}
    assert TargetCues.from_dict({"bbox_2d": [1, 2, 3, 4]}).box == [1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize(
    "data",
    [
        {"obj_id": 3, "point": [5, 6]},  # ours, without a box
        {"obj_id": 3, "point_2d": [5, 6], "frame_idx": 7},  # the model's keys
        {"obj_id": 3, "box": None, "point": [5, 6]},
    ],
)
def test_from_dict_keeps_the_target_number_whatever_the_keys(data: dict) -> None:
    cues = TargetCues.from_dict(data)
    assert cues.obj_id == 3 and cues.point == [5.0, 6.0]
    assert cues.frame_idx == data.get("frame_idx", 0)


@pytest.mark.parametrize(
    "data",
    [
        {"point": [5, 6], "negatives": [[1, 2], [3, 4]]},  # ours, typed without a "box" key
        {"box": None, "point": [5, 6], "negatives": [[1, 2], [3, 4]]},
        {"point_2d": [5, 6], "neg_points": [[1, 2], [3, 4]]},  # the model's keys
        {"box": [0, 0, 9, 9], "neg_point_2d": [[1, 2], [3, 4]]},  # ours and the model's, mixed
    ],
)
def test_from_dict_keeps_the_negative_points_whatever_the_keys(data: dict) -> None:
    assert TargetCues.from_dict(data).negatives == [[1.0, 2.0], [3.0, 4.0]]


def test_from_dict_reads_the_models_keys_beside_ours_and_checks_numbers() -> None:
    cues = TargetCues.from_dict({"obj_id": 2, "box": [100, 100, 150, 150], "neg_point_2d": [900, 900]})
    assert (
        cues.box == [100.0, 100.0, 150.0, 150.0] and cues.negatives == [[900.0, 900.0]] and cues.obj_id == 2
    )
    with pytest.raises(ValueError, match=r"non-number"):
        TargetCues.from_dict({"box": [1, 2, "three", 4]})
