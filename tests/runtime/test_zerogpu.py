"""ZeroGPU (issue 12 item 6): the duration of a GPU call, the start-up download list and the refusal.

Nothing here sets ``SPACES_ZERO_GPU`` in the process: every function takes the environment as an
argument (a dict), as a Space's would be read.
"""

from __future__ import annotations

import os
from typing import ClassVar

import pytest

from videoseg.core import events as ev
from videoseg.core.config import PipelineConfig, preset
from videoseg.core.interfaces import BackendDescription
from videoseg.runtime import loading, zerogpu

SPACE = {"SPACES_ZERO_GPU": "true"}


def test_space_detection_reads_the_given_environment_only() -> None:
    assert zerogpu.on_space(SPACE) and zerogpu.on_space({"SPACES_ZERO_GPU": "1"})
    assert not zerogpu.on_space({}) and not zerogpu.on_space({"SPACES_ZERO_GPU": "false"})
    assert "SPACES_ZERO_GPU" not in os.environ  # the tests' own process is never a Space


def test_startup_downloads_list_each_hub_checkpoint_of_the_presets_once() -> None:
    ids = zerogpu.startup_downloads([preset("paper"), preset("paper-3b"), preset("paper-sam2-video")])
    assert ids == [
        "Qwen/Qwen2.5-VL-7B-Instruct",
        "facebook/sam2.1-hiera-large",
        "Qwen/Qwen2.5-VL-3B-Instruct",
    ]  # XMem.pth is not a hub file (its own server, on first use); SAM2 once for both stages
    assert zerogpu.startup_downloads([preset("shapes")]) == []


def test_grounding_presets_also_fetch_their_sampler_model() -> None:
    ids = zerogpu.startup_downloads([preset("visionreasoner")])
    assert ids[:2] == ["Ricky06662/VisionReasoner-7B", "Qwen/Qwen2.5-VL-7B-Instruct"]


def test_prepare_space_downloads_then_loads_only_on_a_space() -> None:
    fetched: list[str] = []
    loaded: list[list[str]] = []

    def download(repo_id: str) -> str:
        assert not loaded, "weights are fetched before any model is loaded"
        fetched.append(repo_id)
        return f"/cache/{repo_id}"

    def load(configs):
        loaded.append([c.vlm for c in configs])

    env = {**SPACE, zerogpu.PRESETS_ENV: "paper-3b"}
    assert zerogpu.prepare_space(env, download=download, load=load) == fetched
    assert fetched == ["Qwen/Qwen2.5-VL-3B-Instruct", "facebook/sam2.1-hiera-large"]
    assert loaded == [["Qwen/Qwen2.5-VL-3B-Instruct"]]
    fetched.clear(), loaded.clear()
    assert zerogpu.prepare_space({}, download=download, load=load) == []  # off a Space: lazy, nothing
    assert not fetched and not loaded


def test_duration_grows_with_the_video_and_is_bounded() -> None:
    config = preset("paper")
    short = zerogpu.estimate(config, 120)
    long = zerogpu.estimate(config, 600)
    assert short.seconds < long.seconds
    # propagation is per frame: 480 more frames at XMem's cost
    assert long.raw - short.raw == pytest.approx(480 * zerogpu.DEFAULT_COSTS.frame["xmem"])
    assert zerogpu.MIN_SECONDS <= short.seconds <= short.allowance
    huge = zerogpu.estimate(config, 100_000)
    assert huge.seconds == huge.allowance and huge.exceeds
    tiny = zerogpu.estimate(preset("shapes"), 2)
    assert tiny.seconds == zerogpu.MIN_SECONDS and not tiny.exceeds
    assert "GPU time asked" in short.explain() and "propagation" in short.explain()


def test_duration_counts_the_model_calls_the_run_makes() -> None:
    costs = zerogpu.Costs(
        fixed=0, question_call=10, reason_prefill=0, reason_token=0.01, keyframe=0, frame={"xmem": 0.0}
    )
    config = PipelineConfig(
        vlm="org/m", segmenter="sam2", propagator="xmem", max_levels=3, max_new_tokens=1000
    )
    est = zerogpu.estimate(config, 10, costs, limit=10_000)
    # 3 HTFS levels + the percentages + the difficulty rating, one generate each; 1000 tokens at 0.01 s
    assert est.parts["sampler questions"] == 50 and est.parts["reasoning"] == pytest.approx(10)
    no_rating = zerogpu.estimate(
        config.replace(rate_difficulty=False, sampler="first_frame"), 10, costs, 10_000
    )
    assert no_rating.parts["sampler questions"] == 0  # first_frame asks no HTFS, no rating asked


def test_measured_costs_replace_the_defaults() -> None:
    book = zerogpu.CostBook()
    book.record(ev.ModelCall(for_stage="sampler", purpose="interval", seconds=4.0, new_tokens=[5, 6]))
    book.record(ev.ModelCall(for_stage="sampler", purpose="percentage", seconds=2.0, new_tokens=[3]))
    book.record(ev.ModelCall(for_stage="reasoner", purpose="reason", seconds=10.0, new_tokens=[500]))
    book.record(
        ev.StageTiming(for_stage="propagator", seconds=5, details={"frames_per_second": 50.0}),
        propagator="xmem",
    )
    costs = book.costs()
    assert costs.question_call == pytest.approx(3.0)
    assert costs.reason_token == pytest.approx(0.02)
    assert (
        costs.frame["xmem"] == pytest.approx(0.02)
        and costs.frame["sam2"] == zerogpu.DEFAULT_COSTS.frame["sam2"]
    )


def test_a_run_over_the_allowance_is_refused_in_words() -> None:
    config = preset("paper")
    fine = zerogpu.estimate(config, 240, limit=300)
    assert zerogpu.refusal(fine, fps=24.0, num_frames=240) is None
    over = zerogpu.estimate(config, 20_000, limit=300)
    message = zerogpu.refusal(over, fps=24.0, num_frames=20_000)
    assert message is not None and "300 s" in message and "Trim the video to at most about" in message
    assert "Traceback" not in message


def test_allowance_setting_is_checked() -> None:
    assert zerogpu.allowance({}) == zerogpu.DEFAULT_ALLOWANCE
    assert zerogpu.allowance({zerogpu.ALLOWANCE_ENV: "120"}) == 120
    with pytest.raises(ValueError, match="number of seconds"):
        zerogpu.allowance({zerogpu.ALLOWANCE_ENV: "lots"})
    with pytest.raises(ValueError, match="at least"):
        zerogpu.allowance({zerogpu.ALLOWANCE_ENV: "5"})


class _FakeQwen:
    built: ClassVar[list[str]] = []

    def __init__(self, model_id: str, device: str = "auto", dtype: str = "auto") -> None:
        type(self).built.append(model_id)
        self.info = BackendDescription("qwen2.5-vl", False, f"fake {model_id}", model_id)


def test_preload_builds_the_reasoner_and_the_sampler_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from videoseg.runtime import backends

    monkeypatch.setattr(backends, "_QWEN", (__name__, "_FakeQwen"))
    _FakeQwen.built = []
    loading.clear_cache()
    try:
        config = preset("visionreasoner", segmenter="grabcut", propagator="flow")
        loaded = zerogpu.preload_models([config])
    finally:
        loading.clear_cache()
    assert _FakeQwen.built == ["Ricky06662/VisionReasoner-7B", "Qwen/Qwen2.5-VL-7B-Instruct"]
    assert loaded[:2] == ["fake Ricky06662/VisionReasoner-7B", "fake Qwen/Qwen2.5-VL-7B-Instruct"]
