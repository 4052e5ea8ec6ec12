"""Qwen2.5-VL backend (paper steps 1-2) on a tiny random checkpoint loaded through from_pretrained.

The answers of a random model are noise; what is tested is the plumbing: which frames and texts reach
the model, sampling vs greedy decoding, streaming, the token cap, error propagation, the answer space.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as hf_smart_resize

from tests.support.tiny_models import (  # noqa: F401  (session fixtures)
    tiny_qwen_dir,
    tiny_sam2_video_dir,
    tiny_visionreasoner_dir,
    torch_single_thread,
)
from videoseg.core.config import PipelineConfig
from videoseg.core.cues import CueParseError, TargetCues, parse_answer
from videoseg.core.interfaces import Clip, ReasonRequest
from videoseg.reasoning import prompts
from videoseg.reasoning.qwen import (
    TARGET_MAX_PIXELS,
    QwenVideoQA,
    qwen_answer_space,
    smart_resize,
    uses_fixed_answer_size,
)
from videoseg.runtime import loading as models

# --------------------------------------------------------------------------- pure functions


@pytest.mark.parametrize(
    ("height", "width", "min_pixels", "max_pixels"),
    [
        (1080, 1920, 3136, 12845056),  # Full HD with Qwen's shipped limits
        (1080, 1920, 3136, TARGET_MAX_PIXELS),  # ... under our target cap
        (480, 854, 3136, 448 * 448),
        (90, 120, 784, 112 * 112),
        (20, 20, 784, 112 * 112),  # below min_pixels: scaled up
        (7, 1000, 784, 112 * 112),  # thin strip
        (2160, 3840, 3136, 448 * 448),
    ],
)
def test_smart_resize_matches_the_processor_rule(height, width, min_pixels, max_pixels):
    ours = smart_resize(height, width, 28, min_pixels, max_pixels)
    assert ours == tuple(hf_smart_resize(height, width, 28, min_pixels, max_pixels))
    assert ours[0] % 28 == 0 and ours[1] % 28 == 0
    assert ours[0] * ours[1] <= max(max_pixels, 28 * 28)


@pytest.mark.parametrize(
    ("size", "limits", "fixed", "expected"),
    [
        ((120, 90), (784, 112 * 112), None, (112, 84)),  # rounds to multiples of 28
        ((640, 480), (784, 112 * 112), None, (112, 84)),  # shrunk into max_pixels
        ((20, 20), (784, 112 * 112), None, (28, 28)),  # grown to min_pixels
        ((640, 480), (3136, 12845056), None, (644, 476)),  # real limits: only rounding
        ((1920, 1080), (3136, 12845056), None, (1176, 672)),  # capped by TARGET_MAX_PIXELS
        ((1920, 1080), (3136, 12845056), (840, 840), (840, 840)),  # VisionReasoner / Seg-Zero
    ],
)
def test_answer_space_table(size, limits, fixed, expected):
    got = qwen_answer_space(*size, factor=28, min_pixels=limits[0], max_pixels=limits[1], fixed=fixed)
    assert got == expected


@pytest.mark.parametrize(
    ("model_id", "fixed"),
    [
        ("Ricky06662/VisionReasoner-7B", True),
        ("Ricky06662/Seg-Zero-7B", True),
        ("/models/seg_zero_ckpt", True),
        ("Qwen/Qwen2.5-VL-7B-Instruct", False),
        ("Qwen/Qwen2.5-VL-3B-Instruct", False),
        ("/data/my-videoseg-r1", False),
    ],
)
def test_fixed_answer_size_detection(model_id, fixed):
    assert uses_fixed_answer_size(model_id) is fixed


@pytest.mark.parametrize(
    ("kinds", "asked"),
    [
        (("box", "point", "negative"), ["box", "point", "negative"]),
        (("negative", "box"), ["box", "negative"]),
        (("point",), ["point"]),
        (("negative",), ["box", "negative"]),  # the parser needs a box or a point
    ],
)
def test_prompt_asks_for_the_cue_kinds(kinds, asked):
    assert prompts.asked_cue_kinds(kinds) == asked
    text = prompts.reason_instructions("the dog", kinds, None)
    keys = {"box": "bbox_2d", "point": '"point_2d"', "negative": "neg_point_2d"}
    for kind, key in keys.items():
        assert (key in text) is (kind in asked), (kind, text)
    # The example answer is itself a valid answer for the parser.
    parsed = parse_answer(f"<think>x</think><answer>{prompts.answer_example(kinds)}</answer>")
    assert len(parsed.targets) == 1


def test_budget_sentence_only_with_a_budget():
    assert "at most about 96 tokens" in prompts.reason_instructions("q", ("box",), 96)
    assert "at most about" not in prompts.reason_instructions("q", ("box",), None)


# --------------------------------------------------------------------------- the tiny model


def _frames(n: int, h: int = 90, w: int = 120, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def qa(tiny_qwen_dir):  # noqa: F811
    return QwenVideoQA(PipelineConfig(vlm=str(tiny_qwen_dir), device="cpu", seed=3))


@pytest.fixture
def captured(qa, monkeypatch):
    """Record every generate() call's keyword arguments (inputs included) and pass it through."""
    calls: list[dict] = []
    original = qa.model.generate

    def spy(**kwargs):
        calls.append(kwargs)
        return original(**kwargs)

    monkeypatch.setattr(qa.model, "generate", spy)
    return calls


