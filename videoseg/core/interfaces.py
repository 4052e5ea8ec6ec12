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
from typing import Protocol, runtime_checkable

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
    reference_clip: global context frames (may be empty). ``max_new_tokens`` caps generation.
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


@dataclass
class VideoQAPrompts:
    """The exact prompt texts a backend used for its last questions (shown as events)."""

    interval: str = ""
    percentage: str = ""
    reason: str = ""
    difficulty: str = ""
    extra: dict[str, str] = field(default_factory=dict)


class VideoQA(Protocol):
    """Answers the sampler's and reasoner's questions as text (see module docstring)."""

    info: BackendDescription
    last_prompts: VideoQAPrompts

    def answer_interval(self, clip: Clip, query: str, sample: int) -> str:
        """Free text naming the start and end *seconds from clip.window[0]* where the query happens.

        ``sample`` numbers the K repeated answers (0..K-1); stochastic backends vary with it,
        deterministic ones may ignore it.
        """
        ...

    def answer_percentage(self, clip: Clip, query: str, sample: int) -> str:
        """Free text with the position (0..100 %) of the frame best showing the target in the clip."""
        ...

    def rate_difficulty(self, clip: Clip, query: str) -> str:
        """Free text with five 1..10 scores (scene, segmentation, temporal, motion, linguistic)."""
        ...

    def reason(self, request: ReasonRequest) -> Iterator[str]:
        """Stream ``<think>...</think><answer>[...]</answer>`` piece by piece, in order."""
        ...

    def answer_space(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the image space the answer's coordinates are in, for a frame of this size."""
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
    segmenter: Segmenter | None = None  # stage 3a
    propagator: Propagator | None = None  # stage 3b
