"""Where-to-look ablations of paper Table 5, and the dispatcher over every sampler strategy.

- ``first_frame``: cues are placed on frame 0. No sampler question is asked; the key segment is
  frame 0 alone and the reasoner sees frame 0 plus the usual global reference frames (the reference
  frames are context the paper always gives; only *where the cues go* changes).
- ``target_only``: full HTFS picks the target frame, but the reasoner sees only that frame: no other
  key-segment frames and no reference frames.
- ``random_key``: full HTFS picks the key segment; the target is a uniformly random frame of it
  (seeded by ``config.seed``), shown with key frames and reference frames like HTFS.
- ``htfs``: the full sampler (:func:`videoseg.sampling.htfs.htfs`).

Each is a generator of events returning a :class:`~videoseg.sampling.htfs.SamplerDecision`; the
strategy's SamplerResult is emitted by :func:`run_sampler`.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np

from videoseg.core.config import PipelineConfig
from videoseg.core.events import Event, SamplerResult
from videoseg.core.interfaces import VideoQA
from videoseg.sampling.htfs import FrameReader, SamplerDecision, htfs, key_frames_with_target, uniform_indices


def first_frame(reader: FrameReader, config: PipelineConfig) -> Generator[Event, None, SamplerDecision]:
    """Cues on frame 0; the reasoner sees frame 0 and the global reference frames. Asks nothing."""
    return SamplerDecision(
        strategy="first_frame",
        key_segment=(0, 0),
        target_frame=0,
        key_frames=[0],
        reference_frames=uniform_indices(0, reader.num_frames - 1, config.num_reference_frames),
    )
    yield  # a generator like the others, though it has nothing to report before its result


def target_only(
    reader: FrameReader, query: str, vqa: VideoQA, config: PipelineConfig
) -> Generator[Event, None, SamplerDecision]:
    """HTFS's target frame, shown alone (no key-segment frames, no reference frames)."""
    decision = yield from htfs(reader, query, vqa, config)
    decision.strategy = "target_only"
    decision.key_frames = [decision.target_frame]
    decision.reference_frames = []
    return decision


def random_key(
    reader: FrameReader, query: str, vqa: VideoQA, config: PipelineConfig
) -> Generator[Event, None, SamplerDecision]:
    """HTFS's key segment, but the target is a random frame of it (``config.seed``)."""
    decision = yield from htfs(reader, query, vqa, config)
    start, end = decision.key_segment
    rng = np.random.default_rng(config.seed)
    target = int(rng.integers(start, end + 1))
    decision.strategy = "random_key"
    decision.target_frame = target
    decision.key_frames = key_frames_with_target(start, end, config.num_key_frames, target)
    return decision


def run_sampler(
    reader: FrameReader, query: str, vqa: VideoQA, config: PipelineConfig
) -> Generator[Event, None, SamplerDecision]:
    """Run ``config.sampler`` and finish with its SamplerResult event."""
    strategy = config.sampler
    if strategy == "htfs":
        decision = yield from htfs(reader, query, vqa, config)
    elif strategy == "first_frame":
        decision = yield from first_frame(reader, config)
    elif strategy == "target_only":
        decision = yield from target_only(reader, query, vqa, config)
    elif strategy == "random_key":
        decision = yield from random_key(reader, query, vqa, config)
    else:
        raise ValueError(f"unknown sampler strategy {strategy!r}")
    yield SamplerResult(
        strategy=decision.strategy,
        key_segment=list(decision.key_segment),
        target_frame=decision.target_frame,
        key_frames=list(decision.key_frames),
        reference_frames=list(decision.reference_frames),
    )
    return decision


__all__ = ["first_frame", "random_key", "run_sampler", "target_only"]
