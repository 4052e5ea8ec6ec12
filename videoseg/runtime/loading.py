"""Device / dtype selection and the per-process model cache shared by the real-model backends.

The paper's stages 1 (HTFS) and 2 (reasoner) both query Qwen2.5-VL; when their model ids match they
must share one loaded instance (a 7B model is ~16 GB in bf16), and stage 3's SAM2 models are loaded
once per process too. :func:`cached_model` keys the cache by ``(kind, model id, device, dtype)`` so the
same checkpoint on another device or in another precision is a different entry.

Device ``"auto"`` picks CUDA when present, else the CPU; dtype ``"auto"`` picks bfloat16 on CUDA and
float32 on the CPU (CPU bf16 matmuls are slow on most machines and fp16 is not supported everywhere).
Loading a real model on the CPU logs a warning about the cost once per model, since a 7B model there
takes minutes per answer.

Hub ids on a machine without network: the hub clients retry for ~30 s before giving up, even for a
model already in the local cache. :func:`hub_offline` checks once (one TCP connection, a few seconds
at most, remembered for five minutes) whether the hub can be reached; when it cannot, the loaders read
the local cache only, so a cached model loads at once and a missing one fails at once with a message
saying so.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

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


_PROBE_SECONDS = 3.0  # how long the connection attempt to the hub may take
_PROBE_KEEP = 300.0  # how long a probe's answer is trusted (network comes and goes on a laptop)
_probes: dict[tuple[str, int], tuple[float, bool]] = {}  # (host, port) -> (when, reachable)


def hub_endpoint() -> str:
    """The Hugging Face hub the clients talk to (``HF_ENDPOINT`` when set, read by them at import)."""
    from huggingface_hub import constants

    return constants.ENDPOINT


def hub_reachable() -> bool:
    """Whether the hub endpoint accepts a TCP connection (``HF_HUB_OFFLINE=1`` says no without trying)."""
    from huggingface_hub import constants

    if constants.is_offline_mode():
        return False
    return url_reachable(hub_endpoint())


def url_reachable(address: str) -> bool:
    """Whether the server of ``address`` (a URL) accepts a TCP connection, through the configured
    proxy when there is one; each server is tried at most once per :data:`_PROBE_KEEP` seconds."""
    url = urlsplit(address)
    port = url.port or (80 if url.scheme == "http" else 443)
    proxy = urllib.request.getproxies().get(url.scheme) or urllib.request.getproxies().get("all")
    # Behind a proxy the direct connection may be refused although the download clients (which use
    # the proxy) get through: connect to the proxy instead.
    if proxy and not urllib.request.proxy_bypass(url.hostname or ""):
        via = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = via.hostname or "", via.port or (443 if via.scheme == "https" else 80)
    else:
        host = url.hostname or ""
    now = time.monotonic()
    known = _probes.get((host, port))
    if known is not None and now - known[0] < _PROBE_KEEP:
        return known[1]
    try:
        with socket.create_connection((host, port), timeout=_PROBE_SECONDS):
            reachable = True
    except (OSError, ValueError):  # no DNS, refused, timed out, malformed address
        reachable = False
    _probes[(host, port)] = (now, reachable)
    return reachable


def is_hub_id(model_id: str) -> bool:
    """Whether ``model_id`` names a hub repository rather than an existing local folder or file."""
    return not Path(str(model_id)).expanduser().exists()


def hub_offline(model_id: str) -> bool:
    """True when ``model_id`` is a hub id and the hub cannot be reached: load with
    ``local_files_only=True`` (the local cache) instead of waiting for the client's retries."""
    offline = is_hub_id(model_id) and not hub_reachable()
    if offline:
        log.warning(
            "the hub %s cannot be reached: loading %s from the local cache only", hub_endpoint(), model_id
        )
    return offline


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
            if is_hub_id(source) and not hub_reachable():
                raise ModelLoadError(
                    f"could not load {kind} model {model_id!r}: it is not in this machine's Hugging Face "
                    f"cache and the hub ({hub_endpoint()}) cannot be reached from here; download it once "
                    "on a connected machine (or copy the cache), or give a local folder"
                ) from exc
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
