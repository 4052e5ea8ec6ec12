"""SAM2's own video propagation (paper step 3b, the alternative to XMem the explorer compares against).

:class:`Sam2VideoPropagator` carries the keyframe masks one way per call with transformers'
``Sam2VideoModel`` + ``Sam2VideoProcessor`` and a streaming inference session, as the paper runs
XMem: the propagation stage calls it once forward over the frames after the keyframe and once
backward over the reversed frames before it. The session protocol, the bounded memory (frames read
:data:`READ_CHUNK` at a time, one frame of vision features cached, outputs older than the model's
memory reach dropped) and the prompt choice (``tracker_prompt``: the keyframe masks, or the cues)
are :class:`~videoseg.propagation.sam_tracker.TrackerPropagator`'s, shared with EdgeTAM and the
SAM 3 tracker, which use the same processor API.
"""

from __future__ import annotations

from typing import Any

import torch

from videoseg.propagation.sam_tracker import READ_CHUNK, TrackerPropagator, TrackerSpec, load_tracker

SPEC = TrackerSpec(
    name="sam2-video",
    title="SAM2 video tracking",
    model_class="Sam2VideoModel",
    processor_class="Sam2VideoProcessor",
    config_field="sam2_model",
)


def _load_sam2_video(model_id: str, device: torch.device, dtype: torch.dtype) -> tuple[Any, Any]:
    """(model, processor) of a SAM2 video checkpoint through ``from_pretrained``."""
    return load_tracker(SPEC, model_id, device, dtype)


class Sam2VideoPropagator(TrackerPropagator):
    """Keyframe masks -> masks on the frames of one direction with SAM2 (see the module docstring)."""

    spec = SPEC


__all__ = ["READ_CHUNK", "SPEC", "Sam2VideoPropagator"]
