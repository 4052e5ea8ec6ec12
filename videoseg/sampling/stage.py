"""Paper step 1, "where to look": run the configured sampler and decode what the reasoner will see.

:func:`where_to_look` is a generator of events returning a :class:`Looked`: the sampler's decision
(key segment, target frame, reference frames) and the frames themselves as clips, ready for stage 2.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np

from videoseg.core.config import PipelineConfig
from videoseg.core.events import Event, StageTiming
from videoseg.core.interfaces import Clip, VideoQA, VideoSource
from videoseg.sampling.baselines import run_sampler
from videoseg.sampling.htfs import FrameReader, SamplerDecision


@dataclass
class Looked:
    """Where to look, decided: the sampler's decision and the frames the reasoner sees."""

    decision: SamplerDecision
    key_clip: Clip  # the key segment's frames (the target frame alone for ``target_only``)
    reference_clip: Clip | None  # global context frames, None when the strategy shows none
    target_frame: np.ndarray  # (H, W, 3) uint8 RGB, the frame the cues go on


def where_to_look(
    source: VideoSource, query: str, vqa: VideoQA, config: PipelineConfig
) -> Generator[Event, None, Looked]:
    """Sample (HTFS or an ablation), then decode the key and reference frames; ends with its timing."""
    t0 = time.perf_counter()
    reader = FrameReader(source)
    decision: SamplerDecision = yield from run_sampler(reader, query, vqa, config)
    key_frames, key_decoded = reader.read(decision.key_frames, purpose="reasoner key frames")
    yield key_decoded
    key_clip = Clip(
        frames=key_frames,
        frame_indices=list(decision.key_frames),
        fps=reader.fps,
        # target_only shows one frame: its window is that frame, not the key segment it came from.
        window=(decision.target_frame,) * 2 if decision.strategy == "target_only" else decision.key_segment,
    )
    reference_clip = None
    if decision.reference_frames:
        ref_frames, ref_decoded = reader.read(decision.reference_frames, purpose="reference frames")
        yield ref_decoded
        reference_clip = Clip(
            frames=ref_frames,
            frame_indices=list(decision.reference_frames),
            fps=reader.fps,
            window=(0, reader.num_frames - 1),
        )
    target_frame = key_frames[decision.key_frames.index(decision.target_frame)]
    yield StageTiming(
        for_stage="sampler",
        seconds=time.perf_counter() - t0,
        details={
            "strategy": decision.strategy,
            "levels": decision.levels,
            "frames_decoded": len(reader.decoded),
            "share_decoded": len(reader.decoded) / reader.num_frames,
            "fallback": decision.fallback,
        },
    )
    return Looked(decision, key_clip, reference_clip, target_frame)


__all__ = ["Looked", "where_to_look"]
