"""Pick the backend of each stage from the config, importing it only when it is used.

Stage 1 (HTFS) and stage 2 (reasoner) share one :class:`~videoseg.core.interfaces.VideoQA`: ``"shapes"`` is
the shapes-world symbolic model, ``"manual"`` the user's cues, anything else a Qwen2.5-VL hub id or
local path. A real-model VideoQA is cached per process by (model id, device, dtype), so the two stages,
and later runs, reuse the loaded model; a cached instance is handed the new run's config (its
generation settings are read from ``self.config`` at call time). Weights-free backends are cheap and
built fresh each time. Stage 3a is a :class:`~videoseg.core.interfaces.Segmenter`, stage 3b a
:class:`~videoseg.core.interfaces.Propagator`; real-model ones are cached the same way.
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
_WEIGHTS_FREE = {"shapes", "manual", "grabcut", "flow"}
# Built per run (they read run settings such as config.tracker_prompt); their weights are cached
# underneath by runtime.loading.cached_model, so building one costs nothing.
_PER_RUN = {"edgetam", "sam3-tracker"}

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
    cls = _load_class(*spec)
    if name in _WEIGHTS_FREE or name in _PER_RUN:
        return cls(config)
    key = (kind, name, model_id, config.device, config.dtype)
    with _lock:
        instance = _cache.get(key)
        if instance is None:
            instance = cls(config)
            _cache[key] = instance
        elif hasattr(instance, "config"):
            instance.config = config
    return instance


def make_vqa(config: PipelineConfig) -> VideoQA:
    """The VideoQA serving HTFS and the reasoner for ``config.vlm``."""
    if config.vlm in _VQA:
        return _build("vqa", config.vlm, _VQA[config.vlm], config, None)
    return _build("vqa", "qwen", _QWEN, config, config.vlm)


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
    "make_segmenter",
    "make_vqa",
    "resolve_device",
]
