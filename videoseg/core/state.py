"""RunState: the fold of a run's event stream into what a consumer shows (all three paper steps).

The UI, the CLI and tests never look inside a stage; they apply each event to a :class:`RunState`
and read its fields. A replayed trace folds into the same state as the live run did.

Masks stay COCO RLE until asked for: :attr:`RunState.masks` is a mapping ``frame_idx -> (K, H, W)
bool`` that decodes on access, so a long video's masks cost their RLE size, not H*W bytes per frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from videoseg.core import events as ev
from videoseg.core.masks import decode_rle, labels_from_masks


class LazyMasks(Mapping[int, np.ndarray]):
    """``frame_idx -> (K, H, W) bool`` decoded from RLE on access (the last frame read is cached)."""

    def __init__(self) -> None:
        self._rles: dict[int, list[dict[str, Any]]] = {}
        self._shape: tuple[int, int] | None = None
        self._last: tuple[int, np.ndarray] | None = None

    def set(self, frame_idx: int, rles: list[dict[str, Any]], shape: tuple[int, int] | None) -> None:
        self._rles[frame_idx] = rles
        if shape is not None:
            self._shape = shape
        if self._last is not None and self._last[0] == frame_idx:
            self._last = None

    def rles(self, frame_idx: int) -> list[dict[str, Any]]:
        return self._rles[frame_idx]

    def __getitem__(self, frame_idx: int) -> np.ndarray:
        if self._last is not None and self._last[0] == frame_idx:
            return self._last[1]
        rles = self._rles[frame_idx]
        if rles:
            masks = np.stack([decode_rle(r) for r in rles])
        else:
            h, w = self._shape or (0, 0)
            masks = np.zeros((0, h, w), dtype=bool)
        self._last = (frame_idx, masks)
        return masks

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self._rles))

    def __len__(self) -> int:
        return len(self._rles)


@dataclass
class RunState:
    """Everything a run has reported so far. ``apply`` each event in order."""

    query: str = ""
    preset: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # PipelineConfig.to_dict()
    video: dict[str, Any] = field(default_factory=dict)  # path, num_frames, fps, width, height, duration
    device: str = ""
    backends: dict[str, ev.BackendInfo] = field(default_factory=dict)  # stage -> backend
    prompts: list[ev.PromptShown] = field(default_factory=list)
    model_calls: list[ev.ModelCall] = field(default_factory=list)  # one per generate, in order
    frames_decoded: int = 0  # distinct frames the sampler and reasoner decoded
    decoded_frames: set[int] = field(default_factory=set)
    sampler_levels: list[ev.SamplerLevel] = field(default_factory=list)  # coarse HTFS levels in order
    sampler_percent: ev.SamplerPercent | None = None
    sampler_result: ev.SamplerResult | None = None
    difficulty: ev.DifficultyRated | None = None
    tokens: list[str] = field(default_factory=list)  # streamed reasoning pieces in order
    reasoning: ev.ReasoningDone | None = None
    cues: list[dict[str, Any]] | None = None  # TargetCues dicts (original pixels); None until parsed
    cues_used: list[str] = field(default_factory=list)
    parse_error: ev.ParseError | None = None
    keyframe: int | None = None
    keyframe_masks: dict[int, ev.KeyframeMask] = field(default_factory=dict)  # target -> event
    masks: LazyMasks = field(default_factory=LazyMasks)  # frame_idx -> (K, H, W) bool
    directions: dict[int, str] = field(default_factory=dict)  # frame_idx -> keyframe/forward/backward
    num_targets: int = 0
    progress: tuple[int, int] = (0, 0)  # propagated frames done, total
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds
    timing_details: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[ev.RunWarning] = field(default_factory=list)
    errors: list[ev.RunError] = field(default_factory=list)
    finished: ev.RunFinished | None = None
    num_events: int = 0

    # ------------------------------------------------------------------ folding

    @classmethod
    def from_events(cls, events: Iterable[ev.Event]) -> RunState:
        state = cls()
        for event in events:
            state.apply(event)
        return state

    def apply(self, event: ev.Event) -> RunState:
        """Fold one event in; returns self so calls chain."""
        self.num_events += 1
        handler = getattr(self, f"_on_{event.type}", None)
        if handler is not None:
            handler(event)
        return self

    def _on_run_started(self, e: ev.RunStarted) -> None:
        self.query, self.preset, self.config, self.video, self.device = (
            e.query,
            e.preset,
            dict(e.config),
            dict(e.video),
            e.device,
        )

    def _on_backend(self, e: ev.BackendInfo) -> None:
        self.backends[e.for_stage] = e

    def _on_prompt(self, e: ev.PromptShown) -> None:
        self.prompts.append(e)

    def _on_model_call(self, e: ev.ModelCall) -> None:
        self.model_calls.append(e)

    def _on_frames_decoded(self, e: ev.FramesDecoded) -> None:
        self.decoded_frames.update(e.frame_indices)
        self.frames_decoded = e.total_decoded

    def _on_sampler_level(self, e: ev.SamplerLevel) -> None:
        self.sampler_levels.append(e)

    def _on_sampler_percent(self, e: ev.SamplerPercent) -> None:
        self.sampler_percent = e

    def _on_sampler_result(self, e: ev.SamplerResult) -> None:
        self.sampler_result = e

    def _on_difficulty(self, e: ev.DifficultyRated) -> None:
        self.difficulty = e

    def _on_reasoning_token(self, e: ev.ReasoningToken) -> None:
        self.tokens.append(e.text)

    def _on_reasoning_done(self, e: ev.ReasoningDone) -> None:
        self.reasoning = e

    def _on_cues_parsed(self, e: ev.CuesParsed) -> None:
        self.cues = list(e.targets)
        self.cues_used = list(e.used)
        self.num_targets = len(e.targets)

    def _on_parse_error(self, e: ev.ParseError) -> None:
        self.parse_error = e
        self.cues = []

    def _on_keyframe_mask(self, e: ev.KeyframeMask) -> None:
        self.keyframe = e.frame_idx
        self.keyframe_masks[e.target] = e

    def _on_propagation_started(self, e: ev.PropagationStarted) -> None:
        self.keyframe = e.keyframe
        self.num_targets = e.num_targets
        self.progress = (0, e.num_frames)

    def _on_propagated_mask(self, e: ev.PropagatedMask) -> None:
        height = self.video.get("height")
        width = self.video.get("width")
        shape = (int(height), int(width)) if height and width else None
        self.masks.set(e.frame_idx, list(e.rles), shape)
        self.directions[e.frame_idx] = e.direction
        self.progress = (e.done, e.total)

    def _on_stage_timing(self, e: ev.StageTiming) -> None:
        self.timings[e.for_stage] = e.seconds
        self.timing_details[e.for_stage] = dict(e.details)

    def _on_warning(self, e: ev.RunWarning) -> None:
        self.warnings.append(e)

    def _on_error(self, e: ev.RunError) -> None:
        self.errors.append(e)

    def _on_run_finished(self, e: ev.RunFinished) -> None:
        self.finished = e
        self.timings.update({k: v for k, v in e.timings.items() if k not in self.timings})

    # ------------------------------------------------------------------ views

    @property
    def text(self) -> str:
        """The reasoning text streamed so far."""
        return "".join(self.tokens)

    @property
    def status(self) -> str:
        """ "running", "finished", "error" or "cancelled"."""
        if any(e.fatal for e in self.errors):
            return "cancelled" if any(e.cancelled for e in self.errors) else "error"
        return "finished" if self.finished is not None else "running"

    def model_call_totals(self, stage: str) -> dict[str, Any]:
        """What the model calls of one stage cost together: calls, sequences, prompt / vision / new
        tokens, seconds, the highest peak CUDA memory (None off CUDA) and the model ids asked."""
        calls = [c for c in self.model_calls if c.for_stage == stage]
        peaks = [c.peak_cuda_mb for c in calls if c.peak_cuda_mb is not None]
        return {
            "calls": len(calls),
            "sequences": sum(c.num_sequences for c in calls),
            "prompt_tokens": sum(c.prompt_tokens for c in calls),
            "vision_tokens": sum(c.vision_tokens for c in calls),
            "new_tokens": sum(sum(c.new_tokens) for c in calls),
            "truncated": sum(c.truncated for c in calls),
            "seconds": sum(c.seconds for c in calls),
            "peak_cuda_mb": max(peaks) if peaks else None,
            "model_ids": sorted({c.model_id for c in calls if c.model_id}),
        }

    @property
    def num_frames(self) -> int:
        return int(self.video.get("num_frames") or 0)

    def keyframe_mask_array(self, height: int, width: int) -> np.ndarray:
        """(K, H, W) bool: the keyframe mask of each target (0..K-1) reported so far, empty where none."""
        count = max(self.keyframe_masks, default=-1) + 1
        out = np.zeros((count, height, width), dtype=bool)
        for target, event in self.keyframe_masks.items():
            out[target] = decode_rle(event.rle)
        return out

    def label_map(self, frame_idx: int) -> np.ndarray:
        """(H, W) uint8 of one frame: 0 background, target i -> i + 1 (later targets win overlaps)."""
        masks = self.masks[frame_idx]
        if masks.shape[0] == 0:
            return np.zeros(masks.shape[1:], dtype=np.uint8)
        return labels_from_masks(masks)

    def iter_label_maps(self) -> Iterator[np.ndarray]:
        """(H, W) uint8 label maps of frames 0..T-1 in order; raises KeyError on a frame with no mask."""
        for idx in range(self.num_frames):
            if idx not in self.masks:
                raise KeyError(f"frame {idx} has no mask in this run")
            yield self.label_map(idx)


__all__ = ["LazyMasks", "RunState"]
