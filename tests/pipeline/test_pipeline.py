"""The pipeline's event stream end to end (scripted VideoQA, real GrabCut + flow): order, masks, every
kind of bad input and malformed answer, budget capping, cancel, baselines."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.fakes import ScriptedVideoQA, answer_for_mask, box_of, moving_square_frames
from videoseg.core import events as ev
from videoseg.core.config import PipelineConfig
from videoseg.core.interfaces import BackendDescription, Backends
from videoseg.core.state import RunState
from videoseg.io.video import ArrayVideo, write_mp4
from videoseg.pipeline import orchestrator as pipeline
from videoseg.pipeline.orchestrator import CANCELLED, run
from videoseg.runtime import backends, loading

T = 20
FRAMES, GT = moving_square_frames(num_frames=T, step=2)
# 2 s video at 10 fps. Interval "1.0 to 1.9 s" -> frames 10..19 (10 <= 0.5 * 20: one level);
# 50 % of 10 frames -> target frame 15.
TARGET = 15
CFG = PipelineConfig(delta=0.5, num_interval_answers=2, num_percent_answers=2, frames_per_question=4)


def _qa(reasoning: Any = None, **kw: Any) -> ScriptedVideoQA:
    if reasoning is None:
        reasoning = ["<think>", "the red square", "</think>", answer_for_mask(GT[TARGET], negative=(90, 5))]
    return ScriptedVideoQA(
        intervals=[["from 1.0 to 1.9 seconds"]], percents=["50%"], reasoning=reasoning, **kw
    )


def _run(
    monkeypatch: pytest.MonkeyPatch,
    qa: ScriptedVideoQA,
    config: PipelineConfig = CFG,
    video: Any = None,
    query: Any = "the red square",
    cancel: threading.Event | None = None,
    segmenter: Any = None,
    propagator: Any = None,
) -> list[ev.Event]:
    backends = Backends(vqa=qa, segmenter=segmenter, propagator=propagator)
    events = list(
        run(
            ArrayVideo(FRAMES, 10) if video is None else video,
            query,
            config,
            cancel=cancel,
            backends=backends,
        )
    )
    assert isinstance(events[0], ev.RunStarted)
    assert isinstance(events[-1], (ev.RunFinished, ev.RunError))
    return events


def _types(events: list[ev.Event]) -> list[str]:
    return [e.type for e in events]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_full_run_event_order_and_masks(monkeypatch: pytest.MonkeyPatch) -> None:
    events = _run(monkeypatch, _qa())
    types = _types(events)
    assert types[0] == "run_started" and types[-1] == "run_finished"
    assert [e.for_stage for e in events if isinstance(e, ev.BackendInfo)] == [
        "sampler",
        "reasoner",
        "segmenter",
        "propagator",
    ]
    # Stage blocks appear in the documented order.
    firsts = [
        types.index(t)
        for t in (
            "sampler_level",
            "sampler_percent",
            "sampler_result",
            "difficulty",
            "reasoning_token",
            "reasoning_done",
            "cues_parsed",
            "keyframe_mask",
            "propagation_started",
            "propagated_mask",
            "run_finished",
        )
    ]
    assert firsts == sorted(firsts)
    tokens = [e for e in events if isinstance(e, ev.ReasoningToken)]
    assert [t.index for t in tokens] == list(range(4))
    done = next(e for e in events if isinstance(e, ev.ReasoningDone))
    assert done.raw_text == "".join(t.text for t in tokens) and done.think == "the red square"
    assert (done.num_tokens, done.think_tokens, done.truncated) == (4, 3, False)
    timings = [e.for_stage for e in events if isinstance(e, ev.StageTiming)]
    assert timings == ["sampler", "difficulty", "reasoner", "segmenter", "propagator"]

    props = [e for e in events if isinstance(e, ev.PropagatedMask)]
    assert [p.frame_idx for p in props] == [TARGET, *range(TARGET + 1, T), *range(TARGET - 1, -1, -1)]
    assert [p.direction for p in props][:2] == ["keyframe", "forward"] and props[-1].direction == "backward"
    assert [p.done for p in props] == list(range(1, T + 1)) and all(p.total == T for p in props)

    state = RunState.from_events(events)
    assert state.status == "finished" and state.keyframe == TARGET
    assert min(_iou(state.masks[i][0], GT[i]) for i in range(T)) > 0.85
    cues = state.cues[0]
    assert cues["frame_idx"] == TARGET and cues["negatives"] == [[90.0, 5.0]]
    finished = events[-1]
    assert isinstance(finished, ev.RunFinished) and finished.num_targets == 1 and finished.num_frames == T


def test_answer_space_coordinates_are_mapped_to_frame_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    # The model saw an 840 x 840 image of the 96 x 72 frame.
    x1, y1, x2, y2 = box_of(GT[TARGET])  # the square at frame 15, in frame pixels
    sx, sy = 840 / 96, 840 / 72
    answer = f'<answer>[{{"bbox_2d": [{x1 * sx:.1f}, {y1 * sy:.1f}, {x2 * sx:.1f}, {y2 * sy:.1f}]}}]</answer>'
    events = _run(monkeypatch, _qa(reasoning=[answer], space=(840, 840)))
    parsed = next(e for e in events if isinstance(e, ev.CuesParsed))
    assert parsed.targets[0]["box"] == pytest.approx([x1, y1, x2, y2], abs=0.01)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("garbage", "I think it is the red one."),
        ("prose without a list", "<think>hmm</think>The target is the red square near the top left."),
        ("truncated", '<think>x</think><answer>[{"bbox_2d": [1, 2, 3'),
        ("wrong types", '<answer>[{"bbox_2d": "left side"}]</answer>'),
        ("wrong shape", '<answer>[{"bbox_2d": [1, 2, 3]}]</answer>'),
        ("no cue keys", '<answer>[{"label": "square"}]</answer>'),
        ("a number", "<answer>42</answer>"),
        ("empty", ""),
        # float() of a 400-digit integer overflows: was a fatal RunError, not an unreadable answer
        ("huge integer", '<answer>[{"bbox_2d": [1, 2, ' + "9" * 400 + ", 30]}]</answer>"),
    ],
)
def test_malformed_answers_give_a_parse_error_and_empty_masks(
    monkeypatch: pytest.MonkeyPatch, name: str, text: str
) -> None:
    events = _run(monkeypatch, _qa(reasoning=[text] if text else []))
    errors = [e for e in events if isinstance(e, ev.ParseError)]
    assert len(errors) == 1, name
    assert errors[0].raw == text or text == ""
    assert not any(isinstance(e, (ev.CuesParsed, ev.KeyframeMask)) for e in events)
    state = RunState.from_events(events)
    assert state.status == "finished" and state.num_targets == 0
    assert sorted(state.masks) == list(range(T)) and all(
        state.masks[i].shape == (0, 72, 96) for i in range(T)
    )
    assert not state.label_map(3).any()


@pytest.mark.parametrize(
    "text",
    [
        '<answer>```json\n[{"bbox_2d": [34, 28, 49, 43], "point_2d": [41, 35]}]\n```</answer>',  # code fence
        "<answer>[{'bbox_2d': [34, 28, 49, 43], 'point_2d': [41, 35]}]</answer>",  # single quotes
        '<answer>{"bbox_2d": [34, 28, 49, 43], "point_2d": [41, 35],}</answer> done',  # dict, trailing comma
    ],
)
def test_tolerated_deviations_still_give_cues(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    events = _run(monkeypatch, _qa(reasoning=[text]))
    parsed = next(e for e in events if isinstance(e, ev.CuesParsed))
    assert parsed.targets[0]["box"] == [34.0, 28.0, 49.0, 43.0]
    state = RunState.from_events(events)
    assert _iou(state.masks[TARGET][0], GT[TARGET]) > 0.85


def test_cues_far_outside_the_frame_are_ignored_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    # The box is good; the centre point lies far right of the 96 x 72 frame, the negative far above it.
    text = (
        '<answer>[{"bbox_2d": [34, 28, 49, 43], "point_2d": [400, 35], "neg_point_2d": [10, -90]}]</answer>'
    )
    events = _run(monkeypatch, _qa(reasoning=[text]))
    parsed = next(e for e in events if isinstance(e, ev.CuesParsed))
    assert parsed.targets[0]["box"] == [34.0, 28.0, 49.0, 43.0]
    assert parsed.targets[0]["point"] is None and parsed.targets[0]["negatives"] == []
    warnings = [e.message for e in events if isinstance(e, ev.RunWarning)]
    assert any("2 cue(s) outside the frame ignored" in m for m in warnings)
    state = RunState.from_events(events)
    assert _iou(state.masks[TARGET][0], GT[TARGET]) > 0.85


def test_empty_answer_list_means_no_target(monkeypatch: pytest.MonkeyPatch) -> None:
    events = _run(monkeypatch, _qa(reasoning=["<think>nothing matches</think><answer>[]</answer>"]))
    parsed = next(e for e in events if isinstance(e, ev.CuesParsed))
    assert parsed.targets == [] and not any(isinstance(e, ev.ParseError) for e in events)
    props = [e for e in events if isinstance(e, ev.PropagatedMask)]
    assert len(props) == T and all(p.rles == [] for p in props)
    assert isinstance(events[-1], ev.RunFinished) and events[-1].num_targets == 0


class _EmptySegmenter:
    info = BackendDescription("empty", True, "test double: always an empty mask")

    def segment(self, frame: np.ndarray, cues: Any) -> tuple[np.ndarray, float]:
        return np.zeros(frame.shape[:2], dtype=bool), 0.0


class _ExplodingPropagator:
    info = BackendDescription("boom", True, "test double: must not be called")

    def propagate(self, *args: Any) -> Any:
        raise AssertionError("propagator called for empty keyframe masks")


def test_empty_keyframe_mask_gives_empty_masks_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    events = _run(monkeypatch, _qa(), segmenter=_EmptySegmenter(), propagator=_ExplodingPropagator())
    key = next(e for e in events if isinstance(e, ev.KeyframeMask))
    assert key.area == 0
    state = RunState.from_events(events)
    assert state.status == "finished"
    assert all(state.masks[i].shape == (1, 72, 96) and not state.masks[i].any() for i in range(T))
    props = [e.frame_idx for e in events if isinstance(e, ev.PropagatedMask)]
    assert props == [TARGET, *range(TARGET + 1, T), *range(TARGET - 1, -1, -1)]


class _SkippingPropagator:
    info = BackendDescription("skip", True, "test double: forgets frame 0")

    def propagate(self, video: Any, start: int, masks: np.ndarray, direction: str, cues: Any = None) -> Any:
        order = range(start + 1, len(video)) if direction == "forward" else range(start - 1, -1, -1)
        for i in order:
            if i != 0:
                yield i, masks


def test_a_propagator_that_skips_frames_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    events = _run(monkeypatch, _qa(), propagator=_SkippingPropagator())
    assert isinstance(events[-1], ev.RunError) and events[-1].for_stage == "propagator"
    assert "without masks" in events[-1].message


def test_cancel_stops_with_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    cancel = threading.Event()
    seen: list[ev.Event] = []
    for event in run(
        ArrayVideo(FRAMES, 10), "the red square", CFG, cancel=cancel, backends=Backends(vqa=_qa())
    ):
        seen.append(event)
        if isinstance(event, ev.PropagatedMask) and event.done == 5:
            cancel.set()
    last = seen[-1]
    assert (
        isinstance(last, ev.RunError)
        and last.message == CANCELLED
        and last.cancelled
        and last.for_stage == "propagator"
    )
    assert sum(isinstance(e, ev.PropagatedMask) for e in seen) == 5
    assert RunState.from_events(seen).status == "cancelled"


def test_cancel_before_start_stops_in_the_sampler(monkeypatch: pytest.MonkeyPatch) -> None:
    cancel = threading.Event()
    cancel.set()
    qa = _qa()
    events = _run(monkeypatch, qa, cancel=cancel)
    assert isinstance(events[-1], ev.RunError) and events[-1].for_stage == "sampler"
    assert qa.interval_clips == []  # no question was asked


@pytest.mark.parametrize(
    ("video", "query", "stage", "fragment"),
    [
        ("/no/such/video.mp4", "the red square", "video", "video.mp4"),
        (None, "", "input", "query is empty"),
        (None, "   ", "input", "query is empty"),
        (None, None, "input", "query is empty"),
        (12345, "the red square", "video", "expected a video path"),
        (None, b"the red square", "input", "query must be text, got bytes"),
        (None, 7, "input", "query must be text, got int"),
        (None, "the red square " * 200, "input", "3000 characters long; at most 2000"),
        # what Python makes of a non-UTF-8 byte on the command line (surrogateescape)
        (None, "the \udcff square", "input", "not valid text at character 5"),
        ("", "the red square", "video", "no video given"),
    ],
)
def test_bad_input_gives_run_started_then_a_run_error(
    monkeypatch: pytest.MonkeyPatch, video: Any, query: Any, stage: str, fragment: str
) -> None:
    events = _run(monkeypatch, _qa(), video=ArrayVideo(FRAMES, 10) if video is None else video, query=query)
    assert _types(events) == ["run_started", "error"]
    assert events[1].for_stage == stage and fragment in events[1].message and events[1].fatal


def test_a_file_that_is_not_a_video_is_a_video_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "clip.mp4"
    fake.write_text("this is not a video")
    events = _run(monkeypatch, _qa(), video=fake)
    assert _types(events) == ["run_started", "error"] and events[1].for_stage == "video"
    assert events[0].video["path"] == str(fake)


def test_a_video_file_is_opened_read_and_described(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write_mp4(tmp_path / "square.mp4", FRAMES, 10)
    events = _run(monkeypatch, _qa(), video=str(path))
    started = events[0]
    assert started.video["num_frames"] == T and (started.video["width"], started.video["height"]) == (96, 72)
    assert started.video["path"] == str(path)
    state = RunState.from_events(events)
    assert state.status == "finished"
    assert np.mean([_iou(state.masks[i][0], GT[i]) for i in range(T)]) > 0.8  # through H.264


@pytest.mark.parametrize(
    ("method", "stage"),
    [("answer_interval", "sampler"), ("rate_difficulty", "difficulty"), ("reason", "reasoner")],
)
def test_model_failures_become_run_errors(monkeypatch: pytest.MonkeyPatch, method: str, stage: str) -> None:
    events = _run(monkeypatch, _qa(fail_on=method))
    last = events[-1]
    assert isinstance(last, ev.RunError) and last.for_stage == stage and "scripted failure" in last.message


def test_a_backend_that_cannot_load_is_reported_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(config: PipelineConfig) -> Any:
        raise FileNotFoundError("XMem checkpoint XMem.pth not found")

    monkeypatch.setattr(pipeline, "make_propagator", missing)
    qa = _qa()
    events = _run(monkeypatch, qa)
    assert isinstance(events[-1], ev.RunError) and events[-1].for_stage == "propagator"
    assert "XMem.pth" in events[-1].message
    assert qa.interval_clips == []


def test_a_missing_backend_module_is_a_run_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real factory: a VLM id that is neither shapes nor manual goes to the Qwen backend; here its
    # module is made unimportable, as on an install without the real-model code.
    monkeypatch.setattr(backends, "_QWEN", ("videoseg.no_such_backend", "QwenVideoQA"))
    events = list(run(ArrayVideo(FRAMES, 10), "q", CFG.replace(vlm="some/qwen-checkpoint")))
    assert _types(events) == ["run_started", "error"]
    assert events[-1].for_stage == "sampler" and "not available" in events[-1].message


class _CountingVQA:
    built = 0

    def __init__(self, model_id: str, device: str = "auto", dtype: str = "auto") -> None:
        type(self).built += 1
        self.model_id = model_id


def test_backends_are_picked_by_name_and_real_models_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    from videoseg.propagation.flow import FlowPropagator
    from videoseg.reasoning.manual import ManualVideoQA
    from videoseg.segmentation.grabcut import GrabCutSegmenter

    cues = [{"box": [1, 2, 30, 40], "frame_idx": 3}]
    assert isinstance(backends.make_vqa(CFG.replace(vlm="manual", manual_cues=cues)), ManualVideoQA)
    assert isinstance(backends.make_segmenter(CFG), GrabCutSegmenter)
    assert isinstance(backends.make_propagator(CFG), FlowPropagator)

    monkeypatch.setattr(backends, "_QWEN", (__name__, "_CountingVQA"))
    loading.clear_cache()
    try:
        first = backends.make_vqa(CFG.replace(vlm="org/model-a"))
        again = backends.make_vqa(CFG.replace(vlm="org/model-a", temperature=0.1))
        other = backends.make_vqa(CFG.replace(vlm="org/model-b"))
        assert first is again and first is not other and _CountingVQA.built == 2
        assert not hasattr(again, "config")  # weight-only: nothing of a run is written onto it
    finally:
        loading.clear_cache()


def test_the_budget_shapes_the_prompt_and_never_cuts_the_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    rambling = ["<think>"] + ["word "] * 300 + ["</think>", '<answer>[{"bbox_2d": [10, 8, 40, 30]}]</answer>']
    qa = _qa(reasoning=rambling)  # difficulty 2.0: easy, budget 96
    events = _run(monkeypatch, qa)
    rated = next(e for e in events if isinstance(e, ev.DifficultyRated))
    assert (rated.level, rated.budget) == ("easy", 96)
    assert qa.requests[0].budget == 96  # the budget goes into the prompt ...
    assert qa.settings[-1].max_new_tokens == 1024  # ... the cap is the profile's (qwen2.5-vl)
    done = next(e for e in events if isinstance(e, ev.ReasoningDone))
    assert done.num_tokens == len(rambling) and not done.truncated  # the answer came through
    assert any(isinstance(e, ev.CuesParsed) and e.targets for e in events)
    timing = next(e for e in events if isinstance(e, ev.StageTiming) and e.for_stage == "reasoner")
    assert timing.details["length_factor"] == pytest.approx(1 - 0.002 * (302 - 96))  # still scored


def test_an_answer_cut_at_the_cap_is_a_warning_naming_the_token_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    qa = _qa(reasoning=["<think>"] + ["word "] * 300)
    events = _run(monkeypatch, qa, config=CFG.replace(max_new_tokens=100))
    done = next(e for e in events if isinstance(e, ev.ReasoningDone))
    assert done.num_tokens == 100 and done.truncated
    warning = next(e for e in events if isinstance(e, ev.RunWarning) and e.for_stage == "reasoner")
    assert "cut at its cap of 100 tokens (100 written)" in warning.message
    call = next(e for e in events if isinstance(e, ev.ModelCall) and e.purpose == "reason")
    assert call.truncated == 1 and call.new_tokens == [100]
    assert any(isinstance(e, ev.ParseError) for e in events)


def test_the_cap_is_the_config_s_when_set_with_or_without_rating(monkeypatch: pytest.MonkeyPatch) -> None:
    qa = _qa()
    _run(monkeypatch, qa, config=CFG.replace(rate_difficulty=False, max_new_tokens=500))
    assert qa.settings[-1].max_new_tokens == 500 and qa.requests[0].budget is None
    qa = _qa()
    _run(monkeypatch, qa, config=CFG.replace(max_new_tokens=500))
    assert qa.settings[-1].max_new_tokens == 500 and qa.requests[0].budget == 96
    qa = _qa()
    _run(monkeypatch, qa, config=CFG.replace(profile="visionreasoner", sampler_vlm="qwen-7b"))
    assert qa.settings[-1].max_new_tokens == 2048  # VisionReasoner's reference cap


def test_an_unreadable_difficulty_rating_warns_and_sets_no_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    qa = _qa(difficulty="pretty hard I guess")
    events = _run(monkeypatch, qa, config=CFG.replace(max_new_tokens=333))
    assert not any(isinstance(e, ev.DifficultyRated) for e in events)
    assert qa.requests[0].budget is None
    warning = next(e for e in events if isinstance(e, ev.RunWarning))
    assert warning.for_stage == "difficulty" and "pretty hard" in warning.message
    assert qa.requests[0].max_new_tokens == 333 and isinstance(events[-1], ev.RunFinished)


@pytest.mark.parametrize(
    ("cues", "box", "point", "negatives"),
    [
        (("box",), True, False, False),
        (("point",), False, True, False),
        (("box", "negative"), True, False, True),
        (("box", "point", "negative"), True, True, True),
    ],
)
def test_the_cue_ablation_filter(
    monkeypatch: pytest.MonkeyPatch, cues: tuple[str, ...], box: bool, point: bool, negatives: bool
) -> None:
    events = _run(monkeypatch, _qa(), config=CFG.replace(cues=cues))
    parsed = next(e for e in events if isinstance(e, ev.CuesParsed))
    target = parsed.targets[0]
    assert (target["box"] is not None, target["point"] is not None, bool(target["negatives"])) == (
        box,
        point,
        negatives,
    )
    assert parsed.used == list(cues)
    state = RunState.from_events(events)
    assert _iou(state.masks[TARGET][0], GT[TARGET]) > 0.8


def test_a_target_with_no_cue_left_after_filtering_gets_an_empty_mask(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    box_only = '<answer>[{"bbox_2d": [34, 28, 49, 43]}]</answer>'
    events = _run(monkeypatch, _qa(reasoning=[box_only]), config=CFG.replace(cues=("point",)))
    assert any(isinstance(e, ev.RunWarning) and "no cue left" in e.message for e in events)
    key = next(e for e in events if isinstance(e, ev.KeyframeMask))
    assert key.area == 0 and isinstance(events[-1], ev.RunFinished)


def test_first_frame_baseline_through_the_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    qa = _qa(reasoning=[answer_for_mask(GT[0])])
    events = _run(monkeypatch, qa, config=CFG.replace(sampler="first_frame"))
    assert next(e.for_stage for e in events if isinstance(e, ev.BackendInfo)) == "reasoner"
    assert not any(isinstance(e, (ev.SamplerLevel, ev.SamplerPercent)) for e in events)
    request = qa.requests[0]
    assert request.target_index == 0 and request.key_clip.frame_indices == [0]
    assert request.reference_clip is not None and request.reference_clip.frame_indices == [0, 6, 13, 19]
    assert next(e for e in events if isinstance(e, ev.PropagationStarted)).keyframe == 0
    state = RunState.from_events(events)
    assert min(_iou(state.masks[i][0], GT[i]) for i in range(T)) > 0.85


def test_target_only_baseline_shows_one_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    qa = _qa()
    _run(monkeypatch, qa, config=CFG.replace(sampler="target_only"))
    request = qa.requests[0]
    assert request.key_clip.frame_indices == [TARGET] and request.key_clip.window == (TARGET, TARGET)
    assert request.reference_clip is None
    assert np.array_equal(request.target_frame, FRAMES[TARGET])


def test_the_reasoner_sees_the_frames_the_sampler_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    qa = _qa()
    events = _run(monkeypatch, qa, config=CFG.replace(num_key_frames=3, num_reference_frames=3))
    result = next(e for e in events if isinstance(e, ev.SamplerResult))
    request = qa.requests[0]
    assert request.key_clip.frame_indices == result.key_frames == [10, 15, 19]
    assert request.reference_clip is not None and request.reference_clip.frame_indices == [0, 10, 19]
    for clip in (request.key_clip, request.reference_clip):
        for frame, idx in zip(clip.frames, clip.frame_indices):
            assert np.array_equal(frame, FRAMES[idx])
    assert request.key_clip.window == (10, 19)
    decoded = [e for e in events if isinstance(e, ev.FramesDecoded)]
    assert decoded[-1].total_decoded == len({i for e in decoded for i in e.frame_indices})


# --------------------------------------------------------------------------- manual cues backend


def test_manual_cues_land_on_their_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    x1, y1, x2, y2 = box_of(GT[7])
    cues = [{"box": [x1, y1, x2, y2], "point": [(x1 + x2) / 2, (y1 + y2) / 2], "frame_idx": 7}]
    cfg = CFG.replace(vlm="manual", manual_cues=cues)
    events = list(run(ArrayVideo(FRAMES, 10), "the square I marked", cfg))
    assert isinstance(events[-1], ev.RunFinished)
    info = next(e for e in events if isinstance(e, ev.BackendInfo) and e.for_stage == "reasoner")
    assert info.name == "manual" and info.weights_free and "manual" in info.description
    level = next(e for e in events if isinstance(e, ev.SamplerLevel))
    assert level.mean_interval == [0, T - 1] and not level.zoom  # "the whole video", said honestly
    assert next(e for e in events if isinstance(e, ev.SamplerResult)).target_frame == 7
    # No model rated the difficulty: a warning, no budget.
    assert any(isinstance(e, ev.RunWarning) and e.for_stage == "difficulty" for e in events)
    done = next(e for e in events if isinstance(e, ev.ReasoningDone))
    assert "by hand" in done.think and len([e for e in events if isinstance(e, ev.ReasoningToken)]) > 3
    state = RunState.from_events(events)
    assert state.cues[0]["box"] == [x1, y1, x2, y2]
    assert min(_iou(state.masks[i][0], GT[i]) for i in range(T)) > 0.85


@pytest.mark.parametrize(
    ("cues", "fragment"),
    [
        (None, "needs cues"),
        ([{"box": [1, 1, 9, 9], "frame_idx": 1}, {"box": [1, 1, 9, 9], "frame_idx": 2}], "one frame"),
        ([{"frame_idx": 0}], "no box and no point"),
        ([{"box": [1, 2], "frame_idx": 0}], "not valid"),
    ],
)
def test_manual_backend_rejects_bad_cues(cues: Any, fragment: str) -> None:
    events = list(run(ArrayVideo(FRAMES, 10), "q", CFG.replace(vlm="manual", manual_cues=cues)))
    assert _types(events) == ["run_started", "error"]
    assert events[-1].for_stage == "sampler" and fragment in events[-1].message


def test_manual_cues_on_first_frame_sampler_are_applied_and_said_so() -> None:
    cues = [{"box": box_of(GT[0]), "frame_idx": 4}]
    events = list(
        run(ArrayVideo(FRAMES, 10), "q", CFG.replace(vlm="manual", manual_cues=cues, sampler="first_frame"))
    )
    done = next(e for e in events if isinstance(e, ev.ReasoningDone))
    assert "applied as given to frame 0" in done.think


# --------------------------------------------------------------------------- shapes world, end to end


@pytest.fixture(scope="module")
def shapes_scenario() -> Any:
    from videoseg.shapes import generate

    return generate(3, "distractor_colour")


@pytest.mark.parametrize(
    "preset_name", ["shapes", "shapes-first-frame", "shapes-target-only", "shapes-random-key"]
)
def test_shapes_world_runs_every_table5_row(shapes_scenario: Any, preset_name: str) -> None:
    from videoseg.core.config import preset

    expression = shapes_scenario.expressions[0]
    video = ArrayVideo(shapes_scenario.frames, shapes_scenario.fps)
    events = list(run(video, expression.text, preset(preset_name), preset=preset_name))
    state = RunState.from_events(events)
    assert state.status == "finished", state.errors
    assert state.backends["reasoner"].name != "scripted" and state.backends["reasoner"].weights_free
    assert state.sampler_result is not None and state.sampler_result.strategy == preset(preset_name).sampler
    gt = np.isin(shapes_scenario.masks, expression.obj_ids)
    j = np.mean([_iou(state.label_map(t) > 0, gt[t]) if gt[t].any() else 1.0 for t in range(len(gt))])
    assert j > (0.7 if preset_name == "shapes" else 0.3)


def test_config_from_a_preset_name_or_a_dict(monkeypatch: pytest.MonkeyPatch) -> None:
    scripted = Backends(vqa=_qa())
    by_name = list(run(ArrayVideo(FRAMES, 10), "q", None, preset="shapes-box-only", backends=scripted))
    assert by_name[0].config["cues"] == ["box"] and by_name[0].preset == "shapes-box-only"
    assert isinstance(by_name[-1], ev.RunFinished)
    by_dict = list(run(ArrayVideo(FRAMES, 10), "q", CFG.replace(seed=7).to_dict(), backends=scripted))
    assert by_dict[0].config["seed"] == 7 and isinstance(by_dict[-1], ev.RunFinished)
    unknown = list(run(ArrayVideo(FRAMES, 10), "q", None, preset="no-such-preset"))
    assert _types(unknown) == ["run_started", "error"] and unknown[1].for_stage == "config"
    bad = list(run(ArrayVideo(FRAMES, 10), "q", {"delta": 7}))
    assert _types(bad) == ["run_started", "error"] and "delta" in bad[1].message


def test_the_real_xmem_backend_reports_a_missing_checkpoint_before_the_vlm_loads(tmp_path: Path) -> None:
    """No monkeypatching: the real XMem propagator's readiness check runs before any model question."""
    frames, _ = moving_square_frames(6)
    config = PipelineConfig(propagator="xmem", xmem_checkpoint=str(tmp_path / "XMem.pth"))
    events = list(run(ArrayVideo(frames, fps=6), "the square", config))
    assert isinstance(events[0], ev.RunStarted)
    error = events[-1]
    assert isinstance(error, ev.RunError) and error.for_stage == "propagator" and error.fatal
    assert "XMem.pth" in error.message and "releases/download" in error.message
    assert not any(isinstance(e, (ev.SamplerLevel, ev.BackendInfo)) for e in events)


