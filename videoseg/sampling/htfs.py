"""Hierarchical text-guided frame sampling, HTFS (paper step 1).

The video QA model is asked ``K`` times where the query happens, on ``frames_per_question`` frames
spread uniformly over the current window; the parsed intervals (seconds from the window start ->
frame indices) are averaged into the key segment. While the key segment is longer than ``delta * T``
(T = number of frames) the same question is asked again inside it (at most ``max_levels`` levels, and
only while it keeps shrinking). Then the model is asked ``M`` times for the target's position (percent)
inside the key segment; with the mean ratio ``p``, ``f_tgt = start_key + floor(T_key * p)`` (clamped
to the segment, ``T_key`` = frames in it). When no percentage parses, VISA's fallback 0.5 is used and
flagged. Reference frames spread uniformly over the whole video give the reasoner global context;
the key frames it sees are spread uniformly over the key segment and include the target frame.

Only the frames shown to the model are decoded (:class:`FrameReader` counts them), so a long video
costs a few percent of its frames. Every decision is an event; :func:`htfs` is a generator that yields
them and returns a :class:`SamplerDecision`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field

import numpy as np

from videoseg.core.config import PipelineConfig
from videoseg.core.events import Event, FramesDecoded, PromptShown, RunWarning, SamplerLevel, SamplerPercent
from videoseg.core.interfaces import Clip, VideoQA, VideoSource
from videoseg.sampling.answers import parse_interval, parse_percentage


@dataclass
class SamplerDecision:
    """Where the reasoner looks (what :class:`~videoseg.core.events.SamplerResult` reports).

    key_segment: [start, end] inclusive frame indices; target_frame: the frame cues are placed on;
    key_frames: key-segment frames shown to the reasoner (increasing, include the target frame);
    reference_frames: global context frames (may be empty); fallback: some answer never parsed.
    """

    strategy: str
    key_segment: tuple[int, int]
    target_frame: int
    key_frames: list[int]
    reference_frames: list[int]
    fallback: bool = False
    levels: int = 0
    notes: list[str] = field(default_factory=list)


class FrameReader:
    """Decodes only the frames asked, remembers a few, and counts distinct frames decoded.

    Frames are (H, W, 3) uint8 RGB at original resolution. ``capacity`` bounds memory: HTFS asks for
    at most a few dozen frames at a time, and the reasoner's frames are asked last.
    """

    def __init__(self, video: VideoSource, capacity: int = 64) -> None:
        self.video = video
        self.capacity = capacity
        self.decoded: set[int] = set()  # every distinct frame index ever decoded
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    @property
    def num_frames(self) -> int:
        return len(self.video)

    @property
    def fps(self) -> float:
        return float(self.video.fps)

    def read(self, indices: Sequence[int], purpose: str) -> tuple[np.ndarray, FramesDecoded]:
        """(N, H, W, 3) frames in the order asked, and the event that reports the decode."""
        wanted = [int(i) for i in indices]
        missing = sorted({i for i in wanted if i not in self._cache})
        if missing:
            decoded = self.video.frames(missing)
            for i, frame in zip(missing, decoded):
                self._cache[i] = frame
                self.decoded.add(i)
        out = np.stack([self._cache[i] for i in wanted]) if wanted else np.zeros((0, 1, 1, 3), np.uint8)
        for i in wanted:
            self._cache.move_to_end(i)
        while len(self._cache) > max(self.capacity, len(set(wanted))):
            self._cache.popitem(last=False)
        event = FramesDecoded(purpose=purpose, frame_indices=wanted, total_decoded=len(self.decoded))
        return out, event

    def clip(
        self, indices: Sequence[int], window: tuple[int, int], purpose: str
    ) -> tuple[Clip, FramesDecoded]:
        frames, event = self.read(indices, purpose)
        return Clip(
            frames=frames, frame_indices=[int(i) for i in indices], fps=self.fps, window=window
        ), event


def uniform_indices(start: int, end: int, count: int) -> list[int]:
    """``count`` frame indices spread evenly over [start, end] inclusive, both ends included, no repeats."""
    if count <= 0 or end < start:
        return []
    if count == 1:
        return [(start + end) // 2]
    values = np.linspace(start, end, num=count)
    return sorted({round(float(v)) for v in values})


def key_frames_with_target(start: int, end: int, count: int, target: int) -> list[int]:
    """``count`` frames spread over the key segment, the one nearest the target replaced by the target."""
    frames = uniform_indices(start, end, count)
    if target in frames:
        return frames
    if frames:
        nearest = min(range(len(frames)), key=lambda i: abs(frames[i] - target))
        frames[nearest] = target
    else:
        frames = [target]
    return sorted(set(frames))


def target_from_percent(key_segment: tuple[int, int], p_mean: float) -> int:
    """``f_tgt = start_key + floor(T_key * p)``, clamped to the key segment (p = 1 would step past it)."""
    start, end = key_segment
    t_key = end - start + 1
    return min(max(start + math.floor(t_key * p_mean), start), end)


def _mean_interval(intervals: list[tuple[int, int] | None]) -> tuple[int, int] | None:
    parsed = [iv for iv in intervals if iv is not None]
    if not parsed:
        return None
    start = round(sum(iv[0] for iv in parsed) / len(parsed))
    end = round(sum(iv[1] for iv in parsed) / len(parsed))
    return (start, end) if start <= end else (end, start)


def _ask(
    answer: Callable[[int], str], count: int, purpose: str, vqa: VideoQA, shown: Sequence[int]
) -> Generator[Event, None, list[str]]:
    """Ask one sampler question ``count`` times (K or M); returns the raw answers.

    The exact prompt is shown once, after the first answer, when the backend has filled it in.
    """
    raw: list[str] = []
    for sample in range(count):
        raw.append(answer(sample))
        if sample == 0:
            yield PromptShown(
                for_stage="sampler",
                purpose=purpose,
                text=getattr(vqa.last_prompts, purpose),
                frame_indices=list(shown),
            )
    return raw


def htfs(
    reader: FrameReader, query: str, vqa: VideoQA, config: PipelineConfig
) -> Generator[Event, None, SamplerDecision]:
    """Run HTFS; yields PromptShown / FramesDecoded / SamplerLevel / SamplerPercent (and warnings).

    Returns the decision with ``strategy="htfs"``. The caller emits the SamplerResult.
    """
    num_frames = reader.num_frames
    fps = reader.fps
    window = (0, num_frames - 1)
    limit = config.delta * num_frames
    fallback = False
    notes: list[str] = []
    level = 0
    while True:
        shown = uniform_indices(window[0], window[1], config.frames_per_question)
        clip, decoded = reader.clip(shown, window, purpose=f"interval level {level}")
        yield decoded
        raw = yield from _ask(
            lambda k, clip=clip: vqa.answer_interval(clip, query, k),
            config.num_interval_answers,
            "interval",
            vqa,
            shown,
        )
        intervals = [parse_interval(text, window, fps) for text in raw]
        mean = _mean_interval(intervals)
        if mean is None:
            # Nothing parsed: the model gave no usable interval, so zooming would ask the same
            # question on the same frames again. Keep the whole window as the key segment.
            fallback = True
            note = (
                f"level {level}: no interval answer parsed; the key segment stays the window {list(window)}"
            )
            notes.append(note)
            yield RunWarning(for_stage="sampler", message=note)
            mean = window
        length = mean[1] - mean[0] + 1
        shrank = length < window[1] - window[0] + 1
        zoom = length > limit and shrank and level + 1 < config.max_levels and not fallback
        yield SamplerLevel(
            level=level,
            window=list(window),
            frame_indices=list(shown),
            raw_answers=raw,
            intervals=[None if iv is None else list(iv) for iv in intervals],
            mean_interval=list(mean),
            zoom=zoom,
            fallback=fallback,
        )
        window = mean
        level += 1
        if not zoom:
            break
    key_segment = window

    shown = uniform_indices(key_segment[0], key_segment[1], config.frames_per_question)
    clip, decoded = reader.clip(shown, key_segment, purpose="percentage")
    yield decoded
    raw = yield from _ask(
        lambda m: vqa.answer_percentage(clip, query, m), config.num_percent_answers, "percentage", vqa, shown
    )
    percents = [parse_percentage(text) for text in raw]
    parsed = [p for p in percents if p is not None]
    percent_fallback = not parsed
    p_mean = sum(parsed) / len(parsed) if parsed else config.fallback_percent
    target = target_from_percent(key_segment, p_mean)
    if percent_fallback:
        fallback = True
        notes.append(f"no percentage answer parsed; fallback position {config.fallback_percent:.2f} used")
    yield SamplerPercent(
        key_segment=list(key_segment),
        frame_indices=list(shown),
        raw_answers=raw,
        percents=percents,
        mean_percent=p_mean,
        target_frame=target,
        fallback=percent_fallback,
    )
    return SamplerDecision(
        strategy="htfs",
        key_segment=key_segment,
        target_frame=target,
        key_frames=key_frames_with_target(key_segment[0], key_segment[1], config.num_key_frames, target),
        reference_frames=uniform_indices(0, num_frames - 1, config.num_reference_frames),
        fallback=fallback,
        levels=level,
        notes=notes,
    )


__all__ = [
    "FrameReader",
    "SamplerDecision",
    "htfs",
    "key_frames_with_target",
    "target_from_percent",
    "uniform_indices",
]
