"""Parsing the free-text answers of the HTFS questions and the difficulty rating (table-driven)."""

from __future__ import annotations

import pytest

from videoseg.sampling.answers import form_problem, parse_difficulty, parse_interval, parse_percentage

WINDOW = (100, 199)  # 100 frames
FPS = 10.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The query happens from 2.4 to 5.0 seconds.", (124, 150)),  # the contract's example
        ("2.4s - 5s", (124, 150)),  # units glued on, a dash as range separator
        ("2.4s-5s", (124, 150)),  # a dash right after a unit is still a range, not a minus sign
        ("2.4-5", (124, 150)),
        ("[2.4, 5.0]", (124, 150)),  # JSON-ish list
        ('{"start": 2.4, "end": 5.0}', (124, 150)),  # JSON dict
        ("from 00:02.4 to 00:05", (124, 150)),  # mm:ss timestamps
        ("between 0:00:03 and 0:00:04.5", (130, 145)),  # h:mm:ss timestamps
        ("from 2400 ms to 5000 ms", (124, 150)),  # milliseconds
        ("5.0 to 2.4 seconds", (124, 150)),  # reversed -> swapped
        ("from 3 to 30 seconds", (130, 199)),  # end past the window -> clipped
        ("from -1 to 2 seconds", (100, 120)),  # a negative start -> clipped to the window start
        ("<think>16 frames, about 7 s long</think><answer>1 to 2</answer>", (110, 120)),  # answer block wins
        ("at .5 and 1.5 sec", (105, 115)),  # leading-dot decimals
        ("about 4 seconds", None),  # one number is not an interval
        ("no idea", None),
        ("", None),
    ],
)
def test_parse_interval(text: str, expected: tuple[int, int] | None) -> None:
    assert parse_interval(text, WINDOW, FPS) == expected


@pytest.mark.parametrize("bad", [None, 42, ["1", "2"]])
def test_parse_interval_rejects_non_text(bad: object) -> None:
    assert parse_interval(bad, WINDOW, FPS) is None


def test_parse_interval_needs_a_positive_fps() -> None:
    assert parse_interval("1 to 2", WINDOW, 0.0) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("40%", 0.4),
        ("about 40 percent", 0.4),
        ("40", 0.4),  # bare number: a percent, as the prompt asks for 0..100
        ("The target is at 37.5 % of the clip.", 0.375),
        ("2/5", 0.4),  # fraction
        ("0.4", 0.4),  # a decimal at most 1 is a ratio
        ("1", 0.01),  # a bare integer is a percent
        ("100%", 1.0),
        ("0%", 0.0),
        ("<think>at 90 frames</think><answer>25%</answer>", 0.25),
        ("150%", None),  # out of range
        ("-20%", None),  # negative
        ("3/0", None),  # division by zero
        ("somewhere in the middle", None),
        ("", None),
    ],
)
def test_parse_percentage(text: str, expected: float | None) -> None:
    got = parse_percentage(text)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


AXES = ("scene", "segmentation", "temporal", "motion", "linguistic")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"scene": 3, "segmentation": 4, "temporal": 5, "motion": 6, "linguistic": 7}', (3, 4, 5, 6, 7)),
        # keys in another order, single quotes, descriptive key names
        (
            "{'linguistic_ambiguity': 7, 'motion_complexity': 6, 'scene_complexity': 3, "
            "'temporal_ambiguity': 5, 'segmentation_challenge': 4}",
            (3, 4, 5, 6, 7),
        ),
        # prose with markdown and a scale phrase that must not count as scores
        (
            "On a 1-10 scale: **Scene complexity**: 3, Segmentation challenge: 4, Temporal ambiguity: 5, "
            "Motion complexity: 6, Linguistic ambiguity: 7",
            (3, 4, 5, 6, 7),
        ),
        ("3/10, 4/10, 5/10, 6/10, 7/10", (3, 4, 5, 6, 7)),  # plain numbers in axis order
        ("scores: 2.5 3 3.5 4 4.5", (2.5, 3, 3.5, 4, 4.5)),
        ('{"scene": 3, "segmentation": 4}', None),  # too few axes and too few numbers
        ("easy", None),
        ("", None),
    ],
)
def test_parse_difficulty(text: str, expected: tuple[float, ...] | None) -> None:
    got = parse_difficulty(text)
    if expected is None:
        assert got is None
    else:
        assert got == dict(zip(AXES, map(float, expected)))


# --------------------------------------------------------------------------- answers of another form


@pytest.mark.parametrize(
    "text",
    [
        '[{"bbox_2d": [24, 84, 300, 400], "point_2d": [100, 200]}]',  # VisionReasoner's schema
        '<answer>[{"bbox_2d": [24, 84, 300, 400]}]</answer>',
        '{"bbox": [10, 20, 30, 40], "points_1": [15, 25], "points_2": [20, 30]}',  # Seg-Zero's schema
        "<box>(10,20),(30,40)</box><points>(15,25)</points>",  # Seg-Zero's text form
        '[{"label": "dog", "point_2d": [120, 80]}]',
        "[24, 84, 300, 400]",  # a bare box
    ],
)
def test_grounding_answers_are_never_read_as_times_percents_or_scores(text: str) -> None:
    # A grounding-only checkpoint asked "when?" writes boxes: their pixels are not seconds.
    for kind in ("interval", "percentage", "difficulty"):
        assert form_problem(text, kind) is not None and "grounding answer" in form_problem(text, kind)
    assert parse_interval(text, (0, 100), 10.0) is None
    assert parse_percentage(text) is None
    assert parse_difficulty(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "From 2.0 to 5.5 seconds.",
        "40%",
        '{"scene": 3, "segmentation": 5, "temporal": 2, "motion": 4, "linguistic": 6}',
        "the red box: from 1 to 2 s",  # the word box in prose is not a grounding answer
        "",
    ],
)
def test_answers_of_the_asked_form_pass_the_form_check(text: str) -> None:
    assert form_problem(text, "interval") is None
