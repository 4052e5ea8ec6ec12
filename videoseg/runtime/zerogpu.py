"""ZeroGPU the Space's way: weights fetched at start, models loaded at import, a GPU time per call.

A Hugging Face ZeroGPU Space (``SPACES_ZERO_GPU`` set) lends a GPU only inside functions decorated with
``spaces.GPU``, for a ``duration`` asked per call (60 s when not given; the duration may be a function
of the call's inputs), and counts that duration against the visitor's quota. What that means here:

- **Downloads happen at app start, outside any GPU window** (:func:`prepare_space`): every hub
  checkpoint the Space's presets need (:func:`startup_downloads`) is fetched with
  ``huggingface_hub.snapshot_download``; downloading 16 GB inside a GPU call would spend the window on
  the network.
- **Models are loaded at import** (:func:`preload_models`): ZeroGPU's ``spaces`` package records the
  ``.to("cuda")`` of module-level weights and restores them inside each GPU call, so the backends are
  built once in the main process and every GPU call finds them in the model cache.
- **Each GPU call asks for a duration computed from the video** (:func:`estimate`): fixed costs, the
  HTFS / difficulty / reasoning model calls and the per-frame propagation, from per-call costs that
  start at :data:`DEFAULT_COSTS` and follow what this process measured (:class:`CostBook`, fed from the
  run's ``model_call`` and ``stage_timing`` events), bounded to ``[MIN_SECONDS, allowance]`` and shown.
- **A run that would exceed the allowance is refused before it starts, in words** (:func:`refusal`).

Off a Space none of this runs: loading stays lazy (the first run loads what it needs). Nothing here
reads ``SPACES_ZERO_GPU`` at import; every function takes the environment as an argument, so tests
never set it in the process.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from videoseg.core.config import WEIGHTS_FREE_VLMS, PipelineConfig, preset

# Bounds of a requested duration. The allowance is the most one call may ask; a visitor's tier may
# allow less (ZeroGPU then answers with its own "illegal duration" message).
MIN_SECONDS = 30
DEFAULT_ALLOWANCE = 300
PRESETS_ENV = "VIDEOSEG_SPACE_PRESETS"  # comma-separated presets to fetch and load at start
ALLOWANCE_ENV = "VIDEOSEG_GPU_ALLOWANCE"  # seconds one GPU call may ask for
DEFAULT_SPACE_PRESETS = ("paper",)


def on_space(env: Mapping[str, str] | None = None) -> bool:
    """Whether this process runs on a ZeroGPU Space (``SPACES_ZERO_GPU`` true, as ``spaces`` reads it)."""
    env = os.environ if env is None else env
    return str(env.get("SPACES_ZERO_GPU", "")).strip().lower() in ("1", "t", "true")


def allowance(env: Mapping[str, str] | None = None) -> int:
    """Seconds one GPU call may ask for (``VIDEOSEG_GPU_ALLOWANCE``, default :data:`DEFAULT_ALLOWANCE`)."""
    env = os.environ if env is None else env
    raw = env.get(ALLOWANCE_ENV)
    if raw is None or not str(raw).strip():
        return DEFAULT_ALLOWANCE
    try:
        value = int(float(raw))
    except ValueError as exc:
        raise ValueError(f"{ALLOWANCE_ENV} must be a number of seconds, got {raw!r}") from exc
    if value < MIN_SECONDS:
        raise ValueError(f"{ALLOWANCE_ENV} must be at least {MIN_SECONDS} s, got {value}")
    return value


def space_presets(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Presets whose weights a Space prepares at start (``VIDEOSEG_SPACE_PRESETS``, default paper)."""
    env = os.environ if env is None else env
    raw = env.get(PRESETS_ENV, "")
    names = tuple(n.strip() for n in str(raw).split(",") if n.strip()) or DEFAULT_SPACE_PRESETS
    return names


# --------------------------------------------------------------------------- start-up downloads


def _is_hub_id(model_id: str) -> bool:
    """A hub repository id (the weights module's rule) that is not a folder on this disk."""
    from videoseg.runtime.loading import is_hub_id
    from videoseg.runtime.weights import looks_like_hub_id

    return looks_like_hub_id(model_id) and is_hub_id(model_id)


