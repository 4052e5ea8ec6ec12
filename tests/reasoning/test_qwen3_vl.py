"""The qwen3-vl reasoner profile (paper step 2 on the current Qwen generation) and its loader.

Qwen3-VL grounds in coordinates relative to the image, 0..1000 on each axis (QwenLM/Qwen3-VL
cookbooks/2d_grounding.ipynb: "relative coordinates ranging from 0 to 1000", mapped back with
``value / 1000 * side``). The profile must ask for that grid, report it as the answer space, and the
pipeline's mapping must land exactly on the frame's pixels. The loader picks Qwen3-VL's class from the
checkpoint's ``model_type``; a tiny random Qwen3-VL goes through it and the real processor.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.tiny_models import torch_single_thread  # noqa: F401  (fixture)
from tests.support.tiny_qwen3 import tiny_qwen3_vl_dir  # noqa: F401  (fixture)
from videoseg.core.config import PipelineConfig
from videoseg.core.cues import parse_answer
from videoseg.core.interfaces import CallSettings, Clip, ReasonRequest
from videoseg.reasoning.profiles import get_profile

PROFILE = get_profile("qwen3-vl")


def _frames(n: int, h: int = 90, w: int = 120, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _request(height: int = 90, width: int = 120, **changes) -> ReasonRequest:
    base = dict(
        query="the dog that jumps over the fence",
        key_clip=Clip(frames=_frames(4), frame_indices=[8, 10, 12, 14], fps=4.0, window=(8, 15)),
        target_frame=_frames(1, h=height, w=width, seed=7)[0],
        target_index=12,
        reference_clip=Clip(frames=_frames(2, seed=2), frame_indices=[0, 20], fps=4.0, window=(0, 47)),
        max_new_tokens=24,
        budget=96,
    )
    base.update(changes)
    return ReasonRequest(**base)


@pytest.mark.parametrize(("width", "height"), [(120, 90), (1920, 1080), (480, 854), (1000, 1000), (37, 501)])
def test_the_answer_space_is_the_1000_grid_whatever_the_frame(width, height):
    assert PROFILE.answer_size(width, height) == (1000, 1000)
    shown_w, shown_h = PROFILE.shown_size(width, height)
    assert shown_w % 32 == 0 and shown_h % 32 == 0  # 16-px patches merged 2 x 2


@pytest.mark.parametrize(
    ("answer", "frame", "box", "point"),
    [
        # the grid's corners and centre land on the frame's corners and centre, exactly
        (
            '[{"bbox_2d": [0, 0, 1000, 1000], "point_2d": [500, 500]}]',
            (640, 480),
            [0, 0, 640, 480],
            [320, 240],
        ),
        (
            '[{"bbox_2d": [250, 100, 750, 900], "point_2d": [500, 250]}]',
            (1920, 1080),
            [480, 108, 1440, 972],
            [960, 270],
        ),
        # the QwenLM/Qwen3-VL#2020 watch (Qwen3-VL-235B) on its 1380 x 245 image
        (
            '[{"bbox_2d": [323, 118, 444, 825], "label": "watch"}]',
            (1380, 245),
            [445.74, 28.91, 612.72, 202.125],
            None,
        ),
    ],
)
def test_answers_map_back_to_frame_pixels_exactly(answer, frame, box, point):
    (target,) = parse_answer(answer).targets
    mapped = target.from_model_space(PROFILE.answer_size(*frame), frame)
    assert mapped.box == pytest.approx(box)
    assert mapped.point == (None if point is None else pytest.approx(point))


def test_the_prompt_asks_for_the_relative_grid_not_pixels():
    text = PROFILE.prompt_text(_request())
    assert "from 0 to 1000 on each axis" in text and "pixels" not in text
    assert get_profile("qwen2.5-vl").prompt_text(_request()).count("pixels") >= 1  # unchanged for Qwen2.5-VL
    content = PROFILE.reason_messages(_request())[0]["content"]
    kinds = [item["type"] for item in content]
    assert kinds.count("video") == 1 and kinds.count("image") == 3  # key segment, 2 references, target
    target = content[[i for i, k in enumerate(kinds) if k == "image"][-1]]["image"]
    assert target.size == PROFILE.shown_size(120, 90)


def test_profile_facts():
    assert PROFILE.layout == "video+images" and PROFILE.answer_schema == "videoseg"
    assert not PROFILE.grounding_only and not PROFILE.gives_negatives
    assert PROFILE.patch_factor == 32 and PROFILE.coordinates == "relative-1000"
    with pytest.raises(ValueError, match="coordinates"):
        type(PROFILE)(**{**PROFILE.__dict__, "coordinates": "normalised"})


# ------------------------------------------------------------------------------ the real loader


@pytest.fixture(scope="module")
def qa(tiny_qwen3_vl_dir):  # noqa: F811
    from videoseg.reasoning.qwen import QwenVideoQA

    return QwenVideoQA(PipelineConfig(vlm=str(tiny_qwen3_vl_dir), device="cpu", profile="qwen3-vl"))


def test_the_loader_picks_qwen3_vl_by_its_model_type(qa):
    assert type(qa.model).__name__ == "Qwen3VLForConditionalGeneration"
    assert qa.factor == 32
    assert qa.answer_space(120, 90, "qwen3-vl") == (1000, 1000)


def test_reasoning_runs_through_the_real_processor(qa, monkeypatch):
    calls: list[dict] = []
    generate = qa.model.generate
    monkeypatch.setattr(qa.model, "generate", lambda **kw: calls.append(kw) or generate(**kw))
    call = qa.start_reasoning(_request(), CallSettings(profile="qwen3-vl", max_new_tokens=8))
    assert "from 0 to 1000 on each axis" in call.prompt  # known before generation
    text = "".join(call.stream())
    assert isinstance(text, str)
    (inputs,) = calls
    decoded = qa.processor.tokenizer.decode(inputs["input_ids"][0])
    # Qwen3-VL's processor writes each frame pair's time before it: the key segment's 4 frames -> 2
    assert decoded.count(" seconds>") == 2
    grid = inputs["image_grid_thw"][-1]  # the target frame, at the profile's shown size
    assert (int(grid[2]) * 16, int(grid[1]) * 16) == PROFILE.for_processor(32, *qa.image_pixels).shown_size(
        120, 90
    )


@pytest.mark.slow
def test_a_whole_run_with_qwen3_vl_as_sampler_and_reasoner(tiny_qwen3_vl_dir):  # noqa: F811
    """pipeline.run with the tiny Qwen3-VL answering HTFS, difficulty and reasoning (GrabCut + flow)."""
    from videoseg.core.state import RunState
    from videoseg.io.video import ArrayVideo
    from videoseg.pipeline import run

    frames = _frames(12, h=64, w=96, seed=4)
    config = PipelineConfig(
        vlm=str(tiny_qwen3_vl_dir),
        profile="qwen3-vl",
        device="cpu",
        num_interval_answers=2,
        num_percent_answers=2,
        max_levels=1,
        frames_per_question=4,
        num_key_frames=2,
        num_reference_frames=1,
        max_new_tokens=16,
    )
    state = RunState.from_events(run(ArrayVideo(frames, fps=4.0), "the dog", config))
    assert state.status == "finished", [e.message for e in state.errors]
    assert state.backends["reasoner"].model_id == str(tiny_qwen3_vl_dir)
    assert any(p.purpose == "reason" and "from 0 to 1000" in p.text for p in state.prompts)
    assert sorted(state.masks) == list(range(12))  # a random model's answer is unreadable: empty masks
