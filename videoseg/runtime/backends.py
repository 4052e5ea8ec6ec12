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
import threading
from typing import Any

from videoseg.core.config import PipelineConfig
from videoseg.core.interfaces import Propagator, Segmenter, VideoQA

_VQA = {
    "shapes": ("videoseg.shapes.symbolic.model", "ShapesVideoQA"),
    "manual": ("videoseg.reasoning.manual", "ManualVideoQA"),
}
_QWEN = ("videoseg.reasoning.qwen", "QwenVideoQA")
_SEGMENTERS = {
    "grabcut": ("videoseg.segmentation.grabcut", "GrabCutSegmenter"),
    "sam2": ("videoseg.segmentation.sam2", "Sam2Segmenter"),
    "sam2-official": ("videoseg.segmentation.sam2", "OfficialSam2Segmenter"),
}
_PROPAGATORS = {
    "flow": ("videoseg.propagation.flow", "FlowPropagator"),
    "xmem": ("videoseg.propagation.xmem", "XMemPropagator"),
    "sam2": ("videoseg.propagation.sam2_video", "Sam2VideoPropagator"),
    "edgetam": ("videoseg.propagation.edgetam", "EdgeTamPropagator"),
    "sam3-tracker": ("videoseg.propagation.sam3_tracker", "Sam3TrackerPropagator"),
}
_cache: dict[tuple[Any, ...], Any] = {}
_lock = threading.Lock()


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


def _build(kind: str, name: str, spec: tuple[str, str], config: PipelineConfig, model_id: str | None) -> Any:
    # Segmenters and propagators read run settings (XMem's memory sizes, the tracker prompt) from the
    # config they are built with, so each run builds its own; the weights underneath are shared.
    return _load_class(*spec)(config)


def _qwen(model_id: str, config: PipelineConfig) -> VideoQA:
    """The shared, weight-only Qwen2.5-VL object of ``model_id`` on the run's device and dtype."""
    key = ("vqa", "qwen", str(model_id), config.device, config.dtype)
    with _lock:
        instance = _cache.get(key)
    if instance is None:
        # Built outside the lock: loading takes long, and the model cache already makes concurrent
        # loads of one checkpoint wait for each other.
        instance = _load_class(*_QWEN)(str(model_id), config.device, config.dtype)
        with _lock:
            instance = _cache.setdefault(key, instance)
    return instance


def make_vqa(config: PipelineConfig) -> VideoQA:
    """The VideoQA serving the reasoner (and, unless the profile is grounding-only, HTFS) for ``config.vlm``."""
    if config.vlm in _VQA:
        return _load_class(*_VQA[config.vlm])(config)
    return _qwen(config.vlm, config)


def sampler_vlm_for(config: PipelineConfig) -> str:
    """The model asked the HTFS and difficulty questions: ``config.vlm`` unless the profile is
    grounding-only, then ``config.sampler_vlm`` (a grounding-only profile without one is an error that
    says what to set)."""
    from videoseg.reasoning.profiles import get_profile

    if config.vlm in _VQA or not get_profile(config.profile).grounding_only:
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
    if model_id in _VQA:
        return _load_class(*_VQA[model_id])(config)
    return _qwen(model_id, config)


def make_segmenter(config: PipelineConfig) -> Segmenter:
    """The keyframe segmenter for ``config.segmenter``."""
    if config.segmenter not in _SEGMENTERS:
        raise ValueError(f"unknown segmenter {config.segmenter!r}")
    return _build("segmenter", config.segmenter, _SEGMENTERS[config.segmenter], config, config.sam2_model)


def make_propagator(config: PipelineConfig) -> Propagator:
    """The mask propagator for ``config.propagator``."""
    if config.propagator not in _PROPAGATORS:
        raise ValueError(f"unknown propagator {config.propagator!r}")
    model_id = {"xmem": config.xmem_checkpoint, "sam2": config.sam2_model}.get(config.propagator)
    return _build("propagator", config.propagator, _PROPAGATORS[config.propagator], config, model_id)


def resolve_device(config: PipelineConfig) -> str:
    """The device a run uses, as text. Weights-free runs are CPU-only and never import torch."""
    if config.weights_free:
        return "cpu"
    from videoseg.runtime.loading import resolve_device as _resolve

    return str(_resolve(config.device))


def clear_cache() -> None:
    """Forget cached real-model backends (frees their memory once nothing else holds them)."""
    with _lock:
        _cache.clear()


__all__ = [
    "BackendUnavailable",
    "clear_cache",
    "make_propagator",
    "make_sampler_vqa",
    "make_segmenter",
    "make_vqa",
    "resolve_device",
    "sampler_vlm_for",
]