def startup_downloads(configs: Iterable[PipelineConfig]) -> list[str]:
    """Hub ids to fetch at start for ``configs``, in first-use order, each once.

    Every checkpoint :func:`videoseg.runtime.weights.needed` names (reasoner, sampler VLM, SAM2) that
    is a hub id; local paths and the XMem release file (not on the hub; fetched from its own server on
    first use, into its cache) are left out.
    """
    from videoseg.runtime.weights import needed

    out: list[str] = []
    for config in configs:
        for _, model_id in needed(config):
            if _is_hub_id(model_id) and model_id not in out:
                out.append(model_id)
    return out


def prefetch(model_ids: Sequence[str], download: Callable[..., Any] | None = None) -> list[str]:
    """Download each hub id (``huggingface_hub.snapshot_download`` by default); returns the local paths."""
    if download is None:
        from huggingface_hub import snapshot_download as download
    return [str(download(repo_id=model_id)) for model_id in model_ids]


def preload_models(configs: Iterable[PipelineConfig]) -> list[str]:
    """Build every backend ``configs`` use, so their weights sit in the model cache (at import on a
    Space, where ``spaces`` defers their CUDA placement). Returns what was loaded, for the log."""
    from videoseg.runtime import backends

    loaded: list[str] = []
    for config in configs:
        if config.vlm not in WEIGHTS_FREE_VLMS:
            loaded.append(backends.make_vqa(config).info.description)
            loaded.append(backends.make_sampler_vqa(config).info.description)
        loaded.append(backends.make_segmenter(config).info.description)
        propagator = backends.make_propagator(config)
        load = getattr(propagator, "load_network", None)  # XMem loads (and fetches) its file lazily
        if load is not None:
            load()
        loaded.append(propagator.info.description)
    return list(dict.fromkeys(loaded))


def prepare_space(
    env: Mapping[str, str] | None = None,
    download: Callable[..., Any] | None = None,
    load: Callable[[Iterable[PipelineConfig]], Any] | None = None,
) -> list[str]:
    """On a ZeroGPU Space: fetch the Space presets' weights, then load their models; elsewhere nothing.

    Returns the hub ids fetched (empty off a Space). Called once by ``app.py`` at start.
    """
    if not on_space(env):
        return []
    configs = [preset(name) for name in space_presets(env)]
    ids = startup_downloads(configs)
    prefetch(ids, download)
    (load or preload_models)(configs)
    return ids


# --------------------------------------------------------------------------- GPU duration


@dataclass(frozen=True)
class Costs:
    """Seconds per unit of GPU work, as measured (defaults: planning figures for an H200 slice).

    ``question_call``: one HTFS / difficulty generate (frames prefilled once, K short answers);
    ``reason_token``: one reasoning token; ``reason_prefill``: the reasoning prompt's prefill;
    ``keyframe``: one SAM2 keyframe mask; ``frame``: propagation per frame, per propagator;
    ``fixed``: restoring the weights onto the GPU at the start of each call and everything else.
    """

    fixed: float = 15.0
    question_call: float = 1.5
    reason_prefill: float = 1.5
    reason_token: float = 0.04
    keyframe: float = 0.5
    frame: Mapping[str, float] = field(
        default_factory=lambda: {
            "xmem": 0.05,
            "sam2": 0.08,
            "flow": 0.02,
            "edgetam": 0.03,
            "sam3-tracker": 0.1,
            "sam3-text": 0.15,  # the direct method: SAM 3's detector and tracker on every frame
        }
    )


DEFAULT_COSTS = Costs()


@dataclass
class Estimate:
    """The duration one run asks for, its parts (seconds) and the bound applied."""

    seconds: int
    raw: float
    parts: dict[str, float]
    allowance: int

    @property
    def exceeds(self) -> bool:
        return self.raw > self.allowance

    def explain(self) -> str:
        parts = ", ".join(f"{k} {v:.0f} s" for k, v in self.parts.items() if v >= 0.5)
        return f"GPU time asked: {self.seconds} s (estimate {self.raw:.0f} s: {parts}; at most {self.allowance} s)"


def reasoning_cap(config: PipelineConfig) -> int:
    """Tokens the reasoning may write: the config's cap, else its profile's."""
    if getattr(config, "max_new_tokens", None):
        return int(config.max_new_tokens)
    try:
        from videoseg.reasoning.profiles import get_profile

        return int(get_profile(getattr(config, "profile", None) or "qwen2.5-vl").max_new_tokens)
    except Exception:  # profiles unavailable or unknown: the largest reference cap
        return 2048