def test_table7_budget_shortens_the_reasoning() -> None:
    """The difficulty budget (shapes) trims the reasoning chain; shapes-no-budget rates nothing."""
    from videoseg.core.config import preset

    video = Path(__file__).resolve().parents[2] / "examples" / "shapes" / "appears_after" / "video.mp4"
    query = "the triangle that appears after the orange circle turns left"
    with_budget = RunState.from_events(run(video, query, preset("shapes")))
    without = RunState.from_events(run(video, query, preset("shapes-no-budget")))
    assert with_budget.difficulty is not None and with_budget.difficulty.budget is not None
    assert without.difficulty is None
    assert (
        with_budget.reasoning.think_tokens <= with_budget.difficulty.budget < without.reasoning.think_tokens
    )
    assert with_budget.cues and without.cues  # both still answer


def test_a_reasoner_with_no_answer_space_is_a_clear_reasoner_error(monkeypatch: pytest.MonkeyPatch) -> None:
    qa = _qa(reasoning=['<answer>[{"bbox_2d": [10, 10, 30, 30]}]</answer>'])
    qa.space = (0, 0)
    events = _run(monkeypatch, qa)
    last = events[-1]
    assert isinstance(last, ev.RunError) and last.for_stage == "reasoner"
    assert "answer space of (0, 0), not a positive size" in last.message  # was "ZeroDivisionError"
