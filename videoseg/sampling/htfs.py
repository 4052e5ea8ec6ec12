"""Hierarchical text-guided frame sampling, HTFS (paper step 1).

The video QA model is asked for ``K`` answers where the query happens, on ``frames_per_question`` frames
spread uniformly over the current window, in ONE model call (one prefill of the frames, K sampled
continuations: ``num_return_sequences``); the parsed intervals (seconds from the window start ->
frame indices) are averaged into the key segment. While the key segment is longer than ``delta * T``
(T = number of frames) the same question is asked again inside it (at most ``max_levels`` levels, and
only while it keeps shrinking); the key segment never shrinks below ``min_key_frames`` frames (it is
widened about its centre, inside the window). Then one more call asks for ``M`` answers with the
target's position (percent) inside the key segment; with the mean ratio ``p``, ``f_tgt = start_key + floor(T_key * p)`` (clamped
to the segment, ``T_key`` = frames in it). When no percentage parses, VISA's fallback 0.5 is used and
flagged. Reference frames spread uniformly over the whole video give the reasoner global context;
the key frames it sees are spread uniformly over the key segment and include the target frame.

An answer not of the asked form (a grounding checkpoint's box list where an interval was asked) is
unreadable and reported in a warning, never read as numbers (:func:`videoseg.sampling.answers.form_problem`).

Only the frames shown to the model are decoded (:class:`FrameReader` counts them), so a long video
costs a few percent of its frames. Every decision is an event and every model call a ``ModelCall``,
its prompt shown before it is asked; :func:`htfs` is a generator that yields them and returns a
:class:`SamplerDecision`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field

import numpy as np

from videoseg.core.config import PipelineConfig
from videoseg.core.events import (
    Event,
    FramesDecoded,
    ModelCall,
    PromptShown,
    RunWarning,
    SamplerLevel,
    SamplerPercent,
)
from videoseg.core.interfaces import CallSettings, Clip, ModelAnswer, Usage, VideoQA, VideoSource
from videoseg.sampling.answers import form_problem, parse_interval, parse_percentage


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


def widen_to_min(segment: tuple[int, int], window: tuple[int, int], min_frames: int) -> tuple[int, int]:
    """``segment`` grown about its centre to at least ``min_frames`` frames, inside ``window``.

    A key segment of one or two frames leaves the reasoner no motion to see; the floor is
    ``config.min_key_frames`` (never more than the window holds).
    """
    start, end = int(segment[0]), int(segment[1])
    lo, hi = int(window[0]), int(window[1])
    want = min(max(int(min_frames), 1), hi - lo + 1)
    missing = want - (end - start + 1)
    if missing <= 0:
        return start, end
    start -= missing // 2
    end += missing - missing // 2
    if start < lo:
        start, end = lo, end + (lo - start)
    if end > hi:
        start, end = start - (end - hi), hi
    return max(start, lo), min(end, hi)


def model_call_event(
    for_stage: str, purpose: str, usage: Usage, model_id: str | None, level: int | None = None
) -> ModelCall:
    """The ``model_call`` event of one call's :class:`~videoseg.core.interfaces.Usage`."""
    return ModelCall(
        for_stage=for_stage,
        purpose=purpose,
        model_id=model_id,
        level=level,
        prompt_tokens=int(usage.prompt_tokens),
        vision_tokens=int(usage.vision_tokens),
        new_tokens=[int(n) for n in usage.new_tokens],
        num_sequences=usage.num_sequences,
        max_new_tokens=int(usage.max_new_tokens),
        truncated=sum(bool(t) for t in usage.truncated),
        seconds=float(usage.seconds),
        peak_cuda_mb=None if usage.peak_cuda_mb is None else float(usage.peak_cuda_mb),
    )


def _ask(
    purpose: str,
    vqa: VideoQA,
    clip: Clip,
    query: str,
    count: int,
    settings: CallSettings,
    level: int | None,
) -> Generator[Event, None, list[str]]:
    """One sampler question with ``count`` answers (K or M) in one model call; returns the texts.

    The exact prompt is shown before the model is asked; the call's cost follows as a ModelCall; an
    answer not of the asked form is reported (and later parses as nothing).
    """
    yield PromptShown(
        for_stage="sampler",
        purpose=purpose,
        text=vqa.question_prompt(purpose, clip, query, settings),
        frame_indices=list(clip.frame_indices),
    )
    ask = vqa.answer_intervals if purpose == "interval" else vqa.answer_percentages
    answer: ModelAnswer = ask(clip, query, count, settings)
    texts = [str(t) for t in answer.texts]
    if len(texts) != count:
        raise ValueError(f"the sampler model gave {len(texts)} {purpose} answers, {count} were asked")
    yield model_call_event("sampler", purpose, answer.usage, vqa.info.model_id, level)
    cut = sum(bool(t) for t in answer.usage.truncated)
    if cut:
        yield RunWarning(
            for_stage="sampler",
            message=(
                f"{purpose} question{'' if level is None else f' (level {level})'}: {cut} of {count} "
                f"answers were cut at {answer.usage.max_new_tokens} tokens"
            ),
        )
    problems = [(i, form_problem(t, purpose)) for i, t in enumerate(texts)]
    problems = [(i, why) for i, why in problems if why is not None]
    if problems:
        shown = "; ".join(f"answer {i + 1} {texts[i][:80]!r}: {why}" for i, why in problems[:3])
        yield RunWarning(
            for_stage="sampler",
            message=f"{len(problems)} of {count} {purpose} answers are unreadable ({shown})",
        )
    return texts


