"""PipelineConfig validation and presets; event (de)serialisation."""

from __future__ import annotations

import json

import pytest

from videoseg.core import events as ev
from videoseg.core.config import PRESETS, PipelineConfig, describe_presets, preset


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"sampler": "middle"}, "sampler"),
        ({"cues": ("box", "mask")}, "cues"),
        ({"cues": ()}, "cues"),
        ({"segmenter": "unet"}, "segmenter"),
        ({"propagator": "raft"}, "propagator"),
        ({"delta": 0.0}, "delta"),
        ({"num_interval_answers": 0}, "K and M"),
        ({"fallback_percent": 1.5}, "fallback"),
        ({"device": "banana"}, "device"),
        ({"device": "cuda:x"}, "device"),
        ({"dtype": "int8"}, "dtype"),
    ],
)
def test_invalid_config_is_rejected(changes: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        PipelineConfig(**changes)


@pytest.mark.parametrize("device", ["auto", "cpu", "CUDA", "cuda:1", " mps "])
def test_device_names_are_accepted_without_a_gpu(device: str) -> None:
    assert (
        PipelineConfig(device=device).device == device
    )  # only checked for form here; models check it exists


def test_an_event_without_a_type_says_so() -> None:
    with pytest.raises(ValueError, match="no 'type' field"):
        ev.event_from_dict({"message": "hi"})


def test_presets_cover_the_paper_ablations() -> None:
    samplers = {preset(n).sampler for n in PRESETS if n.startswith("shapes")}
    assert samplers == {"htfs", "first_frame", "target_only", "random_key"}
    cue_sets = {preset(n).cues for n in PRESETS if n.startswith("shapes")}
    assert {
        ("point",),
        ("box",),
        ("box", "point"),
        ("box", "negative"),
        ("box", "point", "negative"),
    } <= cue_sets
    assert preset("shapes").weights_free
    assert preset("shapes").rate_difficulty and not preset("shapes-no-budget").rate_difficulty  # Table 7
    paper = preset("paper")
    assert (paper.vlm, paper.segmenter, paper.propagator) == ("Qwen/Qwen2.5-VL-7B-Instruct", "sam2", "xmem")
    assert paper.sam2_model == "facebook/sam2.1-hiera-large"
    assert not paper.weights_free
    assert "paper" in describe_presets()
    with pytest.raises(KeyError, match="unknown preset"):
        preset("nope")


def test_config_round_trip_and_aliases() -> None:
    cfg = preset("shapes-box-only", vlm="qwen-3b", sam2_model="tiny", seed=3)
    assert cfg.vlm == "Qwen/Qwen2.5-VL-3B-Instruct" and cfg.sam2_model == "facebook/sam2.1-hiera-tiny"
    again = PipelineConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(ValueError, match="unknown config"):
        PipelineConfig.from_dict({"bogus": 1})


def test_every_event_round_trips_through_json() -> None:
    samples = [
        ev.RunStarted(query="q", video={"num_frames": 3}, config={"a": 1}),
        ev.SamplerLevel(
            level=0,
            window=[0, 9],
            frame_indices=[0, 9],
            raw_answers=["x"],
            intervals=[None],
            mean_interval=[0, 9],
            zoom=False,
        ),
        ev.ReasoningToken(index=0, text="<think>"),
        ev.PropagatedMask(
            frame_idx=1, direction="forward", rles=[{"size": [1, 1], "counts": "11"}], done=2, total=3
        ),
        ev.RunError(for_stage="video", message="bad"),
    ]
    for e in samples:
        d = json.loads(json.dumps(e.to_dict()))
        assert d["type"] == e.type
        assert ev.event_from_dict(d) == e
    with pytest.raises(ValueError, match="unknown event type"):
        ev.event_from_dict({"type": "nope"})
    with pytest.raises(ValueError, match="unknown fields"):
        ev.event_from_dict({"type": "reasoning_token", "index": 0, "text": "a", "extra": 1})
    types = ev.event_types()
    assert len(types) == len(set(types)) and "propagated_mask" in types