def estimate(
    config: PipelineConfig, num_frames: int, costs: Costs | None = None, limit: int = DEFAULT_ALLOWANCE
) -> Estimate:
    """GPU seconds one run of ``config`` on ``num_frames`` frames needs, bounded to [MIN_SECONDS, limit].

    Model calls are counted as the pipeline makes them: one generate per HTFS level (at most
    ``max_levels``), one for the percentages, one for the difficulty rating, the reasoning at its full
    token cap (the worst case: a run is refused only when even a finished answer would not fit).
    """
    c = costs or DEFAULT_COSTS
    parts: dict[str, float] = {"start": c.fixed}
    if config.vlm not in WEIGHTS_FREE_VLMS:
        questions = 0
        if config.sampler != "first_frame":
            questions += config.max_levels + 1
        if config.rate_difficulty:
            questions += 1
        parts["sampler questions"] = questions * c.question_call
        parts["reasoning"] = c.reason_prefill + reasoning_cap(config) * c.reason_token
    if config.segmenter != "grabcut":
        parts["keyframe"] = c.keyframe
    key = "sam3-text" if getattr(config, "method", "videoseg-r1") == "sam3-text" else config.propagator
    per_frame = c.frame.get(key, max(c.frame.values()))
    parts["propagation"] = per_frame * max(int(num_frames), 1)
    raw = sum(parts.values())
    seconds = int(min(limit, max(MIN_SECONDS, math.ceil(raw))))
    return Estimate(seconds=seconds, raw=raw, parts=parts, allowance=int(limit))


def refusal(estimate_: Estimate, fps: float | None = None, num_frames: int | None = None) -> str | None:
    """Why a run is refused before it starts (its estimate exceeds the allowance), in words; else None."""
    if not estimate_.exceeds:
        return None
    text = (
        f"This run would need about {estimate_.raw:.0f} s of GPU time, more than the {estimate_.allowance} s "
        "one run may use on this Space"
    )
    per_frame = estimate_.parts.get("propagation", 0.0) / max(num_frames or 1, 1)
    spare = estimate_.allowance - (estimate_.raw - estimate_.parts.get("propagation", 0.0))
    if num_frames and per_frame > 0 and spare > 0:
        frames = int(spare / per_frame)
        if fps:
            text += f". Trim the video to at most about {frames / fps:.0f} s ({frames} frames at this rate)"
        else:
            text += f". Trim the video to at most about {frames} frames"
        text += ", or pick a lighter preset."
    else:
        text += "; pick a lighter preset (fewer HTFS levels, a smaller token cap or a weights-free preset)."
    return text


class CostBook:
    """Per-call costs measured in this process: a running mean of each kind of model call and of the
    propagation speed, read by :func:`estimate` for the next runs (thread-safe)."""

    def __init__(self, base: Costs = DEFAULT_COSTS) -> None:
        self.base = base
        self._sums: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def _add(self, key: str, value: float) -> None:
        with self._lock:
            total, n = self._sums.get(key, (0.0, 0))
            self._sums[key] = (total + float(value), n + 1)

    def record(self, event: Any, propagator: str | None = None) -> None:
        """Fold one pipeline event in (``model_call``, and the propagator's ``stage_timing`` when the
        run's ``propagator`` name is given)."""
        kind = getattr(event, "type", "")
        if kind == "model_call":
            if event.purpose == "reason":
                tokens = max(sum(event.new_tokens), 1)
                self._add("reason_token", event.seconds / tokens)
            else:
                self._add("question_call", event.seconds)
        elif kind == "stage_timing" and event.for_stage == "propagator":
            fps = (event.details or {}).get("frames_per_second")
            if fps and propagator:
                self._add(f"frame:{propagator}", 1.0 / float(fps))

    def costs(self) -> Costs:
        """The base costs with every measured mean put in their place."""
        with self._lock:
            means = {k: total / n for k, (total, n) in self._sums.items() if n}
        frame = dict(self.base.frame)
        frame.update({k.split(":", 1)[1]: v for k, v in means.items() if k.startswith("frame:")})
        changes = {k: v for k, v in means.items() if k in ("question_call", "reason_token")}
        return replace(self.base, frame=frame, **changes)


BOOK = CostBook()


__all__ = [
    "BOOK",
    "DEFAULT_ALLOWANCE",
    "DEFAULT_COSTS",
    "MIN_SECONDS",
    "CostBook",
    "Costs",
    "Estimate",
    "allowance",
    "estimate",
    "on_space",
    "prefetch",
    "preload_models",
    "prepare_space",
    "refusal",
    "space_presets",
    "startup_downloads",
]
