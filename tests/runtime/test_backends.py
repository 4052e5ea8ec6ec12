"""Backend choice (issue 11 item 2, issue 12 item 2): one weight-only model object per checkpoint,
nothing of a run written onto it, and the HTFS questions sent to a model that can answer them."""

from __future__ import annotations

from typing import ClassVar

import pytest

from videoseg.core import config as config_module
from videoseg.core.config import PipelineConfig, preset
from videoseg.runtime import backends, loading


class _WeightOnly:
    """Stands for QwenVideoQA: built from (model id, device, dtype) only."""

    built: ClassVar[list[str]] = []

    def __init__(self, model_id: str, device: str = "auto", dtype: str = "auto") -> None:
        type(self).built.append(model_id)
        self.model_id = model_id


@pytest.fixture
def fake_qwen(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(backends, "_QWEN", (__name__, "_WeightOnly"))
    _WeightOnly.built = []
    loading.clear_cache()
    yield _WeightOnly
    loading.clear_cache()


def test_one_object_per_checkpoint_and_no_run_settings_on_it(fake_qwen) -> None:
    a = backends.make_vqa(PipelineConfig(vlm="org/model-a", temperature=0.7, seed=1))
    again = backends.make_vqa(PipelineConfig(vlm="org/model-a", temperature=0.1, seed=9, profile="seg-zero"))
    other = backends.make_vqa(PipelineConfig(vlm="org/model-b"))
    assert a is again and a is not other and fake_qwen.built == ["org/model-a", "org/model-b"]
    assert not hasattr(a, "config")  # a cache hit hands the object nothing of the new run


def test_grounding_profiles_send_the_sampler_questions_to_the_sampler_vlm(fake_qwen) -> None:
    config = preset("visionreasoner")
    assert backends.sampler_vlm_for(config) == "Qwen/Qwen2.5-VL-7B-Instruct"
    sampler, reasoner = backends.make_sampler_vqa(config), backends.make_vqa(config)
    assert (sampler.model_id, reasoner.model_id) == (
        "Qwen/Qwen2.5-VL-7B-Instruct",
        "Ricky06662/VisionReasoner-7B",
    )
    # --sampler-vlm picks another (preset names like qwen-3b are accepted too)
    assert backends.sampler_vlm_for(config.replace(sampler_vlm="qwen-3b")) == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert backends.sampler_vlm_for(preset("seg-zero")) == "Qwen/Qwen2.5-VL-7B-Instruct"
    # A profile that can answer asks its own model: one object serves both stages.
    paper = preset("paper")
    assert backends.sampler_vlm_for(paper) == paper.vlm
    assert backends.make_sampler_vqa(paper) is backends.make_vqa(paper)


def test_a_grounding_profile_without_a_sampler_model_is_a_clear_error(fake_qwen) -> None:
    config = PipelineConfig(vlm="/ckpt/visionreasoner", profile="visionreasoner")
    with pytest.raises(ValueError, match="cannot answer the sampler's time questions; set sampler_vlm"):
        backends.sampler_vlm_for(config)


def test_the_sampler_model_is_a_needed_checkpoint() -> None:
    from videoseg.runtime.weights import needed

    assert ("sampler", "Qwen/Qwen2.5-VL-7B-Instruct") in needed(preset("visionreasoner"))
    assert not any(role == "sampler" for role, _ in needed(preset("paper")))


@pytest.mark.parametrize(
    ("table", "name"),
    [(t, n) for t in ("SEGMENTERS", "PROPAGATORS", "WEIGHTS_FREE_VLMS") for n in getattr(config_module, t)],
)
def test_every_declared_backend_name_names_a_class(table: str, name: str) -> None:
    # Backend names are declared once (core/config.py) with where their class lives; a wrong entry
    # would only fail when some run picks it.
    module, cls = backends._spec(getattr(config_module, table), name)
    assert isinstance(backends._load_class(module, cls), type)