def _clip(n: int = 8, fps: float = 4.0, start: int = 0, step: int = 2) -> Clip:
    indices = [start + step * i for i in range(n)]
    return Clip(frames=_frames(n), frame_indices=indices, fps=fps, window=(start, indices[-1] + step - 1))


def _request(**changes) -> ReasonRequest:
    base = dict(
        query="the dog that jumps over the fence",
        key_clip=_clip(4, start=8),
        target_frame=_frames(1, seed=7)[0],
        target_index=12,
        reference_clip=Clip(frames=_frames(3, seed=2), frame_indices=[0, 20, 40], fps=4.0, window=(0, 47)),
        max_new_tokens=24,
        budget=96,
        cue_kinds=("box", "point", "negative"),
    )
    base.update(changes)
    return ReasonRequest(**base)


def test_model_is_cached_per_id_device_dtype(qa, tiny_qwen_dir):  # noqa: F811
    again = QwenVideoQA(PipelineConfig(vlm=str(tiny_qwen_dir), device="cpu"))
    assert again.model is qa.model and again.processor is qa.processor
    assert ("qwen2.5-vl", str(tiny_qwen_dir), "cpu", "float32") in models.cached_keys()
    half = QwenVideoQA(PipelineConfig(vlm=str(tiny_qwen_dir), device="cpu", dtype="bfloat16"))
    assert half.model is not qa.model
    assert next(half.model.parameters()).dtype == torch.bfloat16
    assert next(qa.model.parameters()).dtype == torch.float32  # fp32 is the CPU default


