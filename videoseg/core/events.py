"""The typed event stream: the spine every consumer (UI, CLI, trace writer) reads.

Each pipeline stage reports what it decided and why as small, JSON-serialisable dataclasses.
Masks travel as COCO RLE dicts (see :mod:`videoseg.core.masks`). A trace is the list of these events,
one JSON object per line, each with a ``"type"`` field; :func:`event_from_dict` turns such a dict
back into the same dataclass, so a replay drives consumers exactly as a live run does.

Frame indices are always indices into the *original* video (0-based). Coordinates in events are
pixels of the original frame unless a field name says otherwise.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

_REGISTRY: dict[str, type[Event]] = {}


CANCELLED = "cancelled by the user"  # the message of a RunError.cancel


def describe_error(exc: BaseException) -> str:
    """An exception as a RunError / ParseError message: its type, and its text when it has one."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class Event:
    """Base class. Subclasses set ``type`` (a unique, stable string) and are registered."""

    type: ClassVar[str] = "event"
    stage: ClassVar[str] = "run"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.type in _REGISTRY and _REGISTRY[cls.type] is not cls:
            raise TypeError(f"duplicate event type {cls.type!r}")
        _REGISTRY[cls.type] = cls

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the ``type`` and ``stage`` fields first."""
        out: dict[str, Any] = {"type": self.type, "stage": self.stage}
        for f in dataclasses.fields(self):
            out[f.name] = _jsonable(getattr(self, f.name))
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return value.item()
    return value


def event_types() -> dict[str, type[Event]]:
    """All registered event classes by their ``type`` string."""
    return dict(_REGISTRY)


def event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event from :meth:`Event.to_dict` output. Unknown fields are rejected."""
    kind = data.get("type")
    if kind is None:
        raise ValueError("the event has no 'type' field")
    if kind not in _REGISTRY:
        raise ValueError(f"unknown event type {kind!r}")
    cls = _REGISTRY[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    payload = {k: v for k, v in data.items() if k not in ("type", "stage")}
    extra = set(payload) - names
    if extra:
        raise ValueError(f"event {kind!r} has unknown fields {sorted(extra)}")
    return cls(**payload)


# --------------------------------------------------------------------------- run


@dataclass
class RunStarted(Event):
    """First event of every run: what is run, on what, with which configuration."""

    type: ClassVar[str] = "run_started"
    query: str
    video: dict[str, Any]  # {"path", "num_frames", "fps", "width", "height", "duration"}
    config: dict[str, Any]  # PipelineConfig.to_dict()
    preset: str | None = None
    device: str = "cpu"
    version: str = "1"


@dataclass
class BackendInfo(Event):
    """Which backend serves a stage, and whether it is a real model or weights-free."""

    type: ClassVar[str] = "backend"
    for_stage: str  # "sampler" | "reasoner" | "difficulty" | "segmenter" | "propagator"
    name: str
    weights_free: bool
    description: str
    model_id: str | None = None


@dataclass
class PromptShown(Event):
    """The exact prompt text (and which frames) a model is asked."""

    type: ClassVar[str] = "prompt"
    for_stage: str
    purpose: str  # "interval" | "percentage" | "reason" | "difficulty"
    text: str
    frame_indices: list[int] = field(default_factory=list)


@dataclass
class FramesDecoded(Event):
    """Frames read from the video for a purpose; lets the UI count decoding cost."""

    type: ClassVar[str] = "frames_decoded"
    purpose: str
    frame_indices: list[int]
    total_decoded: int  # running total of distinct frames decoded in this run


@dataclass
class StageTiming(Event):
    type: ClassVar[str] = "stage_timing"
    for_stage: str
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunError(Event):
    """A stage failed; the run stops after this event (or continues degraded if ``fatal`` is False).

    ``cancelled`` marks the end of a run the user stopped (its message is :data:`CANCELLED`).
    """

    type: ClassVar[str] = "error"
    for_stage: str
    message: str
    fatal: bool = True
    cancelled: bool = False

    @classmethod
    def cancel(cls, for_stage: str) -> RunError:
        """The event that ends a run the user stopped while ``for_stage`` was running."""
        return cls(for_stage=for_stage, message=CANCELLED, cancelled=True)


@dataclass
class RunWarning(Event):
    type: ClassVar[str] = "warning"
    for_stage: str
    message: str


@dataclass
class RunFinished(Event):
    """Last event of a successful run."""

    type: ClassVar[str] = "run_finished"
    num_frames: int
    num_targets: int
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class ModelCall(Event):
    """One model call (one ``generate``): what it was for and what it cost.

    ``purpose``: "interval" | "percentage" | "difficulty" | "reason"; ``level``: the HTFS level (None
    otherwise); ``prompt_tokens`` counts every input token, ``vision_tokens`` those the frames became;
    ``new_tokens``: generated tokens per returned sequence (``num_sequences`` of them from one prefill);
    ``truncated``: how many were cut at ``max_new_tokens``; ``peak_cuda_mb``: None off CUDA.
    """

    type: ClassVar[str] = "model_call"
    for_stage: str  # "sampler" | "difficulty" | "reasoner"
    purpose: str
    model_id: str | None = None
    level: int | None = None
    prompt_tokens: int = 0
    vision_tokens: int = 0
    new_tokens: list[int] = field(default_factory=list)
    num_sequences: int = 1
    max_new_tokens: int = 0
    truncated: int = 0
    seconds: float = 0.0
    peak_cuda_mb: float | None = None


# --------------------------------------------------------------------------- stage 1: sampler


@dataclass
class SamplerLevel(Event):
    """One coarse HTFS level: K interval answers inside ``window`` and their mean (the new key segment)."""

    type: ClassVar[str] = "sampler_level"
    stage: ClassVar[str] = "sampler"
    level: int
    window: list[int]  # [start, end] frame indices searched at this level (inclusive)
    frame_indices: list[int]  # frames shown to the model
    raw_answers: list[str]
    intervals: list[list[int] | None]  # parsed [start, end] per answer (frames), None where unparsable
    mean_interval: list[int]  # [start, end] key segment after this level
    zoom: bool  # True when another level will zoom into mean_interval
    fallback: bool = False  # True when no answer parsed and the whole window was kept


@dataclass
class SamplerPercent(Event):
    """The M percentage answers inside the key segment and the target frame they give."""

    type: ClassVar[str] = "sampler_percent"
    stage: ClassVar[str] = "sampler"
    key_segment: list[int]
    frame_indices: list[int]
    raw_answers: list[str]
    percents: list[float | None]  # in [0, 1]; None where unparsable
    mean_percent: float
    target_frame: int
    fallback: bool = False  # True when nothing parsed and the fallback percentage was used


@dataclass
class SamplerResult(Event):
    """Where the reasoner looks: the sampler's final decision."""

    type: ClassVar[str] = "sampler_result"
    stage: ClassVar[str] = "sampler"
    strategy: str  # "htfs" | "first_frame" | "target_only" | "random_key"
    key_segment: list[int]
    target_frame: int
    key_frames: list[int]  # frames of the key segment shown to the reasoner
    reference_frames: list[int]


# --------------------------------------------------------------------------- stage 2: reasoner


@dataclass
class DifficultyRated(Event):
    type: ClassVar[str] = "difficulty"
    stage: ClassVar[str] = "reasoner"
    scores: dict[str, float]  # the five axes, 1..10
    difficulty: float  # D, the mean
    level: str  # "easy" | "medium" | "hard"
    budget: int | None  # reasoning-token budget; None = no penalty / no cap
    raw: str = ""


@dataclass
class ReasoningToken(Event):
    """One streamed piece of the reasoner's output, in order."""

    type: ClassVar[str] = "reasoning_token"
    stage: ClassVar[str] = "reasoner"
    index: int
    text: str


@dataclass
class ReasoningDone(Event):
    type: ClassVar[str] = "reasoning_done"
    stage: ClassVar[str] = "reasoner"
    raw_text: str
    think: str
    answer: str
    num_tokens: int
    think_tokens: int
    truncated: bool = False  # stopped by the budget cap


@dataclass
class CuesParsed(Event):
    """Parsed cues per target, in original-frame pixels, after the cue ablation filter."""

    type: ClassVar[str] = "cues_parsed"
    stage: ClassVar[str] = "reasoner"
    frame_idx: int
    targets: list[dict[str, Any]]  # TargetCues.to_dict()
    used: list[str]  # which cue kinds were kept: subset of ["box", "point", "negative"]


@dataclass
class ParseError(Event):
    """The model's answer could not be turned into cues; ``raw`` is what it wrote."""

    type: ClassVar[str] = "parse_error"
    stage: ClassVar[str] = "reasoner"
    message: str
    raw: str


# --------------------------------------------------------------------------- stage 3: masks


@dataclass
class KeyframeMask(Event):
    type: ClassVar[str] = "keyframe_mask"
    stage: ClassVar[str] = "segmenter"
    frame_idx: int
    target: int  # 0-based target index
    rle: dict[str, Any]  # COCO RLE of the (H, W) bool mask
    score: float
    cues: dict[str, Any]
    area: int


@dataclass
class PropagationStarted(Event):
    type: ClassVar[str] = "propagation_started"
    stage: ClassVar[str] = "propagator"
    keyframe: int
    num_frames: int
    num_targets: int


@dataclass
class PropagatedMask(Event):
    """Masks of every target on one frame (target i -> rles[i])."""

    type: ClassVar[str] = "propagated_mask"
    stage: ClassVar[str] = "propagator"
    frame_idx: int
    direction: str  # "keyframe" | "forward" | "backward"
    rles: list[dict[str, Any]]
    done: int  # frames finished so far, keyframe included
    total: int


__all__ = [
    "BackendInfo",
    "CuesParsed",
    "DifficultyRated",
    "Event",
    "FramesDecoded",
    "KeyframeMask",
    "ModelCall",
    "ParseError",
    "PromptShown",
    "PropagatedMask",
    "PropagationStarted",
    "ReasoningDone",
    "ReasoningToken",
    "RunError",
    "RunFinished",
    "RunStarted",
    "RunWarning",
    "SamplerLevel",
    "SamplerPercent",
    "SamplerResult",
    "StageTiming",
    "event_from_dict",
    "event_types",
]
