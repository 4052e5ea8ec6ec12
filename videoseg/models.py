"""Device / dtype selection and the per-process model cache shared by the real-model backends.

The paper's stages 1 (HTFS) and 2 (reasoner) both query Qwen2.5-VL; when their model ids match they
must share one loaded instance (a 7B model is ~16 GB in bf16), and stage 3's SAM2 models are loaded
once per process too. :func:`cached_model` keys the cache by ``(kind, model id, device, dtype)`` so the
same checkpoint on another device or in another precision is a different entry.

Device ``"auto"`` picks CUDA when present, else the CPU; dtype ``"auto"`` picks bfloat16 on CUDA and
float32 on the CPU (CPU bf16 matmuls are slow on most machines and fp16 is not supported everywhere).
Loading a real model on the CPU logs a warning about the cost once per model, since a 7B model there
takes minutes per answer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

log = logging.getLogger(__name__)

T = TypeVar("T")

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


class ModelLoadError(RuntimeError):
    """A model or its processor could not be loaded; the message says which and why."""


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> ``cuda`` when available else ``cpu``; explicit names are checked, not guessed."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for, but CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} asked for, but only {torch.cuda.device_count()} GPU(s) exist")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``"auto"`` -> bfloat16 on CUDA, float32 elsewhere; otherwise one of float32 / bfloat16 / float16."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if name not in _DTYPES:
        raise ValueError(f"unknown dtype {name!r} (use auto, float32, bfloat16 or float16)")
    return _DTYPES[name]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


_CACHE: dict[tuple[str, str, str, str], Any] = {}
_LOCKS: dict[tuple[str, str, str, str], threading.Lock] = {}
_GLOBAL_LOCK = threading.Lock()
_WARNED_CPU: set[str] = set()


def cached_model(
    kind: str, model_id: str, device: torch.device, dtype: torch.dtype, load: Callable[[], T]
) -> T:
    """Return the cached object for ``(kind, model_id, device, dtype)``, calling ``load()`` on a miss.

    ``kind`` separates different wrappers of the same id (a SAM2 image model and a SAM2 video model
    both load from ``facebook/sam2.1-hiera-large``). Concurrent callers of the same key wait for one
    load instead of loading twice. Any exception from ``load`` is re-raised as :class:`ModelLoadError`
    (unless it already is one) and nothing is cached.
    """
    source = str(model_id)
    if source.startswith(("/", "./", "../", "~")) and not Path(source).expanduser().exists():
        # from_pretrained would call it an invalid hub id ("Repo id must use alphanumeric chars...")
        raise ModelLoadError(f"could not load {kind} model {source!r}: no such local folder")
    key = (kind, str(model_id), str(device), dtype_name(dtype))
    with _GLOBAL_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        lock = _LOCKS.setdefault(key, threading.Lock())
    with lock:
        if key in _CACHE:
            return _CACHE[key]
        if device.type == "cpu" and model_id not in _WARNED_CPU:
            _WARNED_CPU.add(model_id)
            log.warning(
                "loading %s on the CPU in %s: full-size models are slow there "
                "(a 7B VLM takes minutes per answer); use a CUDA GPU for real runs",
                model_id,
                dtype_name(dtype),
            )
        try:
            value = load()
        except ModelLoadError:
            raise
        except Exception as exc:  # from_pretrained raises OSError, ValueError, KeyError ...
            raise ModelLoadError(f"could not load {kind} model {model_id!r}: {exc}") from exc
        with _GLOBAL_LOCK:
            _CACHE[key] = value
        return value


def cached_keys() -> list[tuple[str, str, str, str]]:
    """Keys of the models loaded in this process (for tests, the UI and benchmarks)."""
    with _GLOBAL_LOCK:
        return list(_CACHE)


def clear_cache() -> None:
    """Drop every cached model (and free GPU memory held by them)."""
    with _GLOBAL_LOCK:
        _CACHE.clear()
        _LOCKS.clear()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