def test_bad_model_id_and_device_are_clear_errors():
    with pytest.raises(models.ModelLoadError, match="/no/such/checkpoint"):
        QwenVideoQA(PipelineConfig(vlm="/no/such/checkpoint", device="cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            models.resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown dtype"):
        models.resolve_dtype("int8", torch.device("cpu"))


def test_cpu_load_logs_a_cost_warning(tiny_qwen_dir, caplog, monkeypatch):  # noqa: F811
    monkeypatch.setattr(models, "_CACHE", {})  # force a fresh load without dropping others' models
    monkeypatch.setattr(models, "_WARNED_CPU", set())
    with caplog.at_level("WARNING", logger="videoseg.runtime.loading"):
        QwenVideoQA(PipelineConfig(vlm=str(tiny_qwen_dir), device="cpu"))
    assert any("on the CPU" in r.getMessage() and "slow" in r.getMessage() for r in caplog.records)


def test_interval_question_shows_the_clip_as_a_timed_video(qa, captured):
    clip = _clip(8, fps=4.0)
    answer = qa.answer_interval(clip, "the red circle", sample=0)
    assert isinstance(answer, str)
    (call,) = captured
    grid = call["video_grid_thw"]
    assert grid.shape == (1, 3) and int(grid[0, 0]) == 4  # 8 frames, merged in pairs
    assert "pixel_values" not in call  # no still images
    # 90 x 120 frames become 84 x 112 (multiples of 28 inside the tiny processor's limits).
    assert (int(grid[0, 1]) * 14, int(grid[0, 2]) * 14) == (84, 112)
    # M-RoPE absolute time: 2 frames per temporal patch at the clip's 1 frame / 0.5 s -> 1.0 s.
    assert float(call["second_per_grid_ts"][0]) == pytest.approx(2 / (8 / clip.duration))
    text = qa.processor.tokenizer.decode(call["input_ids"][0])
    n_video_tokens = int(grid.prod()) // 4
    assert text.count("<|video_pad|>") == n_video_tokens
    assert '"the red circle"' in text
    assert "0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5" in text
    assert "start and end time in seconds" in qa.last_prompts.interval
    assert qa.last_prompts.interval.count("<|video_pad|>") == 1  # the exact template text, unexpanded


def test_sampler_answers_are_sampled_and_reproducible(qa, captured):
    clip = _clip(6)
    first = [qa.answer_interval(clip, "the cat", sample=s) for s in range(3)]
    again = qa.answer_interval(clip, "the cat", sample=0)
    assert again == first[0]  # seeded per sample
    assert len(set(first)) == 3  # temperature sampling: K different answers
    assert all(c["do_sample"] and c["top_k"] == 0 and c["top_p"] == 1.0 for c in captured)
    assert all(c["temperature"] == pytest.approx(0.7) for c in captured)
    pct = qa.answer_percentage(clip, "the cat", sample=1)
    assert isinstance(pct, str)
    assert "percentage of the clip length" in qa.last_prompts.percentage


def test_difficulty_prompt_is_greedy_and_names_the_five_axes(qa, captured):
    clip = _clip(4)
    a = qa.rate_difficulty(clip, "the second bird from the left")
    b = qa.rate_difficulty(clip, "the second bird from the left")
    assert a == b
    assert all(c["do_sample"] is False for c in captured)
    for key in ("scene", "segmentation", "temporal", "motion", "linguistic"):
        assert f'"{key}"' in qa.last_prompts.difficulty
    assert '"the second bird from the left"' in qa.last_prompts.difficulty


def test_reason_prompt_holds_key_segment_references_and_target(qa, captured):
    request = _request()
    list(qa.reason(request))
    (call,) = captured
    assert call["do_sample"] is False and call["max_new_tokens"] == 24
    assert int(call["video_grid_thw"][0, 0]) == 2  # 4 key frames -> 2 temporal patches
    image_grids = call["image_grid_thw"]
    assert len(image_grids) == 3 + 1  # three reference frames, then the target frame
    width, height = qa.answer_space(120, 90)
    assert (int(image_grids[-1, 2]) * 14, int(image_grids[-1, 1]) * 14) == (width, height)
    text = qa.processor.tokenizer.decode(call["input_ids"][0])
    assert '"the dog that jumps over the fence"' in text
    assert "at most about 96 tokens" in text
    assert f"it is {width} x {height} pixels" in text
    assert "Target frame, at 3.0 s" in text  # frame 12 at 4 fps
    assert "taken at 0.0, 5.0, 10.0 s" in text  # reference frame times
    assert text.index("<|video_pad|>") < text.index("Reference frames") < text.index("Target frame")
    assert qa.last_prompts.reason.count("<|image_pad|>") == 4


def test_reason_prompt_without_budget_or_references(qa, captured):
    list(qa.reason(_request(budget=None, reference_clip=None, cue_kinds=("box",))))
    (call,) = captured
    assert len(call["image_grid_thw"]) == 1  # the target frame only
    text = qa.last_prompts.reason
    assert "at most about" not in text and "Reference frames" not in text
    assert "bbox_2d" in text and "neg_point_2d" not in text


def test_tokens_stream_incrementally_and_in_order(qa):
    forward_calls = []

    def slow_step(module, args, output):
        # One lm_head call per generated token; the pause makes the streaming observable: pieces
        # must arrive while generation still runs.
        forward_calls.append(1)
        time.sleep(0.01)

    hook = qa.model.lm_head.register_forward_hook(slow_step)
    try:
        pieces, calls_seen = [], []
        for piece in qa.reason(_request(max_new_tokens=30)):
            pieces.append(piece)
            calls_seen.append(len(forward_calls))
    finally:
        hook.remove()
    record = qa.last_generation
    assert len(pieces) > 3
    assert calls_seen[0] < len(forward_calls)  # the first piece came before generation finished
    assert calls_seen == sorted(calls_seen)
    full = qa.processor.tokenizer.decode(record.token_ids, skip_special_tokens=True)
    assert "".join(pieces) == full == record.text
    assert qa.last_usage["num_tokens"] == record.num_tokens


def test_budget_caps_generation_and_greedy_is_deterministic(qa):
    short = "".join(qa.reason(_request(max_new_tokens=4)))
    assert qa.last_generation.num_tokens <= 4
    long = "".join(qa.reason(_request(max_new_tokens=40)))
    assert qa.last_generation.num_tokens > 4  # so the cap above is what stopped it
    assert long.startswith(short)  # greedy: the capped run is a prefix of the longer one


def test_unparseable_output_is_a_parse_error(qa):
    text = "".join(qa.reason(_request(max_new_tokens=16)))
    with pytest.raises(CueParseError) as err:
        parse_answer(text)
    assert err.value.raw == text


def test_generation_errors_reach_the_caller(qa, monkeypatch):
    def broken(**kwargs):
        kwargs["streamer"].put(torch.tensor([[1, 2, 3]]))  # the prompt
        kwargs["streamer"].put(torch.tensor([ord("a")]))
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(qa.model, "generate", broken)
    got = []
    with pytest.raises(RuntimeError, match="out of memory"):
        for piece in qa.reason(_request()):
            got.append(piece)
    assert not any(t.name == "qwen-reason" for t in threading.enumerate())


def test_closing_the_stream_stops_generation(qa):
    stream = qa.reason(_request(max_new_tokens=200))
    next(stream)
    stream.close()
    assert qa.last_generation.num_tokens < 200
    assert not any(t.name == "qwen-reason" for t in threading.enumerate())


def test_visionreasoner_answers_in_840_space_and_maps_back(tiny_visionreasoner_dir, monkeypatch):  # noqa: F811
    qa = QwenVideoQA(PipelineConfig(vlm=str(tiny_visionreasoner_dir), device="cpu"))
    assert qa.answer_space(120, 90) == (840, 840)
    calls = []
    original = qa.model.generate
    monkeypatch.setattr(qa.model, "generate", lambda **kw: calls.append(kw) or original(**kw))
    list(qa.reason(_request(max_new_tokens=2, reference_clip=None)))
    grid = calls[0]["image_grid_thw"][-1]
    assert (int(grid[1]) * 14, int(grid[2]) * 14) == (840, 840)
    assert "it is 840 x 840 pixels" in qa.last_prompts.reason
    # A cue at the model-space corners lands on the frame's corners.
    cues = TargetCues(box=[0, 0, 840, 840], point=[420, 420]).from_model_space((840, 840), (120, 90))
    assert cues.box == [0.0, 0.0, 120.0, 90.0] and cues.point == [60.0, 45.0]


# --------------------------------------------------------------------------- the whole pipeline


def _run_pipeline(config: PipelineConfig, n: int = 12):
    from videoseg.core.state import RunState
    from videoseg.io.video import ArrayVideo
    from videoseg.pipeline.orchestrator import run

    video = ArrayVideo(_frames(n, 48, 64, seed=5), fps=6.0)
    events = list(run(video, "the square that moves left", config))
    return events, RunState.from_events(events)


def _assert_plumbing(events, state, n: int, num_targets: int):
    from videoseg.core import events as ev

    types = [type(e) for e in events]
    errors = [e for e in events if isinstance(e, ev.RunError)]
    assert not errors, errors
    assert types[0] is ev.RunStarted and types[-1] is ev.RunFinished
    # Stage order: sampler decision, then reasoning, then keyframe, then propagation.
    first = {t: types.index(t) for t in set(types)}
    assert first[ev.SamplerResult] < first[ev.ReasoningDone] < first[ev.PropagationStarted]
    assert first[ev.ReasoningToken] < first[ev.ReasoningDone]
    tokens = [e for e in events if isinstance(e, ev.ReasoningToken)]
    done = next(e for e in events if isinstance(e, ev.ReasoningDone))
    assert [t.index for t in tokens] == list(range(len(tokens)))
    assert "".join(t.text for t in tokens) == done.raw_text
    prompts_shown = {e.purpose for e in events if isinstance(e, ev.PromptShown)}
    assert "reason" in prompts_shown
    propagated = [e for e in events if isinstance(e, ev.PropagatedMask)]
    assert sorted(e.frame_idx for e in propagated) == list(range(n))  # every frame exactly once
    assert sorted(state.masks) == list(range(n))
    assert all(state.masks[i].shape == (num_targets, 48, 64) for i in range(n))


def test_pipeline_end_to_end_on_tiny_models(tiny_qwen_dir, tiny_sam2_video_dir):  # noqa: F811
    from videoseg.core import events as ev

    config = PipelineConfig(
        vlm=str(tiny_qwen_dir),
        segmenter="sam2",
        propagator="sam2",
        sam2_model=str(tiny_sam2_video_dir),  # one checkpoint serves Sam2Model and Sam2VideoModel
        device="cpu",
        num_interval_answers=2,
        num_percent_answers=2,
        frames_per_question=4,
        num_key_frames=2,
        num_reference_frames=2,
        max_new_tokens=24,
    )
    events, state = _run_pipeline(config)
    # The random model writes no answer: a parse error event, no targets, empty masks everywhere.
    assert any(isinstance(e, ev.ParseError) for e in events)
    assert {e.purpose for e in events if isinstance(e, ev.PromptShown)} >= {
        "interval",
        "percentage",
        "reason",
    }
    backends = {e.for_stage: e for e in events if isinstance(e, ev.BackendInfo)}
    assert backends["reasoner"].model_id == str(tiny_qwen_dir) and not backends["reasoner"].weights_free
    assert backends["propagator"].name == "sam2-video"
    _assert_plumbing(events, state, 12, num_targets=0)


def test_pipeline_with_manual_cues_runs_both_sam2_models(tiny_sam2_video_dir):  # noqa: F811
    from videoseg.core import events as ev

    config = PipelineConfig(
        vlm="manual",
        manual_cues=[{"box": [10, 8, 40, 30], "point": [25, 20], "negatives": [[2, 2]], "frame_idx": 5}],
        segmenter="sam2",
        propagator="sam2",
        sam2_model=str(tiny_sam2_video_dir),
        device="cpu",
        rate_difficulty=False,
    )
    events, state = _run_pipeline(config)
    keyframe = [e for e in events if isinstance(e, ev.KeyframeMask)]
    assert len(keyframe) == 1 and keyframe[0].cues["box"] == [10.0, 8.0, 40.0, 30.0]
    assert 0.0 <= keyframe[0].score <= 1.0
    _assert_plumbing(events, state, 12, num_targets=1)
