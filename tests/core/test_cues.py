"""Cue parsing (reasoner answer -> TargetCues), coordinate mapping, clipping and the cue ablation."""

from __future__ import annotations

import json

import pytest

from videoseg.core.cues import (
    CueParseError,
    TargetCues,
    drop_negatives_inside_box,
    parse_answer,
    split_think_answer,
)

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
    ("answer is a number list", "<answer>[[1, 2, 3, 4]]</answer>", "bare numbers"),
    ("bare box without tags", "[10, 20, 30, 40]", "bare numbers"),
    ("thinking cut by the token cap", "<think>the red one is left of", "ends inside <think>"),
    ("prose only, no tags", "The circle is on the left.", "no answer in the model output"),
    ("answer after the thinking is prose", "<think>hm</think> It is the red circle.", "no answer"),
    ("untagged truncated list", '```json\n[{"bbox_2d": [1, 2, 3', "unbalanced"),
    ("point with 3 numbers", '[{"point_2d": [1, 2, 3]}]', "2 numbers"),
    ("Seg-Zero points not numbers", "{'bbox': [1, 2, 3, 4], 'points_1': ['a', 2]}", "non-number"),
    ("box text with one corner", "<answer><box>(1,2)</box></answer>", "2 corners"),
    ("box text with words", "<box>(1,2),(x2,y2)</box>", "non-number"),
    ("box text with junk", "<box>(1,2),(3,4) and more</box>", "other than (x,y) pairs"),
    (
        "points shared by two boxes",
        "<box>(1,2),(3,4)</box><box>(5,6),(7,8)</box><points>(2,3)</points>",
        "which target each point",
    ),
    ("label only, untagged", '[{"label": "cat"}]', "neither"),
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
    # The opening tag can be in the prompt (chat templates that start the thinking for the model).
    assert split_think_answer("reasoning here</think>[]") == ("reasoning here", None)


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


# ---------------------------------------------------------------- answers written without <answer> tags

# (case, model output, form, expected [(box, positive points, negatives)])
UNTAGGED = [
    (
        "bare list after the thinking",
        '<think>red</think>\n[{"bbox_2d": [1, 2, 3, 4], "point_2d": [2, 3]}]',
        "bare",
        [([1, 2, 3, 4], [[2, 3]], [])],
    ),
    ("```json fence", '```json\n[{"bbox_2d": [1, 2, 3, 4]}]\n```', "fenced", [([1, 2, 3, 4], [], [])]),
    (
        "fence with json on its own line",
        '```\njson\n[{"point_2d": [5, 6]}]\n```',
        "fenced",
        [(None, [[5, 6]], [])],
    ),
    ("leading json word", 'json\n[{"bbox_2d": [1, 2, 3, 4]}]', "bare", [([1, 2, 3, 4], [], [])]),
    (
        "unclosed fence, complete list",
        '```json\n[{"bbox_2d": [1, 2, 3, 4]}]',
        "fenced",
        [([1, 2, 3, 4], [], [])],
    ),
    (
        "tab-indented list with labels",
        '[\n\t{"bbox_2d": [1, 2, 3, 4], "label": "a"},\n\t{"point_2d": [7, 8], "label": "b"}\n]',
        "bare",
        [([1, 2, 3, 4], [], []), (None, [[7, 8]], [])],
    ),
    ("empty list, bare", "[]", "bare", []),
    ("empty list, fenced after prose", "Nothing matches.\n```json\n[]\n```", "fenced", []),
    (
        "closing think only",
        'looked everywhere</think>{"bbox_2d": [1, 2, 3, 4]}',
        "bare",
        [([1, 2, 3, 4], [], [])],
    ),
]


@pytest.mark.parametrize(("case", "text", "form", "expected"), UNTAGGED, ids=[u[0] for u in UNTAGGED])
def test_answers_without_tags(case: str, text: str, form: str, expected: list) -> None:
    parsed = parse_answer(text)
    assert parsed.form == form
    got = [(t.box, t.positive_points, t.negatives) for t in parsed.targets]
    assert got == [
        (None if b is None else [float(v) for v in b], [[float(v) for v in p] for p in pts], negs)
        for b, pts, negs in expected
    ]


def test_an_empty_list_is_a_result_with_its_own_message() -> None:
    for text in ("<think>no such object</think><answer>[]</answer>", "[]", '{"targets": []}'):
        parsed = parse_answer(text)
        assert parsed.no_target and parsed.targets == []
        assert "no object" in parsed.message
    found = parse_answer('<answer>[{"bbox_2d": [1, 2, 3, 4]}, {"point_2d": [1, 1]}]</answer>')
    assert not found.no_target and found.message == "the reasoner located 2 targets"


# ---------------------------------------------------------------- Seg-Zero's schema: several positive points


def test_seg_zero_json_schema_gives_two_positive_points() -> None:
    # The answer shape of Seg-Zero's prompt example (dvlab-research/Seg-Zero inference_scripts/infer.py):
    # one object, "bbox" and the centres of the two largest inscribed circles "points_1" / "points_2".
    text = (
        "<think> the unusual object is the watermelon wheel </think>"
        "<answer>{'bbox': [10,100,200,210], 'points_1': [30,110], 'points_2': [35,180]}</answer>"
    )
    (t,) = parse_answer(text).targets
    assert t.box == [10.0, 100.0, 200.0, 210.0]
    assert t.point == [30.0, 110.0] and t.extra_points == [[35.0, 180.0]]
    assert t.positive_points == [[30.0, 110.0], [35.0, 180.0]] and t.count() == 3


