"""VideoSeg-R1 Explorer: reasoning video object segmentation (HTFS -> reasoner -> SAM2 + XMem).

The front door::

    from videoseg import run, make_preset, RunState
    state = RunState()
    for event in run("clip.mp4", "the circle that appears after the red square turns left", make_preset("shapes")):
        state.apply(event)

Names are imported on first use, so ``import videoseg`` stays cheap (no torch, no gradio).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_FRONT_DOOR = {
    "run": ("videoseg.pipeline", "run"),
    "PipelineConfig": ("videoseg.core.config", "PipelineConfig"),
    "make_preset": ("videoseg.core.config", "preset"),
    "RunState": ("videoseg.core.state", "RunState"),
    "read_trace": ("videoseg.core.trace", "read_trace"),
}

__all__ = sorted(_FRONT_DOOR)


def __getattr__(name: str) -> Any:
    if name not in _FRONT_DOOR:
        raise AttributeError(f"module 'videoseg' has no attribute {name!r}")
    module, attr = _FRONT_DOOR[name]
    return getattr(importlib.import_module(module), attr)
