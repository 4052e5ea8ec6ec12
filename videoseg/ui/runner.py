"""Running the pipeline for the explorer: presets, local weights, GPU time on a Space, input checks.

The paper's three stages run through :func:`videoseg.pipeline.run`; this module only decides *how*
the explorer calls it. Weights-free presets run in the web worker directly. Presets with real models
run inside ``spaces.GPU`` (a no-op off a Hugging Face ZeroGPU Space) with a duration estimated from
the number of frames and the models involved, so a Space asks for as much GPU time as the input needs.
:func:`preset_requirements` tells, without any network access, which weights a preset needs, whether
they are already on this machine (Hugging Face cache or a local path) and roughly what it would
download.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import spaces

from videoseg.config import PRESETS, PipelineConfig, preset
from videoseg.events import Event
from videoseg.pipeline import query_problem
from videoseg.stages import VideoSource

# Approximate download sizes (GB) of the checkpoints the presets name, for the "what would it
# download" hint only (bf16 / fp32 safetensors as published on the hub).
APPROX_GB = {
    "Qwen/Qwen2.5-VL-7B-Instruct": 16.6,
    "Qwen/Qwen2.5-VL-3B-Instruct": 7.5,
    "Ricky06662/VisionReasoner-7B": 16.6,
    "Ricky06662/Seg-Zero-7B": 16.6,
    "facebook/sam2.1-hiera-tiny": 0.16,
    "facebook/sam2.1-hiera-small": 0.18,
    "facebook/sam2.1-hiera-base-plus": 0.32,
    "facebook/sam2.1-hiera-large": 0.9,
    "XMem.pth": 0.25,
}


@dataclass
class Requirement:
    """One set of weights a preset needs."""

    what: str  # "reasoner" | "segmenter" | "propagator"
    model_id: str
    present: bool
    where: str  # where it was found, or where it would come from

    @property
    def approx_gb(self) -> float | None:
        return APPROX_GB.get(self.model_id) or APPROX_GB.get(Path(self.model_id).name)


def _hub_cached(model_id: str) -> str | None:
    """Path of the cached config of a hub model, without network; None when not cached."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for filename in ("config.json", "model.safetensors.index.json"):
        try:
            found = try_to_load_from_cache(model_id, filename)
        except Exception:  # a malformed id is simply "not cached"
            return None
        if isinstance(found, str):
            return found
    return None


def _locate(model_id: str) -> tuple[bool, str]:
    p = Path(model_id).expanduser()
    if p.exists():
        return True, f"local path {p}"
    if model_id == "XMem.pth":
        from videoseg.propagation.xmem.propagator import xmem_cache_path

        cached_xmem = xmem_cache_path()
        if cached_xmem.is_file():
            return True, f"local path {cached_xmem}"
        return False, "download of the official release on first use (github.com/hkchengrex/XMem)"
    cached = _hub_cached(model_id)
    if cached:
        return True, "Hugging Face cache"
    if "/" in model_id and not model_id.startswith((".", "/")):
        return False, f"hub download ({model_id})"
    return False, f"file {model_id} not found (download it and give its path)"


def preset_requirements(name: str) -> list[Requirement]:
    """Weights the preset needs (empty for weights-free presets)."""
    config = preset(name)
    needs: list[tuple[str, str]] = []
    if config.vlm not in ("shapes", "manual"):
        needs.append(("reasoner", config.vlm))
    if config.segmenter in ("sam2", "sam2-official"):
        needs.append(("segmenter", config.sam2_model))
    if config.propagator == "xmem":
        needs.append(("propagator", config.xmem_checkpoint))
    elif config.propagator == "sam2" and config.sam2_model not in {m for _, m in needs}:
        needs.append(("propagator", config.sam2_model))
    return [Requirement(what, model_id, *_locate(model_id)) for what, model_id in needs]


def describe_preset(name: str) -> str:
    """A Markdown paragraph: what the preset is, its weights and whether they are here."""
    if name not in PRESETS:
        return f"Unknown preset `{name}`."
    desc = PRESETS[name][1]
    reqs = preset_requirements(name)
    if not reqs:
        return f"**{name}**: {desc}. Runs without any weights, on the CPU, in seconds."
    lines = [f"**{name}**: {desc}."]
    missing_gb = 0.0
    for r in reqs:
        size = f" (~{r.approx_gb:g} GB)" if r.approx_gb else ""
        mark = "✅ present" if r.present else "⬇ not here"
        lines.append(f"- {r.what}: `{r.model_id}`{size}: {mark}, {r.where}")
        if not r.present and r.approx_gb:
            missing_gb += r.approx_gb
    if missing_gb:
        lines.append(f"Would download about {missing_gb:.1f} GB; needs a GPU to run in reasonable time.")
    return "\n".join(lines)


