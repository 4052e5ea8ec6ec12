"""Paper step 3b, "propagate": the keyframe masks to every frame, forward then backward.

A :class:`~videoseg.core.interfaces.Propagator` goes one way from a frame per call; this stage owns the
order (the frames after the keyframe, then those before it, as the paper runs XMem once on each side)
and the empty case (no target: every frame empty, the propagator is never called, so its weights are
not needed).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Generator, Iterator, Sequence
from typing import Any

import numpy as np

from videoseg.core.cues import TargetCues
from videoseg.core.events import Event, PropagatedMask, PropagationStarted, StageTiming
from videoseg.core.interfaces import Propagator, VideoSource
from videoseg.core.masks import empty_like_rle, encode_rle

DIRECTIONS = ("forward", "backward")


def check_start(video: VideoSource, start: int, masks: np.ndarray, direction: str) -> None:
    """Refuse a propagate call whose arguments do not fit the video (every backend checks the same)."""
    width, height = video.size
    num_frames = len(video)
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if masks.ndim != 3 or masks.shape[1:] != (height, width):
        raise ValueError(f"keyframe masks must be (K, {height}, {width}), got {masks.shape}")
    if not 0 <= start < num_frames:
        raise ValueError(f"keyframe {start} is outside the video (0..{num_frames - 1})")


def both_ways(
    propagator: Propagator,
    video: VideoSource,
    keyframe: int,
    masks: np.ndarray,
    cues: Sequence[TargetCues] | None = None,
) -> Iterator[tuple[int, str, np.ndarray]]:
    """``(frame_idx, direction, (K, H, W) bool)`` for every frame but the keyframe, forward first.

    Checks each frame the propagator yields: inside the video, in order, the keyframe's mask shape.
    All-empty keyframe masks give empty masks without calling the propagator.
    """
    num_frames = len(video)
    masks = np.asarray(masks, dtype=bool)
    check_start(video, keyframe, masks, "forward")
    for direction in DIRECTIONS:
        expected = range(keyframe + 1, num_frames) if direction == "forward" else range(keyframe - 1, -1, -1)
        if not len(expected):
            continue
        if not masks.any():
            empty = np.zeros_like(masks)
            for frame_idx in expected:
                yield frame_idx, direction, empty
            continue
        stream = propagator.propagate(video, keyframe, masks, direction, cues=cues)
        count = 0
        for frame_idx, out in stream:
            if count >= len(expected) or int(frame_idx) != expected[count]:
                want = expected[count] if count < len(expected) else "no more frames"
                raise ValueError(f"propagator yielded frame {frame_idx} going {direction}, expected {want}")
            out = np.asarray(out, dtype=bool)
            if out.shape != masks.shape:
                raise ValueError(f"propagator returned masks {out.shape}, expected {masks.shape}")
            count += 1
            yield int(frame_idx), direction, out
        if count != len(expected):
            missing = list(expected)[count:]
            raise ValueError(
                f"propagator left {len(missing)} frame(s) without masks going {direction}, first {missing[:5]}"
            )


class MemoryPeak:
    """Peak memory while propagating, for the diagnosis (frames/s and memory per propagator).

    On CUDA (only when torch is already loaded and CUDA initialised: a weights-free run never imports
    torch) the allocator's peak since the stage started; on the CPU the process's resident set size,
    sampled at every frame (the peak of those samples, so a short spike between frames can be missed)."""

    def __init__(self) -> None:
        torch = sys.modules.get("torch")
        self.cuda = bool(torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized())
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        self.rss_mb = self._rss_mb()

    @staticmethod
    def _rss_mb() -> float | None:
        try:
            with open("/proc/self/statm") as f:
                pages = int(f.read().split()[1])
        except (OSError, ValueError, IndexError):  # not Linux
            return None
        return pages * os.sysconf("SC_PAGE_SIZE") / 1024**2

    def sample(self) -> None:
        now = self._rss_mb()
        if now is not None and (self.rss_mb is None or now > self.rss_mb):
            self.rss_mb = now

    def details(self) -> dict[str, float]:
        if self.cuda:
            return {"peak_cuda_mb": sys.modules["torch"].cuda.max_memory_allocated() / 1024**2}
        return {} if self.rss_mb is None else {"peak_rss_mb": self.rss_mb}


def propagate(
    propagator: Propagator,
    video: VideoSource,
    keyframe: int,
    masks: np.ndarray,
    cues: Sequence[TargetCues] | None = None,
) -> Generator[Event, None, None]:
    """Emit the keyframe's masks, then every other frame's exactly once (forward, then backward)."""
    t0 = time.perf_counter()
    num_frames = len(video)
    yield PropagationStarted(keyframe=keyframe, num_frames=num_frames, num_targets=len(masks))
    done = 1
    yield PropagatedMask(
        frame_idx=keyframe,
        direction="keyframe",
        rles=[encode_rle(m) for m in masks],
        done=done,
        total=num_frames,
    )
    empty_rles: list[dict[str, Any]] | None = None
    memory = MemoryPeak()
    for frame_idx, direction, out in both_ways(propagator, video, keyframe, masks, cues):
        memory.sample()
        done += 1
        if out.any():
            rles = [encode_rle(m) for m in out]
        else:
            # Most frames of a "no target" run are empty: encode the empty masks once.
            if empty_rles is None:
                empty_rles = [empty_like_rle(*masks.shape[1:]) for _ in masks]
            rles = empty_rles
        yield PropagatedMask(frame_idx=frame_idx, direction=direction, rles=rles, done=done, total=num_frames)
    seconds = time.perf_counter() - t0
    yield StageTiming(
        for_stage="propagator",
        seconds=seconds,
        details={
            "frames": num_frames,
            "frames_per_second": (num_frames - 1) / seconds if seconds > 0 else None,
            **memory.details(),
        },
    )


__all__ = ["DIRECTIONS", "both_ways", "check_start", "propagate"]