def htfs(
    reader: FrameReader, query: str, vqa: VideoQA, config: PipelineConfig
) -> Generator[Event, None, SamplerDecision]:
    """Run HTFS; yields PromptShown / ModelCall / FramesDecoded / SamplerLevel / SamplerPercent (and
    warnings). Returns the decision with ``strategy="htfs"``. The caller emits the SamplerResult."""
    notes: list[str] = []
    key_segment, levels, fallback = yield from _find_key_segment(reader, query, vqa, config, notes)
    target, percent_fallback = yield from _find_target_frame(reader, query, vqa, config, key_segment, levels)
    if percent_fallback:
        notes.append(f"no percentage answer parsed; fallback position {config.fallback_percent:.2f} used")
    return SamplerDecision(
        strategy="htfs",
        key_segment=key_segment,
        target_frame=target,
        key_frames=key_frames_with_target(key_segment[0], key_segment[1], config.num_key_frames, target),
        reference_frames=uniform_indices(0, reader.num_frames - 1, config.num_reference_frames),
        fallback=fallback or percent_fallback,
        levels=levels,
        notes=notes,
    )


def _find_key_segment(
    reader: FrameReader, query: str, vqa: VideoQA, config: PipelineConfig, notes: list[str]
) -> Generator[Event, None, tuple[tuple[int, int], int, bool]]:
    """The coarse-to-fine levels: K interval answers per level averaged into the next window, while
    it is longer than ``delta * T``. Returns (key segment, levels asked, whether it fell back)."""
    window = (0, reader.num_frames - 1)
    limit = max(config.delta * reader.num_frames, config.min_key_frames)
    fallback = False
    level = 0
    while True:
        shown = uniform_indices(window[0], window[1], config.frames_per_question)
        clip, decoded = reader.clip(shown, window, purpose=f"interval level {level}")
        yield decoded
        settings = CallSettings.from_config(config, level=level)
        raw = yield from _ask("interval", vqa, clip, query, config.num_interval_answers, settings, level)
        intervals = [parse_interval(text, window, reader.fps) for text in raw]
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
        widened = widen_to_min(mean, window, config.min_key_frames)
        if widened != mean:
            notes.append(
                f"level {level}: mean interval {list(mean)} widened to {list(widened)} "
                f"(min_key_frames {config.min_key_frames})"
            )
            mean = widened
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
            return window, level, fallback


def _find_target_frame(
    reader: FrameReader,
    query: str,
    vqa: VideoQA,
    config: PipelineConfig,
    key_segment: tuple[int, int],
    level: int,
) -> Generator[Event, None, tuple[int, bool]]:
    """M percentage answers averaged: ``f_tgt = start_key + floor(T_key * p_mean)``.
    Returns (target frame, whether no answer parsed and the fallback position was used)."""
    shown = uniform_indices(key_segment[0], key_segment[1], config.frames_per_question)
    clip, decoded = reader.clip(shown, key_segment, purpose="percentage")
    yield decoded
    settings = CallSettings.from_config(config, level=level)
    raw = yield from _ask("percentage", vqa, clip, query, config.num_percent_answers, settings, None)
    percents = [parse_percentage(text) for text in raw]
    parsed = [p for p in percents if p is not None]
    p_mean = sum(parsed) / len(parsed) if parsed else config.fallback_percent
    target = target_from_percent(key_segment, p_mean)
    yield SamplerPercent(
        key_segment=list(key_segment),
        frame_indices=list(shown),
        raw_answers=raw,
        percents=percents,
        mean_percent=p_mean,
        target_frame=target,
        fallback=not parsed,
    )
    return target, not parsed


__all__ = [
    "FrameReader",
    "SamplerDecision",
    "htfs",
    "key_frames_with_target",
    "model_call_event",
    "target_from_percent",
    "uniform_indices",
    "widen_to_min",
]