def preset_choices() -> list[tuple[str, str]]:
    """(label, name) pairs for the preset dropdown; real-model presets say whether weights are here."""
    out = []
    for name in PRESETS:
        reqs = preset_requirements(name)
        if not reqs:
            label = f"{name} · weights-free"
        elif all(r.present for r in reqs):
            label = f"{name} · weights present"
        else:
            gb = sum(r.approx_gb or 0.0 for r in reqs if not r.present)
            label = f"{name} · needs weights (~{gb:.1f} GB download)"
        out.append((label, name))
    return out


# ---------------------------------------------------------------------------------- GPU work


def gpu_seconds(
    video_path: str, query: str, preset_name: str, overrides: dict[str, Any] | None, num_frames: int
) -> int:
    """GPU time to ask a ZeroGPU Space for: model loading, HTFS + reasoning, and per-frame propagation."""
    config = preset(preset_name, **(overrides or {}))
    seconds = 20.0  # moving weights to the GPU
    if config.vlm not in ("shapes", "manual"):
        questions = config.num_interval_answers * config.max_levels + config.num_percent_answers + 2
        seconds += 2.0 * questions + 0.05 * config.max_new_tokens
    per_frame = {"xmem": 0.08, "sam2": 0.12, "flow": 0.02}[config.propagator]
    seconds += per_frame * max(1, num_frames) + 5.0
    return int(min(300, max(30, seconds)))


def _pipeline_events(
    video_path: str, query: str, preset_name: str, overrides: dict[str, Any] | None, num_frames: int
) -> Iterator[Event]:
    from videoseg import pipeline

    config = preset(preset_name, **(overrides or {}))
    yield from pipeline.run(video_path, query, config, preset=preset_name)


# On a ZeroGPU Space this runs in a GPU worker and streams the (picklable) events back; elsewhere
# spaces.GPU returns the function unchanged.
_gpu_pipeline_events = spaces.GPU(duration=gpu_seconds)(_pipeline_events)


def pipeline_events(
    video_path: str,
    query: str,
    preset_name: str,
    overrides: dict[str, Any] | None = None,
    num_frames: int = 0,
    cancel: threading.Event | None = None,
    opened: VideoSource | None = None,
) -> Iterator[Event]:
    """The run's events; weights-free configs stay off the GPU queue (and can be cancelled).

    ``opened``: the caller's already-opened video. Weights-free runs read it instead of opening the
    file again (opening costs a decode pass); GPU runs get the path, which crosses to a ZeroGPU worker.
    """
    config: PipelineConfig = preset(preset_name, **(overrides or {}))
    if config.weights_free:
        from videoseg import pipeline

        source = opened if opened is not None else video_path
        return pipeline.run(source, query, config, preset=preset_name, cancel=cancel)
    return _gpu_pipeline_events(video_path, query, preset_name, overrides, num_frames)


def check_query(query: str | None, required: bool = True) -> str:
    """The query, stripped, checked before any work starts (every tab that takes one calls this).

    The cap is the pipeline's own (:data:`videoseg.pipeline.MAX_QUERY_CHARS`), so the explorer never
    accepts a query that the run would then refuse. ``required=False``: an empty query is allowed
    (the Interactive tab only records it in the trace) and gives ``""``."""
    from videoseg.ui.session import UploadError

    text = query.strip() if isinstance(query, str) else query
    if text is None or text == "":
        if not required:
            return ""
        raise UploadError(
            "The query is empty: describe the object to segment, e.g. “the red square that turns left”."
        )
    problem = query_problem(text)  # the pipeline's own check: type, length cap, valid text
    if problem is not None:
        raise UploadError(f"{problem[0].upper()}{problem[1:]}.")
    return text


STAGE_ROLES = ("reasoner", "segmenter", "propagator")


def check_preset(name: str | None, roles: tuple[str, ...] = STAGE_ROLES) -> str:
    """The preset name, checked before any work: it exists, and the weights of its ``roles`` (the
    stages this action uses) are here or can be downloaded from here.

    Weights missing on a server that cannot reach the Hugging Face hub are named all at once, before
    the run starts, instead of the first stage to need them failing after a download attempt with
    a message about one of them."""
    from videoseg.models import hub_endpoint, hub_reachable
    from videoseg.ui.session import UploadError

    if not name or name not in PRESETS:
        raise UploadError(f"Unknown preset {name!r}; choose one of: {', '.join(PRESETS)}.")
    missing = [r for r in preset_requirements(name) if r.what in roles and not r.present]
    if missing and not hub_reachable():
        listed = "; ".join(
            f"{r.what} `{r.model_id}`" + (f" (~{r.approx_gb:g} GB)" if r.approx_gb else "") for r in missing
        )
        free = ", ".join(f"`{n}`" for n in PRESETS if not preset_requirements(n))
        raise UploadError(
            f"The `{name}` preset needs weights that are not on this server, and this server cannot "
            f"download them (no connection to {hub_endpoint()}): {listed}. Pick a weights-free preset "
            f"({free}), or run the app on a machine with the weights or a network connection."
        )
    return name


__all__ = [
    "Requirement",
    "check_preset",
    "check_query",
    "describe_preset",
    "gpu_seconds",
    "pipeline_events",
    "preset_choices",
    "preset_requirements",
]
