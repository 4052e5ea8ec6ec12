"""Model profiles: layout, templates, answer space, caps, negatives rule, and how a run chooses one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from videoseg.core.config import PRESETS, PipelineConfig, preset
from videoseg.core.cues import TargetCues
from videoseg.core.interfaces import Clip, ReasonRequest
from videoseg.reasoning import prompts
from videoseg.reasoning.profiles import (
    PROFILES,
    TARGET_MAX_PIXELS,
    Profile,
    UnknownProfileError,
    get_profile,
    smart_resize,
)


def _frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, size=(n, h, w, 3), dtype=np.uint8)


def _request(query: str = "The red circle that turns left?", refs: int = 2, keys: int = 4) -> ReasonRequest:
    fps = 10.0
    key = Clip(
        frames=_frames(keys, 48, 64),
        frame_indices=list(range(20, 20 + 2 * keys, 2)),
        fps=fps,
        window=(20, 27),
    )
    ref = (
        Clip(
            frames=_frames(refs, 48, 64, 1),
            frame_indices=[i * 30 for i in range(refs)],
            fps=fps,
            window=(0, 99),
        )
        if refs
        else None
    )
    return ReasonRequest(
        query=query,
        key_clip=key,
        target_frame=_frames(1, 720, 1280, 2)[0],
        target_index=24,
        reference_clip=ref,
        budget=96,
        cue_kinds=("box", "point", "negative"),
    )


# ---------------------------------------------------------------- names and facts


def test_the_four_profiles_and_their_reference_facts() -> None:
    assert {"qwen2.5-vl", "videoseg-r1", "visionreasoner", "seg-zero"} <= set(PROFILES)
    vr, sz = get_profile("visionreasoner"), get_profile("seg-zero")
    # dvlab-research/VisionReasoner vision_reasoner_model.py: resize_size 840, max_new_tokens 2048;
    # dvlab-research/Seg-Zero infer.py: resize_size 840, max_new_tokens 1024; both greedy.
    assert (vr.image_size, vr.max_new_tokens, vr.layout, vr.answer_schema) == (
        (840, 840),
        2048,
        "single-image",
        "visionreasoner",
    )
    assert (sz.image_size, sz.max_new_tokens, sz.layout, sz.answer_schema) == (
        (840, 840),
        1024,
        "single-image",
        "seg-zero",
    )
    assert vr.grounding_only and sz.grounding_only and vr.greedy and sz.greedy
    qwen, ours = get_profile("qwen2.5-vl"), get_profile("videoseg-r1")
    # TRL's GRPOTrainer takes images only: the trained checkpoint sees every frame as an image.
    assert (qwen.layout, ours.layout) == ("video+images", "images") and qwen.image_size is None
    assert not qwen.grounding_only and not ours.grounding_only
    # Only our own trained checkpoint is trusted with negative points.
    assert [n for n, p in PROFILES.items() if p.gives_negatives] == ["videoseg-r1"]
    assert all(p.max_new_tokens >= 1024 for p in PROFILES.values())


@pytest.mark.parametrize("name", ["Qwen2.5-VL", " seg-zero ", "VIDEOSEG-R1"])
def test_names_are_case_and_space_insensitive(name: str) -> None:
    assert get_profile(name).name == name.strip().lower()


@pytest.mark.parametrize("name", ["qwen", "VisionReasoner-7B", "", "/models/seg-zero-7b"])
def test_an_unknown_profile_is_a_clear_error_listing_the_names(name: str) -> None:
    with pytest.raises(UnknownProfileError) as info:
        get_profile(name)
    assert isinstance(info.value, ValueError)
    for known in PROFILES:
        assert known in str(info.value)


def test_a_profile_checks_its_own_fields() -> None:
    with pytest.raises(ValueError, match="layout"):
        Profile("x", "three-videos", None, "videoseg", 10, False, False)
    with pytest.raises(ValueError, match="schema"):
        Profile("x", "single-image", (840, 840), "yaml", 10, False, False)


# ---------------------------------------------------------------- answer space


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((640, 480), (644, 476)),  # rounded to multiples of 28, within the target budget
        ((1000, 600), (1008, 588)),
        ((1500, 1000), (1092, 728)),  # above 1024 tokens: scaled down, then floored to 28
        ((20, 20), (56, 56)),  # below Qwen's 56*56 minimum: scaled up
    ],
)
def test_qwen_answer_space_is_the_smart_resized_target(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    for name in ("qwen2.5-vl", "videoseg-r1"):
        w, h = get_profile(name).answer_size(*size)
        assert (w, h) == expected
        assert w % 28 == 0 and h % 28 == 0 and w * h <= TARGET_MAX_PIXELS


def test_fixed_answer_space_ignores_the_frame_size() -> None:
    for w, h in ((1280, 720), (64, 48), (480, 854)):
        assert get_profile("visionreasoner").answer_size(w, h) == (840, 840)
        assert get_profile("seg-zero").answer_size(w, h) == (840, 840)


def test_a_processor_with_other_limits_changes_the_answer_space_not_the_prompt() -> None:
    tiny = get_profile("qwen2.5-vl").for_processor(28, 28 * 28, 112 * 112)
    assert tiny.answer_size(640, 480) == (112, 84)
    assert tiny.name == "qwen2.5-vl" and get_profile("qwen2.5-vl").answer_size(640, 480) == (644, 476)
    assert smart_resize(480, 640, 28, 784, 112 * 112) == (84, 112)


# ---------------------------------------------------------------- messages


def test_video_images_layout_key_segment_references_then_target() -> None:
    req = _request()
    profile = get_profile("qwen2.5-vl")
    (msg,) = profile.reason_messages(req)
    assert msg["role"] == "user"
    kinds = [item["type"] for item in msg["content"]]
    assert kinds == ["text", "video", "text", "text", "image", "text", "image", "text", "image", "text"]
    content = msg["content"]
    assert content[0]["text"].startswith("Key segment of the video: 4 frames from 2.0 s to 2.7 s")
    video = content[1]
    assert len(video["video"]) == 4 and video["fps"] == pytest.approx(4 / 0.8)
    assert all(
        isinstance(f, Image.Image) and f.size[0] % 28 == 0 and f.size[1] % 28 == 0 for f in video["video"]
    )
    assert content[2]["text"].startswith("\nReference frames") and content[3]["text"] == "t = 0.0 s:"
    target = content[8]["image"]
    w, h = profile.answer_size(1280, 720)
    assert target.size == (w, h)
    assert f"{w} x {h} pixels" in content[7]["text"] and "2.4 s" in content[7]["text"]
    instructions = content[9]["text"]
    assert '"The red circle that turns left?"' in instructions
    assert "at most about 96 tokens" in instructions and "neg_point_2d" in instructions
    assert profile.prompt_text(req).count("<image>") == 3 and "<video>" in profile.prompt_text(req)


def test_no_key_frames_and_no_references_leave_only_the_target() -> None:
    req = _request(refs=0, keys=0)
    kinds = [i["type"] for i in get_profile("qwen2.5-vl").reason_messages(req)[0]["content"]]
    assert kinds == ["text", "image", "text"]


def test_trained_checkpoint_is_asked_exactly_what_the_base_model_is() -> None:
    # The trainer prompts with videoseg-r1; the qwen2.5-vl profile must not drift from it silently.
    req = _request()
    base = get_profile("qwen2.5-vl").reason_messages(req)[0]["content"]
    ours = get_profile("videoseg-r1").reason_messages(req)[0]["content"]
    # The same words; only the key segment is shown as time-labelled images instead of one video.
    key_labels = {"t = %.1f s:" % (i / req.key_clip.fps) for i in req.key_clip.frame_indices}
    base_texts = [i["text"].strip() for i in base if i["type"] == "text"]
    ours_texts = [
        i["text"].strip() for i in ours if i["type"] == "text" and i["text"].strip() not in key_labels
    ]
    assert base_texts == ours_texts
    assert "video" not in {i["type"] for i in ours}
    images = sum(i["type"] == "image" for i in ours) - sum(i["type"] == "image" for i in base)
    assert images == len(req.key_clip.frame_indices)


@pytest.mark.parametrize(
    ("name", "question", "example_key"),
    [
        (
            "visionreasoner",
            'Locate "the red circle that turns left" in the image',
            '"point_2d"',
        ),
        ("seg-zero", "Locate 'the red circle that turns left?' in the image", "'points_1'"),
    ],
)
def test_single_image_profiles_show_one_840_image_and_their_template(
    name: str, question: str, example_key: str
) -> None:
    (msg,) = get_profile(name).reason_messages(_request())
    image, text = msg["content"]
    assert image["type"] == "image" and image["image"].size == (840, 840)
    assert text["type"] == "text" and text["text"].startswith(question)
    assert example_key in text["text"] and "<think> reasoning </think><answer>" in text["text"]
    # No video, reference frames, budget or negative point: they were never in its training prompt.
    assert (
        "Key segment" not in text["text"] and "neg_point" not in text["text"] and "tokens" not in text["text"]
    )


def test_single_image_is_the_bilinear_resize_of_the_target_frame() -> None:
    req = _request()
    image = get_profile("seg-zero").reason_messages(req)[0]["content"][0]["image"]
    expected = Image.fromarray(req.target_frame).resize((840, 840), Image.BILINEAR)
    assert np.array_equal(np.asarray(image), np.asarray(expected))


@pytest.mark.parametrize("frame", [np.zeros((10, 10)), np.zeros((10, 10, 4)), np.zeros((0, 5, 3))])
def test_a_bad_target_frame_is_a_clear_error(frame: np.ndarray) -> None:
    req = _request()
    req.target_frame = frame
    for name in PROFILES:
        with pytest.raises(ValueError, match="target frame must be an"):
            get_profile(name).reason_messages(req)


def test_prompt_module_templates_are_the_ones_used() -> None:
    assert prompts.visionreasoner_question("A Dog.") == prompts.VISIONREASONER_TEMPLATE.format(
        question="a dog", answer=prompts.VISIONREASONER_EXAMPLE
    )
    assert prompts.seg_zero_question("A Dog?") == prompts.SEG_ZERO_TEMPLATE.format(
        question="a dog?", answer=prompts.SEG_ZERO_EXAMPLE
    )


# ---------------------------------------------------------------- negatives


@pytest.mark.parametrize(
    ("name", "negatives", "kept", "warned"),
    [
        ("qwen2.5-vl", [[50, 50], [5, 5]], [[5.0, 5.0]], True),  # inside the box: dropped
        ("qwen2.5-vl", [[10, 10]], [], True),  # on the box's corner counts as inside
        ("qwen2.5-vl", [[5, 5], [95, 20]], [[5.0, 5.0], [95.0, 20.0]], False),
        ("visionreasoner", [[50, 50]], [], True),
        ("seg-zero", [[50, 50]], [], True),
        ("videoseg-r1", [[50, 50], [5, 5]], [[50.0, 50.0], [5.0, 5.0]], False),  # trained: kept
    ],
)
def test_untrained_profiles_drop_negatives_inside_the_box(
    name: str, negatives: list, kept: list, warned: bool
) -> None:
    cues = TargetCues(box=[10, 10, 90, 90], point=[40, 40], negatives=negatives, obj_id=2, frame_idx=4)
    out, warning = get_profile(name).screen_negatives(cues)
    assert out.negatives == kept
    assert (out.box, out.point, out.obj_id, out.frame_idx) == (cues.box, cues.point, 2, 4)
    assert (warning is not None) == warned
    if warning:
        assert warning.startswith("target 2: negative point") and f"the {name} profile" in warning
        dropped = [p for p in negatives if [float(v) for v in p] not in kept]
        assert all(f"({x}, {y})" in warning for x, y in dropped)


# ---------------------------------------------------------------- how a run chooses its profile


@pytest.mark.parametrize(
    ("preset_name", "profile"),
    [
        ("paper", "qwen2.5-vl"),
        ("paper-3b", "qwen2.5-vl"),
        ("visionreasoner", "visionreasoner"),
        ("seg-zero", "seg-zero"),
    ],
)
def test_presets_name_their_profile(preset_name: str, profile: str) -> None:
    assert preset(preset_name).profile == profile


def test_every_preset_names_a_known_profile_and_vlm_only_replaces_weights() -> None:
    for name in PRESETS:
        assert preset(name).profile in PROFILES
    # A local folder called like a released checkpoint does not switch the profile.
    assert preset("paper", vlm="/models/VisionReasoner-7B").profile == "qwen2.5-vl"
    assert preset("visionreasoner", vlm="/ckpt/run3").profile == "visionreasoner"
    assert preset("paper", profile="videoseg-r1").profile == "videoseg-r1"


def test_an_unknown_profile_in_the_config_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"known profiles: qwen2\.5-vl"):
        PipelineConfig(profile="visionreasoner-7b")
    assert PipelineConfig.from_dict(PipelineConfig(profile="seg-zero").to_dict()).profile == "seg-zero"


def test_the_run_command_takes_a_profile_and_refuses_an_unknown_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from videoseg.cli.main import main
    from videoseg.pipeline import orchestrator

    class Started(Exception):
        pass

    seen: dict[str, str] = {}

    def fake_run(video: object, query: str, config: PipelineConfig, **kwargs: object) -> None:
        seen["profile"], seen["vlm"] = config.profile, config.vlm
        raise Started

    monkeypatch.setattr(orchestrator, "run", fake_run)
    with pytest.raises(Started):
        main(
            [
                "run",
                str(tmp_path / "v.mp4"),
                "q",
                "--profile",
                "Seg-Zero",
                "--out",
                str(tmp_path / "o"),
                "--quiet",
            ]
        )
    assert seen == {"profile": "seg-zero", "vlm": "shapes"}
    assert main(["run", "v.mp4", "q", "--profile", "nope", "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    known = "qwen2.5-vl, videoseg-r1, qwen3-vl, visionreasoner, seg-zero"
    assert f"unknown profile 'nope'; known profiles: {known}" in err
