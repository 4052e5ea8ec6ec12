"""Running the pipeline for the explorer: presets, local weights, GPU time on a Space, input checks.

The paper's three stages run through :func:`videoseg.pipeline.orchestrator.run`; this module only decides *how*
the explorer calls it. Weights-free presets run in the web worker directly. Presets with real models
run inside ``spaces.GPU`` (a no-op off a Hugging Face ZeroGPU Space) with a duration estimated from
the number of frames and the models involved, so a Space asks for as much GPU time as the input needs.
:func:`preset_requirements` tells, without any network access, which weights a preset needs, whether
they are already on this machine (Hugging Face cache or a local path) and roughly what it would
download; the logic lives in :mod:`videoseg.runtime.weights`, shared with the command line.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import spaces

from videoseg.core.config import PRESETS, PipelineConfig, preset
from videoseg.core.events import Event
from videoseg.core.interfaces import VideoSource
from videoseg.pipeline.orchestrator import query_problem
from videoseg.runtime import weights
from videoseg.ui.text import code

# The requirement logic is the CLI's too (videoseg.runtime.weights); the explorer keeps its names.
Requirement = weights.Requirement
APPROX_GB = weights.APPROX_GB


def _locate(model_id: str) -> tuple[bool, str]:
    """Where a checkpoint is (a separate name here so tests can pretend nothing is on the server)."""
    return weights.locate(model_id)


def preset_requirements(name: str) -> list[Requirement]:
    """Weights the preset needs (empty for weights-free presets)."""
    return weights.requirements(preset(name), locate_fn=_locate)


def describe_preset(name: str) -> str:
    """A Markdown paragraph: what the preset is, its weights and whether they are here."""
    if not isinstance(name, str) or name not in PRESETS:
        return f"Unknown preset {code(name)}."
    desc = PRESETS[name][1]
    reqs = preset_requirements(name)
    if not reqs:
        return f"**{name}**: {desc}. Runs without any weights, on the CPU, in seconds."
    lines = [f"**{name}**: {desc}."]
    missing_gb, stuck = 0.0, False
    for r in reqs:
        size = f" (~{r.approx_gb:g} GB)" if r.approx_gb else ""
        if r.present:
            mark = f"✅ present, {r.where}"
        elif weights.downloadable(r.model_id):
            mark = f"⬇ not here, {r.where}"
            missing_gb += r.approx_gb or 0.0
        else:
            mark = f"⛔ not here and cannot be fetched from here ({weights.why_not_fetched(r.model_id)})"
            stuck = True
        lines.append(f"- {r.what}: `{r.model_id}`{size}: {mark}")
    if stuck:
        lines.append("Cannot run on this server as it is: pick a weights-free preset, or bring the weights.")
    elif missing_gb:
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
        elif all(weights.downloadable(r.model_id) for r in reqs if not r.present):
            gb = sum(r.approx_gb or 0.0 for r in reqs if not r.present)
            label = f"{name} · needs weights (~{gb:.1f} GB download)"
        else:  # probed once per server (remembered), only for presets with something missing
            label = f"{name} · needs weights not on this server"
        out.append((label, name))
    return out


# ---------------------------------------------------------------------------------- GPU work


def gpu_seconds(
    video_path: str, query: str, preset_name: str, overrides: dict[str, Any] | None, num_frames: int
) -> int:
    """GPU time to ask a ZeroGPU Space for (:func:`videoseg.runtime.zerogpu.estimate`): weights onto
    the GPU, one generate per HTFS level / percentages / difficulty, the reasoning at its cap and the
    per-frame propagation, from the per-call costs this process measured, bounded by the allowance."""
    from videoseg.runtime import zerogpu

    config = preset(preset_name, **(overrides or {}))
    return zerogpu.estimate(config, num_frames, zerogpu.BOOK.costs(), zerogpu.allowance()).seconds


def _pipeline_events(
    video_path: str, query: str, preset_name: str, overrides: dict[str, Any] | None, num_frames: int
) -> Iterator[Event]:
    from videoseg.pipeline import orchestrator as pipeline

    config = preset(preset_name, **(overrides or {}))
    yield from pipeline.run(video_path, query, config, preset=preset_name)


def _gpu_run(
    video_path: str, query: str, preset_name: str, overrides: dict[str, Any] | None, num_frames: int
) -> Iterator[Event]:
    """A real-model run: on a Space, refused in words before it starts when its GPU time would exceed
    the allowance, else announced (a warning naming the time asked); per-call costs are recorded for
    the next runs' estimates."""
    from videoseg.core.events import RunError, RunWarning
    from videoseg.runtime import zerogpu

    config = preset(preset_name, **(overrides or {}))
    space = zerogpu.on_space()
    if space:
        estimate = zerogpu.estimate(config, num_frames, zerogpu.BOOK.costs(), zerogpu.allowance())
        refused = zerogpu.refusal(estimate, num_frames=num_frames)
        if refused is not None:
            yield RunError(for_stage="input", message=refused)
            return
    for i, event in enumerate(_gpu_pipeline_events(video_path, query, preset_name, overrides, num_frames)):
        zerogpu.BOOK.record(event, propagator=config.propagator)
        yield event
        if i == 0 and space:
            yield RunWarning(for_stage="input", message=estimate.explain())


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
        from videoseg.pipeline import orchestrator as pipeline

        source = opened if opened is not None else video_path
        return pipeline.run(source, query, config, preset=preset_name, cancel=cancel)
    return _gpu_run(video_path, query, preset_name, overrides, num_frames)


def check_query(query: str | None, required: bool = True) -> str:
    """The query, stripped, checked before any work starts (every tab that takes one calls this).

    The cap is the pipeline's own (:data:`videoseg.pipeline.orchestrator.MAX_QUERY_CHARS`), so the explorer never
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


STAGE_ROLES = weights.STAGE_ROLES


def check_preset(name: str | None, roles: tuple[str, ...] = STAGE_ROLES) -> str:
    """The preset name, checked before any work: it exists, and the weights of its ``roles`` (the
    stages this action uses) are here or can be downloaded from here.

    Weights missing on a server that cannot reach the Hugging Face hub are named all at once, before
    the run starts, instead of the first stage to need them failing after a download attempt with
    a message about one of them. Weights-free presets never probe the hub."""
    from videoseg.ui.session import UploadError

    if not isinstance(name, str) or not name or name not in PRESETS:
        shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "..."
        raise UploadError(f"Unknown preset {shown}; choose one of: {', '.join(PRESETS)}.")
    missing = weights.unavailable(preset(name), roles, locate_fn=_locate)
    if missing:
        free = ", ".join(f"`{n}`" for n in weights.weights_free_presets())
        raise UploadError(
            weights.unavailable_message(
                f"The `{name}` preset",
                missing,
                "this server",
                f"Pick a weights-free preset ({free}), or run the app on a machine with the weights or "
                "a network connection.",
            )
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
