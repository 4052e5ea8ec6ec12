"""Pick the backend of each stage from the config, importing it only when it is used.

Stage 1 (HTFS) and stage 2 (reasoner) talk to a :class:`~videoseg.core.interfaces.VideoQA`: ``"shapes"``
is the shapes-world symbolic model, ``"manual"`` the user's cues, anything else a Qwen2.5-VL hub id or
local path. A real-model VideoQA holds weights and processors only and is cached per process by (model
id, device, dtype), so both stages, later runs and concurrent runs with other presets share the loaded
model; each call gets the run's settings as arguments (nothing of a run is ever written onto it).
When the run's profile is grounding-only (VisionReasoner, Seg-Zero cannot answer "when?"), the HTFS
and difficulty questions go to :func:`make_sampler_vqa`: ``config.sampler_vlm`` (the presets name the
base Qwen2.5-VL of the reasoner's size). Stage 3a is a :class:`~videoseg.core.interfaces.Segmenter`,
stage 3b a :class:`~videoseg.core.interfaces.Propagator`: built per run (they read run settings), their
weights cached underneath by :func:`videoseg.runtime.loading.cached_model`. Weights-free backends are
cheap and built fresh each time.
"""

from __future__ import annotations

import importlib
from typing import Any

from videoseg.core.config import PROPAGATORS, SEGMENTERS, WEIGHTS_FREE_VLMS, PipelineConfig
from videoseg.core.interfaces import Propagator, Segmenter, VideoQA

_QWEN = ("videoseg.reasoning.qwen", "QwenVideoQA")


def _spec(table: dict[str, str], name: str) -> tuple[str, str]:
    module, _, cls = table[name].partition(":")
    return module, cls


class BackendUnavailable(RuntimeError):
    """A backend's code is not installed / not written yet (its module or class is missing)."""


def _load_class(module_name: str, class_name: str) -> type:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise BackendUnavailable(f"backend module {module_name} is not available ({exc})") from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise BackendUnavailable(f"{module_name} has no {class_name}")
    return cls


def _build(spec: tuple[str, str], config: PipelineConfig) -> Any:
    # Segmenters and propagators read run settings (XMem's memory sizes, the tracker prompt) from the
    # config they are built with, so each run builds its own; the weights underneath are shared.
    return _load_class(*spec)(config)


def _qwen(model_id: str, config: PipelineConfig) -> VideoQA:
    """The shared, weight-only Qwen2.5-VL object of ``model_id`` on the run's device and dtype (one
    per process, in the model cache of :mod:`videoseg.runtime.loading`)."""
    from videoseg.runtime.loading import cached_model, resolve_device, resolve_dtype

    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    cls = _load_class(*_QWEN)
    return cached_model(
        "vqa", str(model_id), device, dtype, lambda: cls(str(model_id), config.device, config.dtype)
    )


def make_vqa(config: PipelineConfig) -> VideoQA:
    """The VideoQA serving the reasoner (and, unless the profile is grounding-only, HTFS) for ``config.vlm``."""
    if config.vlm in WEIGHTS_FREE_VLMS:
        return _load_class(*_spec(WEIGHTS_FREE_VLMS, config.vlm))(config)
    return _qwen(config.vlm, config)


def sampler_vlm_for(config: PipelineConfig) -> str:
    """The model asked the HTFS and difficulty questions: ``config.vlm`` unless the profile is
    grounding-only, then ``config.sampler_vlm`` (a grounding-only profile without one is an error that
    says what to set)."""
    from videoseg.reasoning.profiles import get_profile

    if config.vlm in WEIGHTS_FREE_VLMS or not get_profile(config.profile).grounding_only:
        return config.sampler_vlm or config.vlm
    if not config.sampler_vlm:
        raise ValueError(
            f"the {config.profile} profile cannot answer the sampler's time questions; set sampler_vlm "
            "(--sampler-vlm) to a Qwen2.5-VL that can, e.g. Qwen/Qwen2.5-VL-7B-Instruct for a 7B "
            "reasoner or Qwen/Qwen2.5-VL-3B-Instruct for a 3B one"
        )
    return config.sampler_vlm


def make_sampler_vqa(config: PipelineConfig) -> VideoQA:
    """The VideoQA asked the HTFS and difficulty questions (see :func:`sampler_vlm_for`)."""
    model_id = sampler_vlm_for(config)
    if model_id == config.vlm:
        return make_vqa(config)
    if model_id in WEIGHTS_FREE_VLMS:
        return _load_class(*_spec(WEIGHTS_FREE_VLMS, model_id))(config)
    return _qwen(model_id, config)


def make_segmenter(config: PipelineConfig) -> Segmenter:
    """The keyframe segmenter for ``config.segmenter``."""
    if config.segmenter not in SEGMENTERS:
        raise ValueError(f"unknown segmenter {config.segmenter!r}")
    return _build(_spec(SEGMENTERS, config.segmenter), config)


def make_propagator(config: PipelineConfig) -> Propagator:
    """The mask propagator for ``config.propagator``."""
    if config.propagator not in PROPAGATORS:
        raise ValueError(f"unknown propagator {config.propagator!r}")
    return _build(_spec(PROPAGATORS, config.propagator), config)


def run_device(config: PipelineConfig) -> str:
    """The device a run uses, as text. Weights-free runs are CPU-only and never import torch."""
    if config.weights_free:
        return "cpu"
    from videoseg.runtime.loading import resolve_device as _resolve

    return str(_resolve(config.device))


__all__ = [
    "BackendUnavailable",
    "make_propagator",
    "make_sampler_vqa",
    "make_segmenter",
    "make_vqa",
    "run_device",
    "sampler_vlm_for",
]
