"""The Reward view: the pure breakdown, the ``reward`` API endpoint (gradio_client against an in-process
server) and the breakdown a Run shows at its end on a bundled example."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from videoseg.training import rewards as rw
from videoseg.ui.examples import TRACES_DIR, find_examples
from videoseg.ui.tabs import reward as view_mod
from videoseg.ui.tabs.reward import RewardInputError, example_frame, parse_difficulty, run_reward, score_view


@pytest.fixture(scope="module")
def examples() -> list[Any]:
    found = find_examples()
    assert found, "the repository's bundled shapes examples are missing"
    return found


def square() -> np.ndarray:
    m = np.zeros((100, 100), dtype=bool)
    m[40:60, 30:50] = True
    return m


def test_score_view_lays_out_every_term() -> None:
    gt = json.dumps(
        [
            {"bbox_2d": [30, 40, 49, 59], "point_2d": [40, 50]},
            {"bbox_2d": [70, 10, 89, 29], "point_2d": [80, 20]},
        ]
    )
    completion = (
        "<think>"
        + " ".join(["w"] * 146)
        + "</think><answer>"
        + json.dumps(
            [
                {
                    "bbox_2d": [70, 10, 89, 29],
                    "point_2d": [95, 20],
                    "neg_point_2d": [60, 50],
                },  # point outside its box
                {"bbox_2d": [30, 40, 49, 59], "point_2d": [40, 50], "neg_point_2d": [[40, 50], [150, 5]]},
            ]
        )
        + "</answer>"
    )
    frame = np.zeros((100, 100, 3), dtype=np.uint8)
    v = score_view(completion, gt, "videoseg-r1", frame=frame, mask=square(), difficulty=2.0)
    # accuracy: pred 1 <-> gt 2 meets IoU and L1 but not the point (2), pred 2 <-> gt 1 all three (3): 5 / 2
    assert sorted(v.matching.pairs) == [(0, 1), (1, 0)]
    assert v.breakdown.terms == {
        "think_format": 1.0,
        "seg_format": 2.0,
        "accuracy": 2.5,
        "non_repeat": 1.0,
        "negative_point": pytest.approx(1 / 3),  # 11 px earns; on the mask (0) and off the image do not
    }
    assert [n["earns"] for n in v.negatives] == [True, False, False]
    assert v.negatives[0]["distance"] == pytest.approx(11.0) and v.negatives[2]["distance"] is None
    assert v.breakdown.factor == pytest.approx(0.9) and v.breakdown.budget == 96
    assert v.breakdown.total == pytest.approx(0.9 * (6.5 + 1 / 3))
    assert v.breakdown.total == pytest.approx(rw.videoseg_r1_total(completion, gt, square(), 2.0))
    d = v.to_dict()
    pair = next(p for p in d["matching"]["pairs"] if p["pred"] == 0)
    assert pair["criteria"] == 2 and pair["point_in_pred_box"] is False and pair["iou"] == pytest.approx(1.0)
    assert json.loads(json.dumps(d))  # JSON-ready for the API
    table = {row[0]: row[1] for row in v.table()}
    assert table["× length factor"] == pytest.approx(0.9) and table["total"] == pytest.approx(
        v.breakdown.total, abs=1e-4
    )
    assert "pred 1 ↔ gt 2" in v.markdown() and "(outside its box)" in v.markdown()
    assert v.image.shape == (640, 640, 3)  # a 100 px frame is enlarged for drawing
    # the drawing differs from the bare (enlarged) frame where the matching and the cues are
    assert v.image.reshape(-1, 3).any(axis=1).sum() > 1000


def test_score_view_tells_why_accuracy_is_zero() -> None:
    v = score_view("<think>a</think><answer>```json\n[]\n```</answer>", "[]", "visionreasoner")
    assert v.breakdown.total == 2.0 and v.matching is None
    assert "not strict JSON" in v.matching_error and "Accuracy is 0" in v.markdown()
    empty = score_view("<think>a</think><answer>[]</answer>", "[]", "visionreasoner")
    assert "empty" in empty.matching_error and empty.breakdown.terms["accuracy"] == 0.0
    z = score_view(
        '<think>a</think><answer>{"bbox": [0, 0, 9, 9], "points_1": [1, 1], "points_2": [2, 2]}</answer>',
        "<box>(0,0),(9,9)</box><points>(1,1),(2,2)</points>",
        "segzero",
    )
    assert z.breakdown.total == 5.0 and z.segzero["iou"] == 1.0 and z.segzero["points_distance"] == 0.0


def test_parse_difficulty() -> None:
    assert parse_difficulty("") is None and parse_difficulty(None) is None
    assert parse_difficulty("4.5") == 4.5 and parse_difficulty(7) == 7.0
    axes = {"scene": 2, "segmentation": 3, "temporal": 1, "motion": 1, "linguistic": 3}
    assert parse_difficulty(json.dumps(axes)) == {k: float(v) for k, v in axes.items()}
    for bad, words in (("hard", "neither a number"), ("12", "between 1 and 10"), ('{"scene": 1}', "lacks")):
        with pytest.raises(RewardInputError, match=words):
            parse_difficulty(bad)


def test_example_frame_gives_targets_in_frame_pixels(examples: list[Any]) -> None:
    ex = examples[0]
    g = example_frame(ex, ex.expressions[0], None)
    assert g.frame.shape[:2] == g.mask.shape and g.mask.any()
    x1, y1, x2, y2 = g.targets[0]["bbox_2d"]
    ys, xs = np.nonzero(g.mask)
    assert (x1, y1, x2, y2) == (
        xs.min(),
        ys.min(),
        xs.max(),
        ys.max(),
    )  # extreme pixels of a one-object expression
    with pytest.raises(RewardInputError, match="outside"):
        example_frame(ex, ex.expressions[0], 10_000)


def test_run_reward_scores_a_recorded_run(examples: list[Any]) -> None:
    """The breakdown a Run shows at its end, from a bundled trace of a run on a bundled example."""
    trace = TRACES_DIR / "absent_first_frame--0.jsonl"
    ex = next(e for e in examples if e.name == "absent_first_frame")

    class Ctx:
        pass

    ctx = Ctx()
    ctx.examples = examples
    first = json.loads(trace.read_text().splitlines()[0])
    md, image = run_reward(ctx, {"trace": str(trace), "video": str(ex.video), "query": first["query"]})
    assert "videoseg-r1 reward" in md and "Hungarian matching" in md and first["query"] in md
    assert image is not None and image.ndim == 3
    # nothing to score: no record, or a video that is no bundled example
    assert run_reward(ctx, None) == ("", None)
    assert run_reward(ctx, {"trace": str(trace), "video": str(trace), "query": first["query"]}) == ("", None)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from gradio_client import Client

    from videoseg.ui.app import build_demo
    from videoseg.ui.session import SessionStore

    demo = build_demo(store=SessionStore(tmp_path_factory.mktemp("reward-store")))
    demo.queue().launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    client = Client(demo.local_url, verbose=False)
    yield demo, client
    demo.close()


def test_reward_endpoint_on_a_bundled_example(app: Any) -> None:
    demo, client = app
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    names = [p["parameter_name"] for p in api["/reward"]["parameters"]]
    assert names == ["completion", "ground_truth", "example", "frame", "difficulty", "kind", "uncertainty"]
    ex = demo.ctx.examples[0]
    label = f"{ex.name} · {ex.expressions[0]['text']}"
    g = example_frame(ex, ex.expressions[0], None)
    t = g.targets[0]
    completion = (
        "<think>The target is there.</think><answer>"
        + json.dumps(
            [{"bbox_2d": t["bbox_2d"], "point_2d": t["point_2d"], "neg_point_2d": t["neg_point_2d"]}]
        )
        + "</answer>"
    )
    md, image, details = client.predict(
        completion, "", label, "", "2.0", "videoseg-r1", 0.0, api_name="/reward"
    )
    assert "**8.000** of 8" in md, md
    assert details["total"] == 8.0 and details["terms"]["negative_point"] == 1.0
    assert details["matching"]["pairs"][0]["criteria"] == 3
    assert Path(image).is_file()
    # the same answer under the other kinds, with the ground truth given as text
    gt = json.dumps(g.targets)
    _, _, d = client.predict(
        completion, gt, view_mod.NO_EXAMPLE, None, "", "visionreasoner", 0.0, api_name="/reward"
    )
    assert d["total"] == 7.0 and d["kind"] == "visionreasoner"
    _, _, d = client.predict(
        completion, "", label, str(g.frame_idx), "2.0", "segzero", 0.0, api_name="/reward"
    )
    assert d["kind"] == "segzero" and d["total"] == 1.0  # think format only: not Seg-Zero's answer schema


def test_reward_endpoint_refuses_bad_input_clearly(app: Any) -> None:
    _, client = app
    ok = "<think>a</think><answer>[]</answer>"
    cases = [
        (ok, "[{'bbox_2d': [1, 2, 3, 4]}]", "videoseg-r1", "not JSON"),
        (ok, "", "videoseg-r1", "Give the ground truth"),
        ("x" * (view_mod.MAX_COMPLETION_CHARS + 1), "[]", "videoseg-r1", "at most"),
        (ok, "[]", "lenient", "unknown reward kind"),
        (ok, "<box>(1, 2),(3,4)</box>", "segzero", "&lt;box&gt;"),
    ]
    md, _, _ = client.predict(ok, "", view_mod.NO_EXAMPLE, "1.5", "", "videoseg-r1", 0.0, api_name="/reward")
    assert "Give the ground truth" in md
    label = view_mod.example_labels(app[0].ctx.examples)[0]
    md, _, _ = client.predict(ok, "", label, "1.5", "", "videoseg-r1", 0.0, api_name="/reward")
    assert md.startswith("### ❌") and "whole number" in md
    for completion, gt, kind, words in cases:
        md, image, details = client.predict(
            completion, gt, view_mod.NO_EXAMPLE, None, "", kind, 0.0, api_name="/reward"
        )
        assert md.startswith("### ❌") and words in md, (words, md[:200])
        assert image is None and "error" in details
    md, _, _ = client.predict(ok, "", "no such example", None, "", "videoseg-r1", 0.0, api_name="/reward")
    assert md.startswith("### ❌") and "No bundled example" in md
    md, _, _ = client.predict(
        ok, "[]", view_mod.NO_EXAMPLE, None, "very", "videoseg-r1", 0.0, api_name="/reward"
    )
    assert md.startswith("### ❌") and "Difficulty" in md


def test_run_tab_chains_the_reward_after_a_run(app: Any) -> None:
    demo, _ = app
    panel = demo.run_tab["reward"]
    targets = {panel["panel"]._id, panel["markdown"]._id, panel["image"]._id}
    chained = [d for d in demo.config["dependencies"] if {o for o in d["outputs"]} == targets]
    # one per way to start a run (the Run button, Enter in the query, the public run endpoint)
    assert len(chained) >= 2
    # what the chained step returns: the panel shown with the breakdown after a run on an example,
    # hidden after one with nothing to score
    ex = next(e for e in demo.ctx.examples if e.name == "absent_first_frame")
    trace = TRACES_DIR / "absent_first_frame--0.jsonl"
    query = json.loads(trace.read_text().splitlines()[0])["query"]
    update, md, image = panel["show"]({"trace": str(trace), "video": str(ex.video), "query": query})
    assert update.visible is True and "videoseg-r1 reward" in md and image is not None
    update, md, image = panel["show"](None)
    assert update.visible is False and md == "" and image is None


def test_starter_completion_teaches_dilution(examples: list[Any]) -> None:
    label = view_mod.example_labels(examples)[0]
    ex, expression = view_mod.find_expression(examples, label)
    g = example_frame(ex, expression, None)
    v = score_view(
        view_mod.starter_completion(examples, label),
        rw.row_solution({"targets": g.targets}, "visionreasoner"),
        "visionreasoner",
    )
    # the box 4 px off still meets all three criteria; the extra target halves it: 3 / 2
    assert v.breakdown.terms["accuracy"] == pytest.approx(1.5) and len(v.matching.pairs) == 1


def test_answer_space_and_kind_follow_the_runs_profile() -> None:
    from videoseg.core import events as ev
    from videoseg.core.state import RunState

    def state(profile: str, weights_free: bool) -> RunState:
        st = RunState()
        st.video = {"width": 640, "height": 480}
        st.config = {"profile": profile}
        st.backends["reasoner"] = ev.BackendInfo(
            for_stage="reasoner",
            name="qwen",
            weights_free=weights_free,
            description="",
            model_id="some/model",
        )
        return st

    assert view_mod.answer_size_of_run(state("visionreasoner", False)) == (840, 840)
    assert view_mod.answer_size_of_run(state("seg-zero", False)) == (840, 840)
    assert view_mod.answer_size_of_run(state("qwen2.5-vl", True)) == (640, 480)  # weights-free: the frame
    w, h = view_mod.answer_size_of_run(state("qwen2.5-vl", False))
    assert w % 28 == 0 and h % 28 == 0  # Qwen's smart resize
    assert view_mod.run_reward_kind(state("seg-zero", False)) == "segzero"
    assert view_mod.run_reward_kind(state("videoseg-r1", False)) == "videoseg-r1"
    assert view_mod.run_reward_kind(state("no-such-profile", False)) == "videoseg-r1"
