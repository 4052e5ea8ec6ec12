"""The interfaces between the pipeline and its swappable backends.

Stage 1 (HTFS) and stage 2 (reasoner) both talk to a :class:`VideoQA` backend: something that can
answer the sampler's interval and percentage questions, rate a query's difficulty and reason about
cues. The real backend is Qwen2.5-VL (:mod:`videoseg.reasoning.qwen`); the weights-free one is the
shapes-world symbolic model (:mod:`videoseg.shapes.symbolic.model`). Both return *text*, parsed by the same
code (:mod:`videoseg.sampling.answers`, :mod:`videoseg.core.cues`), so the weights-free path exercises
exactly the parsing the VLM path uses.

Stage 3a is a :class:`Segmenter` (box + points -> keyframe mask), stage 3b a :class:`Propagator`
(keyframe masks -> masks on every frame, forward and backward).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from videoseg.core.cues import TargetCues


@runtime_checkable
class VideoSource(Protocol):
    """What stages need of a video (implemented by :class:`videoseg.io.video.Video`)."""

    fps: float
    size: tuple[int, int]  # (width, height)

    def __len__(self) -> int: ...

    def frames(self, indices: Sequence[int]) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB, frame-exact, in the order asked."""
        ...


@dataclass
class Clip:
    """Frames shown to a model, with where they come from.

    frames: (N, H, W, 3) uint8 RGB at original resolution (backends resize for their model).
    frame_indices: index of each frame in the original video, increasing.
    fps: frames per second of the original video, so that ``frame_indices[i] / fps`` is its time.
    window: [start, end] frame indices (inclusive) of the span these frames sample; answers about
        time are relative to ``window[0]``.
    """

    frames: np.ndarray
    frame_indices: list[int]
    fps: float
    window: tuple[int, int]

    def __post_init__(self) -> None:
        if len(self.frames) != len(self.frame_indices):
            raise ValueError("frames and frame_indices differ in length")

    @property
    def duration(self) -> float:
        """Seconds covered by the window."""
        return (self.window[1] - self.window[0] + 1) / self.fps

    def times(self) -> list[float]:
        """Time of each frame in seconds from the window start."""
        return [(i - self.window[0]) / self.fps for i in self.frame_indices]


@dataclass
class ReasonRequest:
    """What the reasoner sees (paper step 2).

    key_clip: frames of the key segment; target_frame: the frame to put cues on (H, W, 3);
    reference_clip: global context frames (may be empty). ``max_new_tokens`` is the token cap of a
    backend without a profile (the weights-free ones); a model's cap is its profile's (``CallSettings``).
    ``budget`` only shapes the prompt: it never cuts the answer.
    """

    query: str
    key_clip: Clip
    target_frame: np.ndarray
    target_index: int
    reference_clip: Clip | None
    max_new_tokens: int = 1024
    budget: int | None = None  # reasoning-token budget shown in the prompt (None: no budget)
    cue_kinds: tuple[str, ...] = ("box", "point", "negative")


@dataclass
class BackendDescription:
    name: str
    weights_free: bool
    description: str
    model_id: str | None = None


QUESTION_PURPOSES = ("interval", "percentage", "difficulty")


@dataclass(frozen=True)
class CallSettings:
    """Everything run-specific a :class:`VideoQA` call needs; the shared model object holds none of it.

    ``profile``: name of the reasoner profile (:mod:`videoseg.reasoning.profiles`) that decides how the
    reasoning call is laid out and its token cap. ``temperature`` / ``seed``: sampling of the HTFS
    answers (0: greedy); ``level`` numbers the HTFS level, so each level draws its own answers.
    ``max_new_tokens``: None means the profile's cap (reasoning) or the question's own small cap.
    """

    profile: str = "qwen2.5-vl"
    temperature: float = 0.7
    seed: int = 0
    level: int = 0
    max_new_tokens: int | None = None

    @classmethod
    def from_config(cls, config: Any, **changes: Any) -> CallSettings:
        """The settings of a run's :class:`~videoseg.core.config.PipelineConfig` (plus ``changes``)."""
        values = {
            "profile": getattr(config, "profile", None) or cls.profile,
            "temperature": float(config.temperature),
            "seed": int(config.seed),
            "max_new_tokens": getattr(config, "max_new_tokens", None),
        }
        values.update(changes)
        return cls(**values)


@dataclass
class Usage:
    """What one model call cost: what the ``model_call`` event reports.

    ``prompt_tokens`` counts every input token (vision tokens included), ``vision_tokens`` those the
    frames became; ``new_tokens`` / ``truncated`` are per returned sequence (cut at ``max_new_tokens``
    before the model ended its answer); ``think_tokens`` (reasoning only) counts tokens up to the end of
    ``</think>``; ``peak_cuda_mb`` is None off CUDA.
    """

    prompt_tokens: int = 0
    vision_tokens: int = 0
    new_tokens: list[int] = field(default_factory=list)
    truncated: list[bool] = field(default_factory=list)
    max_new_tokens: int = 0
    seconds: float = 0.0
    peak_cuda_mb: float | None = None
    think_tokens: int | None = None

    @property
    def num_sequences(self) -> int:
        return len(self.new_tokens)