def test_seg_zero_text_form_gives_box_and_points() -> None:
    # Seg-Zero's ground-truth form, matched by its reward code (verl/utils/reward_score/seg.py, first
    # commit): <box>(x1,y1),(x2,y2)</box><points>(x,y),(x,y)</points>.
    parsed = parse_answer(
        "<think>x</think><answer><box>(12,40),(118,200)</box><points>(60,90),(64,150)</points></answer>"
    )
    (t,) = parsed.targets
    assert t.box == [12.0, 40.0, 118.0, 200.0] and t.positive_points == [[60.0, 90.0], [64.0, 150.0]]
    assert parsed.form == "answer-tag"
    only_points = parse_answer("<points>(1.5, 2), (3,4)</points>")
    assert only_points.form == "box-text"
    assert only_points.targets[0].box is None and only_points.targets[0].positive_points == [
        [1.5, 2.0],
        [3.0, 4.0],
    ]


def test_numbered_and_listed_points_keep_their_order() -> None:
    (t,) = parse_answer('[{"points_2": [5, 6], "points_1": [1, 2], "point_2d": [0, 0]}]').targets
    assert t.positive_points == [[0.0, 0.0], [1.0, 2.0], [5.0, 6.0]]
    (u,) = parse_answer('[{"bbox_2d": [0, 0, 9, 9], "points_2d": [[1, 1], [2, 2], [3, 3]]}]').targets
    assert u.positive_points == [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]


def test_extra_points_follow_every_transform() -> None:
    t = TargetCues(box=[0, 0, 840, 840], point=[420, 420], extra_points=[[840, 0], [2000, 10]], obj_id=3)
    s = t.from_model_space((840, 840), (100, 50))
    assert s.extra_points == [pytest.approx([100.0, 0.0]), pytest.approx([2000 * 100 / 840, 10 * 50 / 840])]
    c = s.clipped(100, 50)
    assert c.positive_points == [[50.0, 25.0], [99.0, 0.0]]  # the far one (238 px) is dropped
    assert c.filtered(("box",)).positive_points == [] and c.filtered(("point",)).extra_points == [[99.0, 0.0]]
    assert c.count() == 3


def test_extra_points_round_trip_and_old_dicts_still_load() -> None:
    t = TargetCues(box=[1, 2, 3, 4], point=[2, 3], extra_points=[[2.5, 3.5]], negatives=[[9, 9]], obj_id=2)
    d = t.to_dict()
    assert d["extra_points"] == [[2.5, 3.5]] and TargetCues.from_dict(d) == t
    # A single-point target keeps the dict shape traces had before extra points existed.
    assert "extra_points" not in TargetCues(point=[1, 1]).to_dict()
    old = {"obj_id": 1, "frame_idx": 0, "box": [1, 2, 3, 4], "point": [2, 3], "negatives": []}
    assert TargetCues.from_dict(old).extra_points == []
    # The model-style item goes back through the parser unchanged (the manual backend relies on it).
    (back,) = parse_answer(f"<answer>[{json.dumps(t.to_model_dict())}]</answer>").targets
    assert back.positive_points == [[2.0, 3.0], [2.0, 4.0]] and back.negatives == [[9.0, 9.0]]
    # Only extra points given: the first becomes the point, so one-point readers still get one.
    assert TargetCues(extra_points=[[1, 1], [2, 2]]).point == [1.0, 1.0]


# ---------------------------------------------------------------- negatives inside the box (untrained profiles)

# (negatives, box, kept, dropped)
NEGATIVE_TABLE = [
    ([[50, 50]], [10, 10, 90, 90], [], [[50, 50]]),  # inside
    ([[10, 90]], [10, 10, 90, 90], [], [[10, 90]]),  # on the edge counts as inside
    ([[9.9, 50]], [10, 10, 90, 90], [[9.9, 50]], []),  # just outside: kept
    ([[5, 5], [60, 20], [95, 95]], [10, 10, 90, 90], [[5, 5], [95, 95]], [[60, 20]]),
    ([[50, 50]], None, [[50, 50]], []),  # no box: nothing to check against
    ([], [10, 10, 90, 90], [], []),
]


@pytest.mark.parametrize(("negatives", "box", "kept", "dropped"), NEGATIVE_TABLE)
def test_drop_negatives_inside_box(negatives: list, box: list | None, kept: list, dropped: list) -> None:
    cues = TargetCues(
        box=box, point=[40, 40], negatives=negatives, obj_id=4, frame_idx=2, extra_points=[[41, 41]]
    )
    out, gone = drop_negatives_inside_box(cues)
    assert out.negatives == [[float(a), float(b)] for a, b in kept]
    assert gone == [[float(a), float(b)] for a, b in dropped]
    assert (out.box, out.positive_points, out.obj_id, out.frame_idx) == (cues.box, cues.positive_points, 4, 2)
    assert cues.negatives == [[float(a), float(b)] for a, b in negatives]  # the input is not changed
