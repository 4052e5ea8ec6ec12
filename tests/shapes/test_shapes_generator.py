"""Shapes-world generator: determinism, each family's defining property, unambiguous expressions,
save / load round trip, the query grammar and the ``synth`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from videoseg.cli.main import main as cli_main
from videoseg.shapes import FAMILIES, generate, load_scenario
from videoseg.shapes.world.generator import _turned, shape_polygon
from videoseg.shapes.world.grammar import (
    EventRef,
    ObjectRef,
    Query,
    QueryParseError,
    is_unambiguous,
    parse_query,
    query_text,
)

SHORT = [f for f in FAMILIES if f != "long"]


def _centroids(masks: np.ndarray, obj_id: int) -> np.ndarray:
    out = []
    for m in masks:
        ys, xs = np.nonzero(m == obj_id)
        out.append((xs.mean(), ys.mean()) if len(xs) else (np.nan, np.nan))
    return np.array(out)


def _target(sc, expr_index: int = 0) -> int:
    return sc.expressions[expr_index].obj_ids[0]


@pytest.fixture(scope="module")
def scenarios():
    return {f: generate(11, f) for f in SHORT}


def test_same_seed_same_bytes_different_seed_differs():
    a, b, c = generate(5, "turn"), generate(5, "turn"), generate(6, "turn")
    assert a.frames.tobytes() == b.frames.tobytes()
    assert a.masks.tobytes() == b.masks.tobytes()
    assert [e.to_dict() for e in a.expressions] == [e.to_dict() for e in b.expressions]
    assert a.frames.shape != c.frames.shape or a.frames.tobytes() != c.frames.tobytes()


def test_family_drawn_from_seed_is_deterministic_and_short():
    fams = {generate(s).family for s in range(12)}
    assert "long" not in fams and len(fams) >= 3
    assert generate(3).family == generate(3).family


@pytest.mark.parametrize("family", SHORT)
def test_expressions_are_unambiguous_and_visible(scenarios, family):
    sc = scenarios[family]
    assert 2 <= len(sc.expressions) <= 4
    assert sc.frames.shape[:3] == sc.masks.shape and sc.masks.dtype == np.uint8
    assert 40 <= sc.num_frames <= 120 and sc.size == (320, 240)
    for e in sc.expressions:
        # the text parses back to a query that names exactly these objects on the ground truth
        assert is_unambiguous(parse_query(e.text), sc.facts, e.obj_ids), e.text
        assert e.type == parse_query(e.text).type
        for i in e.obj_ids:
            assert (sc.masks == i).any()
    assert {e.type for e in sc.expressions} <= {"referring", "reasoning"}


def test_absent_first_frame(scenarios):
    sc = scenarios["absent_first_frame"]
    t = _target(sc)
    assert not (sc.masks[0] == t).any()
    assert (sc.masks == t).any(axis=(1, 2)).sum() > sc.num_frames // 3


def test_appears_after_target_appears_after_the_event(scenarios):
    sc = scenarios["appears_after"]
    t = _target(sc)
    ref = parse_query(sc.expressions[0].text).targets[0].after
    subject = next(
        f for f in sc.facts.tracks if (f.colour, f.shape) == (ref.subject.colour, ref.subject.shape)
    )
    first_visible = int(np.flatnonzero((sc.masks == t).any(axis=(1, 2)))[0])
    assert first_visible / sc.fps > subject.event_time(ref.event) + 1.0


def test_turn_heading_changes_by_a_right_angle(scenarios):
    sc = scenarios["turn"]
    t = _target(sc)
    turn = next(f for f in sc.facts.tracks if f.obj_id == t).events[0]
    assert turn[0] in ("turn_left", "turn_right")
    c = _centroids(sc.masks, t)
    k = round(turn[1] * sc.fps)
    before, after = c[k - 1] - c[k - 8], c[k + 8] - c[k + 1]
    cos = before @ after / (np.linalg.norm(before) * np.linalg.norm(after))
    assert abs(cos) < 0.2
    cross = before[0] * after[1] - before[1] * after[0]
    assert (cross < 0) == (turn[0] == "turn_left")  # left = counter-clockwise on screen (y down)


def test_occlusion_visible_area_drops_and_recovers(scenarios):
    sc = scenarios["occlusion"]
    t = _target(sc)
    area = (sc.masks == t).sum(axis=(1, 2))
    low = int(np.argmin(area))
    assert area[low] < 0.5 * area.max()
    assert area[:low].max() > 0.9 * area.max() and area[low:].max() > 0.9 * area.max()


def test_fast_motion_target_moves_fast(scenarios):
    sc = scenarios["fast_motion"]
    steps = np.linalg.norm(np.diff(_centroids(sc.masks, _target(sc)), axis=0), axis=1)
    assert np.nanmedian(steps) >= 5.0
    others = [o.obj_id for o in sc.objects if o.obj_id != _target(sc)]
    for o in others:
        assert np.nanmedian(np.linalg.norm(np.diff(_centroids(sc.masks, o), axis=0), axis=1)) < 1.0


def test_distractor_families_have_lookalikes(scenarios):
    sc = scenarios["distractor_colour"]
    colour = next(o.colour for o in sc.objects if o.obj_id == _target(sc))
    assert sum(o.colour == colour for o in sc.objects) >= 3
    sc = scenarios["distractor_shape"]
    shape = next(o.shape for o in sc.objects if o.obj_id == _target(sc))
    assert sum(o.shape == shape for o in sc.objects) >= 3


def test_multi_target_has_a_multi_object_expression(scenarios):
    sc = scenarios["multi_target"]
    assert any(len(e.obj_ids) >= 2 for e in sc.expressions)


def test_long_family_has_2000_frames():
    sc = generate(2, "long")
    assert sc.num_frames >= 2000 and sc.size == (192, 144)
    assert is_unambiguous(parse_query(sc.expressions[0].text), sc.facts, sc.expressions[0].obj_ids)


def test_save_load_round_trip(tmp_path):
    sc = generate(8, "absent_first_frame")
    sc.save(tmp_path)
    assert (tmp_path / "Annotations" / "00000.png").exists()
    back = load_scenario(tmp_path)
    assert np.array_equal(back.masks, sc.masks)
    assert back.frames.shape == sc.frames.shape
    mse = np.mean((back.frames.astype(float) - sc.frames.astype(float)) ** 2)
    assert 10 * np.log10(255**2 / mse) > 30  # H.264 at high quality
    assert [e.to_dict() for e in back.expressions] == [e.to_dict() for e in sc.expressions]
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert (meta["seed"], meta["family"], meta["fps"]) == (8, "absent_first_frame", sc.fps)
    assert back.family == "absent_first_frame"


def test_load_scenario_names_the_missing_file(tmp_path):
    with pytest.raises(ValueError, match=r"video\.mp4"):
        load_scenario(tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": -1}, "non-negative"),
        ({"seed": 1, "family": "nope"}, "unknown family"),
        ({"seed": 1, "family": "turn", "frames": 10}, "at least"),
        ({"seed": 1, "size": (64, 48)}, "at least 128x96"),
    ],
)
def test_generate_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate(**kwargs)


@pytest.mark.parametrize(("family", "seed"), [*((f, 1) for f in SHORT), *(("turn", s) for s in range(2, 9))])
def test_long_clips_of_every_family_build(family, seed):
    # Speeds are per frame and events at fractions of the clip: unpaced, 300 frames sent the movers
    # out of the frame and turn / occlusion / multi_target / distractor_shape never built.
    sc = generate(seed, family, frames=300)
    assert sc.num_frames == 300 and sc.family == family
    for e in sc.expressions:
        assert is_unambiguous(parse_query(e.text), sc.facts, e.obj_ids)
        assert sc.expression_mask(e).any()


def test_a_long_clip_keeps_its_events_and_paces_its_movers():
    sc = generate(1, "turn", frames=300)
    t = _target(sc)
    turn = next(f for f in sc.facts.tracks if f.obj_id == t).events[0]
    c = _centroids(sc.masks, t)
    k = round(turn[1] * sc.fps)
    before, after = c[k - 1] - c[k - 20], c[k + 20] - c[k + 1]
    assert abs(before @ after / (np.linalg.norm(before) * np.linalg.norm(after))) < 0.2  # still 90 deg
    # turners move 1.6-2.6 px per frame in clips of up to 96 frames; 300 frames slow them by 96/300
    # (measured over the straight 19-frame legs: single steps are below a pixel)
    for leg in (before, after):
        assert 1.6 * 96 / 300 - 0.1 < np.linalg.norm(leg) / 19 < 2.6 * 96 / 300 + 0.1
    assert np.all((sc.masks == t).any(axis=(1, 2)))  # in the frame all along


def test_default_lengths_keep_full_speed():
    sc = generate(1, "turn", frames=96)  # the family's longest default clip: unpaced
    t = _target(sc)
    c = _centroids(sc.masks, t)
    k = round(next(f for f in sc.facts.tracks if f.obj_id == t).events[0][1] * sc.fps)
    for leg in (c[k - 1] - c[k - 20], c[k + 20] - c[k + 1]):
        assert 1.5 < np.linalg.norm(leg) / 19 < 2.7


def test_synth_help_and_failure_advice(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli_main(["synth", "--help"])
    text = capsys.readouterr().out
    assert "Annotations/%05d.png" in text and "%%" not in text
    # multi_target crowds 128x96 frames at its default lengths: the advice names what helps
    assert cli_main(["synth", "--seed", "1", "--family", "multi_target", "--size", "128x96",
                     "--out", str(tmp_path / "s")]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "could not build a 'multi_target' scenario" in err and "another seed or a larger --size" in err
    assert "more frames" not in err
    assert cli_main(["synth", "--seed", "1", "--family", "multi_target", "--size", "160x120",
                     "--out", str(tmp_path / "s"), "--frames", "300"]) == 0  # fmt: skip


def test_synth_cli_writes_the_scenario(tmp_path, capsys):
    out = tmp_path / "s"
    assert cli_main(["synth", "--seed", "4", "--family", "turn", "--out", str(out), "--frames", "50"]) == 0
    assert (out / "video.mp4").stat().st_size > 0
    assert len(list((out / "Annotations").glob("*.png"))) == 50
    assert json.loads((out / "expressions.json").read_text())[0]["text"] in capsys.readouterr().out
    assert cli_main(["synth", "--seed", "4", "--family", "turn", "--out", str(out), "--frames", "5"]) == 2
    assert cli_main(["synth", "--seed", "4", "--out", str(out), "--size", "big"]) == 2


# ----------------------------------------------------------------------------- grammar


@pytest.mark.parametrize(
    ("query", "text"),
    [
        (Query((ObjectRef("red", "circle"),)), "the red circle"),
        (Query((ObjectRef("blue", "square", count=2),)), "the two blue squares"),
        (
            Query((ObjectRef(shape="circle", after=EventRef(ObjectRef("red", "square"), "turn_left")),)),
            "the circle that appears after the red square turns left",
        ),
        (
            Query((ObjectRef(hidden_behind=ObjectRef("green", "square")),)),
            "the shape that was hidden behind the green square",
        ),
        (Query((ObjectRef(count=2, event="stop"),)), "the two shapes that stop"),
        (
            Query((ObjectRef("red", "star"), ObjectRef("green", "diamond"))),
            "the red star and the green diamond",
        ),
        (Query((ObjectRef(fastest=True),)), "the shape that moves fastest"),
        (Query((ObjectRef(shape="triangle", event="leave"),)), "the triangle that leaves the scene"),
    ],
)
def test_query_text_round_trip(query, text):
    assert query_text(query) == text
    assert parse_query(text).targets == query.targets


@pytest.mark.parametrize(
    ("text", "colour", "shape", "event"),
    [
        ("The RED ball!", "red", "circle", None),  # synonyms and punctuation
        ("the violet box that halts", "purple", "square", "stop"),
        ("the yellow thing that wiggles", "yellow", None, None),  # unknown verb: kept as unknown
        ("a green star that exits", "green", "star", "leave"),
    ],
)
def test_parser_is_forgiving(text, colour, shape, event):
    ref = parse_query(text).targets[0]
    assert (ref.colour, ref.shape, ref.event) == (colour, shape, event)


def test_parser_rejects_text_without_anything_known():
    with pytest.raises(QueryParseError, match="no colour"):
        parse_query("what is happening here")
    with pytest.raises(QueryParseError, match="the query is empty"):
        parse_query("  ")
    for foreign in ("橙色的正方形", "¿¡…!?"):  # not empty: no word this reader knows the script of
        with pytest.raises(QueryParseError, match=r"no English word in .*: .*knows English colours \(red"):
            parse_query(foreign)
    assert "wiggles" in parse_query("the yellow thing that wiggles").unknown_words


def test_left_turn_is_counter_clockwise_on_screen():
    assert _turned((1.0, 0.0), "left") == (0.0, -1.0)  # moving right, turning left: up on screen
    assert _turned((1.0, 0.0), "right") == (-0.0, 1.0)


@pytest.mark.parametrize("shape", ["circle", "square", "triangle", "diamond", "star"])
def test_shape_polygons_are_centred(shape):
    poly = shape_polygon(shape, (50.0, 40.0), 10.0)
    assert np.allclose(poly.mean(axis=0), (50, 40), atol=3.0)