@dataclass
class ModelAnswer:
    """The answers of one call (``num`` sequences from ONE generate), the exact prompt, and its cost."""

    texts: list[str]
    prompt: str
    usage: Usage = field(default_factory=Usage)


@runtime_checkable
class ReasoningCall(Protocol):
    """A reasoning call started by :meth:`VideoQA.start_reasoning`.

    ``prompt`` and ``answer_size`` are known before any token is generated; :meth:`stream` yields the
    text piece by piece (their concatenation is the whole answer); ``usage`` is complete once the stream
    has ended; :meth:`close` stops generation early (cancel) and is safe to call twice.
    """

    prompt: str
    answer_size: tuple[int, int]
    usage: Usage

    def stream(self) -> Iterator[str]: ...

    def close(self) -> None: ...


class TextReasoning:
    """A :class:`ReasoningCall` over text a weights-free backend already wrote (streamed in pieces)."""

    def __init__(self, prompt: str, answer_size: tuple[int, int], pieces: Sequence[str], cap: int) -> None:
        self.prompt = prompt
        self.answer_size = (int(answer_size[0]), int(answer_size[1]))
        self._pieces = list(pieces)
        self.usage = Usage(max_new_tokens=int(cap))
        self._closed = False

    def stream(self) -> Iterator[str]:
        sent: list[str] = []
        think: int | None = None
        try:
            for piece in self._pieces[: max(self.usage.max_new_tokens, 0)]:
                if self._closed:
                    break
                sent.append(piece)
                if think is None and "</think>" in "".join(sent):
                    think = len(sent)
                yield piece
        finally:
            n = len(sent)
            self.usage.new_tokens = [n]
            self.usage.truncated = [n < len(self._pieces)]
            self.usage.think_tokens = think if think is not None else n

    def close(self) -> None:
        self._closed = True


class VideoQA(Protocol):
    """Answers the sampler's and reasoner's questions as text (see module docstring).

    A backend object is shared by every run in the process (a real model is loaded once): it keeps no
    per-run state. Each call takes the run's :class:`CallSettings` and returns what it produced.
    """

    info: BackendDescription

    def question_prompt(self, purpose: str, clip: Clip, query: str, settings: CallSettings) -> str:
        """The exact prompt of an HTFS / difficulty question (``purpose`` in :data:`QUESTION_PURPOSES`),
        cheap to build, so a caller can show it before asking."""
        ...

    def answer_intervals(self, clip: Clip, query: str, num: int, settings: CallSettings) -> ModelAnswer:
        """``num`` free-text answers naming start and end *seconds from clip.window[0]* where the query
        happens, sampled in one generation (one prefill of the frames)."""
        ...

    def answer_percentages(self, clip: Clip, query: str, num: int, settings: CallSettings) -> ModelAnswer:
        """``num`` answers with the position (0..100 %) of the frame best showing the target."""
        ...

    def rate_difficulty(self, clip: Clip, query: str, settings: CallSettings) -> ModelAnswer:
        """One greedy answer with five 1..10 scores (scene, segmentation, temporal, motion, linguistic)."""
        ...

    def start_reasoning(self, request: ReasonRequest, settings: CallSettings) -> ReasoningCall:
        """Prepare the reasoning call (prompt known at once); the text comes from its ``stream()``."""
        ...


class Segmenter(Protocol):
    info: BackendDescription

    def segment(self, frame: np.ndarray, cues: TargetCues) -> tuple[np.ndarray, float]:
        """frame (H, W, 3) uint8 RGB, cues in its pixels -> ((H, W) bool mask, score in [0, 1])."""
        ...


class Propagator(Protocol):
    """Carries masks one way through the video per call (sam2's ``propagate_in_video(reverse=...)``).

    The propagation stage (:mod:`videoseg.propagation.stage`) owns the order (forward, then backward)
    and the case of no target, so a backend only knows how to go one way from one frame.
    """

    info: BackendDescription

    def propagate(
        self,
        video: VideoSource,
        start: int,
        masks: np.ndarray,
        direction: str,
        cues: Sequence[TargetCues] | None = None,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """From frame ``start``, whose masks (K, H, W) bool are given, yield ``(frame_idx, masks)``.

        ``direction`` "forward": start+1 .. len-1; "backward": start-1 .. 0; each frame once, in that
        order, masks (K, H, W) bool at the original resolution. ``cues`` (the keyframe's cues in its
        pixels) are for models that take prompts besides the mask; others ignore them.
        """
        ...


@dataclass
class Backends:
    """The loaded backend of each stage, handed to :func:`videoseg.pipeline.run` (tests inject fakes).

    A field left None is built from the run's config (:mod:`videoseg.runtime.backends`).
    """

    vqa: VideoQA | None = None  # stages 1 and 2 (sampler questions, difficulty, reasoning)
    # stage 1's questions and the difficulty rating when the reasoner's profile is grounding-only
    # (None: built from config.sampler_vlm; the reasoner's own vqa when its profile can answer)
    sampler_vqa: VideoQA | None = None
    segmenter: Segmenter | None = None  # stage 3a
    propagator: Propagator | None = None  # stage 3b
