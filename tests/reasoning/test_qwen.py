"""Qwen2.5-VL backend (paper steps 1-2) on a tiny random checkpoint loaded through from_pretrained.

The answers of a random model are noise; what is tested is the plumbing: which frames and texts reach
the model, K answers from ONE generate (sampled from the call's own seed), greedy decoding, streaming,
the profile's token cap and truncation, usage counts, error propagation, the answer space, and that the
shared object keeps nothing of a call.
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
from videoseg.core.interfaces import CallSettings, Clip, ReasonRequest
from videoseg.reasoning import prompts
from videoseg.reasoning.qwen import (
    TARGET_MAX_PIXELS,
    QwenVideoQA,
    qwen_answer_space,
    smart_resize,
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


S = CallSettings(seed=3, temperature=0.7)


def _state(qa) -> dict:
    """Everything on the shared object except its weights and processor (must never change)."""
    return {k: v for k, v in vars(qa).items() if k not in ("model", "processor")}


def test_interval_question_shows_the_clip_as_a_timed_video(qa, captured):
    clip = _clip(8, fps=4.0)
    before = _state(qa)
    answer = qa.answer_intervals(clip, "the red circle", 3, S)
    assert len(answer.texts) == 3 and all(isinstance(t, str) for t in answer.texts)
    (call,) = captured  # K answers, one generate
    assert call["num_return_sequences"] == 3
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
    assert "start and end time in seconds" in answer.prompt
    assert answer.prompt.count("<|video_pad|>") == 1  # the exact template text, unexpanded
    assert answer.prompt == qa.question_prompt("interval", clip, "the red circle", S)
    usage = answer.usage
    assert usage.prompt_tokens == call["input_ids"].shape[1] and usage.vision_tokens == n_video_tokens
    assert usage.num_sequences == 3 and all(1 <= n <= usage.max_new_tokens for n in usage.new_tokens)
    assert usage.peak_cuda_mb is None and usage.seconds > 0
    assert _state(qa) == before  # the shared object keeps nothing of the call


def test_k_answers_are_sampled_from_the_call_seed_not_the_global_rng(qa, captured):
    clip = _clip(6)
    torch.manual_seed(1)
    first = qa.answer_intervals(clip, "the cat", 4, S).texts
    torch.manual_seed(999)  # another run moving torch's global RNG must change nothing
    again = qa.answer_intervals(clip, "the cat", 4, S).texts
    assert again == first
    assert len(set(first)) > 1  # temperature sampling: the K answers differ
    other_level = qa.answer_intervals(clip, "the cat", 4, CallSettings(seed=3, level=1)).texts
    other_seed = qa.answer_intervals(clip, "the cat", 4, CallSettings(seed=4)).texts
    assert other_level != first and other_seed != first
    assert all(c["do_sample"] and c["top_k"] == 0 and c["top_p"] == 1.0 for c in captured)
    assert all(c["temperature"] == 1.0 for c in captured)  # the call's own sampler applies T
    pct = qa.answer_percentages(clip, "the cat", 2, S)
    assert len(pct.texts) == 2 and "percentage of the clip length" in pct.prompt


def test_seeded_sampler_draws_from_the_softmax():
    from videoseg.reasoning.qwen import SeededSampler

    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1]]))
    sampler = SeededSampler(0, 1.0, torch.device("cpu"))
    counts = torch.zeros(3)
    for _ in range(4000):
        out = sampler(torch.zeros(1, 1, dtype=torch.long), logits)
        assert torch.isfinite(out).sum() == 1  # one token left for generate's own draw
        counts[int(out.argmax())] += 1
    assert torch.allclose(counts / 4000, torch.tensor([0.7, 0.2, 0.1]), atol=0.03)


def test_greedy_questions_generate_once(qa, captured):
    clip = _clip(4)
    a = qa.rate_difficulty(clip, "the second bird from the left", S)
    b = qa.rate_difficulty(clip, "the second bird from the left", S)
    assert a.texts == b.texts and len(a.texts) == 1
    assert all(c["do_sample"] is False and "num_return_sequences" not in c for c in captured)
    for key in ("scene", "segmentation", "temporal", "motion", "linguistic"):
        assert f'"{key}"' in a.prompt
    assert '"the second bird from the left"' in a.prompt
    greedy = qa.answer_intervals(clip, "the cat", 3, CallSettings(temperature=0.0))
    assert len(set(greedy.texts)) == 1 and greedy.usage.num_sequences == 1  # one sequence, repeated


def test_reason_prompt_is_known_before_generation(qa, captured):
    request = _request()
    call = qa.start_reasoning(request, CallSettings(max_new_tokens=24))
    assert not captured  # nothing generated yet, but the prompt is there
    assert '"the dog that jumps over the fence"' in call.prompt
    width, height = qa.answer_space(120, 90)
    assert call.answer_size == (width, height)
    list(call.stream())
    (gen,) = captured
    assert gen["do_sample"] is False and gen["max_new_tokens"] == 24
    assert int(gen["video_grid_thw"][0, 0]) == 2  # 4 key frames -> 2 temporal patches
    image_grids = gen["image_grid_thw"]
    assert len(image_grids) == 3 + 1  # three reference frames, then the target frame
    assert (int(image_grids[-1, 2]) * 14, int(image_grids[-1, 1]) * 14) == (width, height)
    text = qa.processor.tokenizer.decode(gen["input_ids"][0])
    assert '"the dog that jumps over the fence"' in text
    assert "at most about 96 tokens" in text
    assert f"it is {width} x {height} pixels" in text
    assert "Target frame, at 3.0 s" in text  # frame 12 at 4 fps
    assert "taken at 0.0, 5.0, 10.0 s" in text  # reference frame times
    assert text.index("<|video_pad|>") < text.index("Reference frames") < text.index("Target frame")
    assert call.prompt.count("<|image_pad|>") == 4
    assert call.usage.prompt_tokens == gen["input_ids"].shape[1] and call.usage.vision_tokens > 0


def test_reason_prompt_without_budget_or_references(qa, captured):
    call = qa.start_reasoning(_request(budget=None, reference_clip=None, cue_kinds=("box",)), S)
    list(call.stream())
    (gen,) = captured
    assert len(gen["image_grid_thw"]) == 1  # the target frame only
    assert "at most about" not in call.prompt and "Reference frames" not in call.prompt
    assert "bbox_2d" in call.prompt and "neg_point_2d" not in call.prompt


def test_tokens_stream_incrementally_and_in_order(qa):
    forward_calls = []

    def slow_step(module, args, output):
        # One lm_head call per generated token; the pause makes the streaming observable: pieces
        # must arrive while generation still runs.
        forward_calls.append(1)
        time.sleep(0.01)

    hook = qa.model.lm_head.register_forward_hook(slow_step)
    call = qa.start_reasoning(_request(), CallSettings(max_new_tokens=30))
    try:
        pieces, calls_seen = [], []
        for piece in call.stream():
            pieces.append(piece)
            calls_seen.append(len(forward_calls))
    finally:
        hook.remove()
    assert len(pieces) > 3
    assert calls_seen[0] < len(forward_calls)  # the first piece came before generation finished
    assert calls_seen == sorted(calls_seen)
    assert call.usage.new_tokens[0] >= len(pieces) and call.usage.num_sequences == 1


def test_the_cap_is_the_profile_s_and_a_cut_answer_is_flagged(qa, captured):
    call = qa.start_reasoning(_request(max_new_tokens=5), S)  # the request's own cap is not the model's
    assert call.usage.max_new_tokens == 1024  # qwen2.5-vl profile cap (>= the references')
    short = qa.start_reasoning(_request(), CallSettings(max_new_tokens=4))
    text4 = "".join(short.stream())
    assert short.usage.new_tokens == [4] and short.usage.truncated == [True]
    longer = qa.start_reasoning(_request(), CallSettings(max_new_tokens=40))
    text40 = "".join(longer.stream())
    assert longer.usage.new_tokens[0] > 4  # so the cap above is what stopped it
    assert text40.startswith(text4)  # greedy: the capped run is a prefix of the longer one


def test_unparseable_output_is_a_parse_error(qa):
    text = "".join(qa.start_reasoning(_request(), CallSettings(max_new_tokens=16)).stream())
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
        for piece in qa.start_reasoning(_request(), S).stream():
            got.append(piece)
    assert not any(t.name == "qwen-reason" for t in threading.enumerate())


def test_closing_the_stream_stops_generation(qa):
    call = qa.start_reasoning(_request(), CallSettings(max_new_tokens=200))
    stream = call.stream()
    next(stream)
    stream.close()
    assert call.usage.new_tokens[0] < 200
    assert not any(t.name == "qwen-reason" for t in threading.enumerate())


def test_visionreasoner_profile_answers_in_840_space_and_maps_back(qa, captured):
    call = qa.start_reasoning(
        _request(reference_clip=None), CallSettings(profile="visionreasoner", max_new_tokens=2)
    )
    assert call.answer_size == (840, 840) and call.usage.max_new_tokens == 2
    list(call.stream())
    assert len(captured[0]["image_grid_thw"]) == 1  # one image, no video
    assert "pixel_values_videos" not in captured[0]
    grid = captured[0]["image_grid_thw"][-1]
    assert (int(grid[1]) * 14, int(grid[2]) * 14) == (840, 840)
    # The same loaded model serves both profiles: only the call's settings differ.
    assert qa.start_reasoning(_request(), S).answer_size == qa.answer_space(120, 90)
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


@pytest.mark.parametrize("name", ["paper", "visionreasoner", "seg-zero"])
def test_presets_end_to_end_show_their_profile_and_one_call_per_level(name, tiny_qwen_dir):  # noqa: F811
    from videoseg.core import events as ev
    from videoseg.core.config import preset

    model = str(tiny_qwen_dir)
    config = preset(
        name,
        vlm=model,
        sampler_vlm=model,  # the grounding presets' base Qwen2.5-VL, here the same tiny checkpoint
        segmenter="grabcut",
        propagator="flow",
        device="cpu",
        num_interval_answers=3,
        num_percent_answers=2,
        frames_per_question=4,
        num_key_frames=2,
        num_reference_frames=2,
        max_new_tokens=16,
    )
    events, state = _run_pipeline(config)
    assert not [e for e in events if isinstance(e, ev.RunError)]
    reason_prompt = next(e.text for e in events if isinstance(e, ev.PromptShown) and e.purpose == "reason")
    if name == "paper":  # our layout: key segment as a video, reference frames, target frame
        assert reason_prompt.count("<|video_pad|>") == 1 and reason_prompt.count("<|image_pad|>") == 3
        assert "Key segment of the video" in reason_prompt
    else:  # their layout: one 840 x 840 image and their own template, no video
        assert reason_prompt.count("<|image_pad|>") == 1 and "<|video_pad|>" not in reason_prompt
        assert "Key segment of the video" not in reason_prompt
    # The prompt event of each call comes before its model_call; one call per HTFS level (K sequences).
    levels = [e for e in events if isinstance(e, ev.SamplerLevel)]
    calls = [e for e in events if isinstance(e, ev.ModelCall)]
    intervals = [c for c in calls if c.purpose == "interval"]
    assert len(intervals) == len(levels) >= 1 and all(c.num_sequences == 3 for c in intervals)
    assert [c.purpose for c in calls if c.purpose != "interval"] == ["percentage", "difficulty", "reason"]
    reason_call = calls[-1]
    assert reason_call.for_stage == "reasoner" and reason_call.max_new_tokens == 16
    assert reason_call.vision_tokens > 0 and reason_call.prompt_tokens > reason_call.vision_tokens
    assert state.model_call_totals("sampler")["calls"] == len(levels) + 1
    # Masks for every frame (empty: a random model names no readable target).
    assert sorted(state.masks) == list(range(12))
