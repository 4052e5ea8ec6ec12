"""A direct method beside the pipeline: SAM 3 segments the query's concept in the video, no HTFS, no reasoning.

VideoSeg-R1 (the paper) looks for the right frame, reasons about the query and only then segments.
SAM 3 (Carion et al., "SAM 3: Segment Anything with Concepts", 2025) does *promptable concept
segmentation*: given a short noun phrase it detects, segments and tracks every instance of that concept
in the video, with no reasoning at all. Run beside the pipeline on the same clip, it shows where
reasoning wins (a query that singles out one object among several of its kind, or names it by what it
does) and where a direct segmenter is enough.

:func:`run_direct` yields the pipeline's own events where they apply, so Run, Compare, Inspect and
traces work unchanged: ``BackendInfo`` (segmenter and propagator: SAM 3's detector and its tracker),
``PromptShown`` (purpose ``"concept"``: the text given to SAM 3, and how it was taken from the query),
``KeyframeMask`` for frame 0, ``StageTiming("segmenter")``, ``PropagationStarted``, ``PropagatedMask``
for every frame in order (frame 0 as the ``"keyframe"``, then ``"forward"``), ``StageTiming
("propagator")``; a ``RunWarning`` when SAM 3 found no instance anywhere. The caller (the orchestrator)
sends ``RunStarted`` before and ``RunFinished`` after.

The text prompt is either the query as typed (``config.sam3_text == "query"``) or, by default, a noun
phrase cut from it by :func:`concept_phrase` (a fixed rule, not a model: SAM 3 is trained on short noun
phrases such as "yellow school bus", and a referring sentence is not one).

Every instance SAM 3 reports is one object of the concept; the benchmarks score the union of a query's
objects, so the method reports one target: the union of the instances on each frame.

Frames are streamed (decoded :data:`READ_CHUNK` at a time, one frame fed per call) and the session's
stored pixels of past frames and tracker outputs beyond the tracker's memory reach are dropped, so
memory stays bounded in the video length. Streaming disables SAM 3's "hotstart" clean-up that needs
future frames (transformers' SAM 3 video documentation), so it may keep a few more false detections
than its offline mode.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from videoseg.core.config import PipelineConfig
from videoseg.core.cues import TargetCues
from videoseg.core.events import (
    BackendInfo,
    Event,
    KeyframeMask,
    PromptShown,
    PropagatedMask,
    PropagationStarted,
    RunWarning,
    StageTiming,
)
from videoseg.core.interfaces import VideoSource
from videoseg.core.masks import encode_rle, mask_box, union
from videoseg.propagation.stage import MemoryPeak
from videoseg.runtime.loading import cached_model, dtype_name, hub_offline, resolve_device, resolve_dtype

METHOD = "sam3-text"
READ_CHUNK = 8  # frames decoded per read

# Words that open an instruction rather than describe the object ("segment the dog" -> "dog").
_LEADING = (
    "please",
    "segment",
    "find",
    "track",
    "show",
    "locate",
    "highlight",
    "mask",
    "identify",
    "select",
    "detect",
    "mark",
    "outline",
    "point to",
    "point at",
    "where is",
    "where are",
    "which is",
    "which",
    "what",
    "what is",
    "who is",
    "me",
    "all",
    "every",
    "each",
    "the",
    "a",
    "an",
    "this",
    "that",
    "these",
    "those",
    "one",
    "ones",
    "of",
)
# Words that start what the object does or where it is: the noun phrase ends before them.
_CLAUSE = re.compile(
    r"\b(who|that|which|whose|whom|where|when|while|after|before|until|because|as|if|than|and then"
    r"|is|are|was|were|being|has|have|had|can|could|will|would|does|do|did"
    r"|in|on|at|by|with|without|from|to|into|onto|near|next|behind|under|over|above|below|beside"
    r"|between|through|across|around|toward|towards|against|along|inside|outside|during|for)\b"
)
_MAX_WORDS = 5  # SAM 3's concept prompts are short noun phrases


def concept_phrase(query: str) -> str:
    """A short noun phrase for SAM 3 from a referring query, by a fixed rule (no model).

    Cuts the query before the first relative clause, verb or preposition, drops leading instruction
    words and articles, and a trailing "-ing" participle clause: "the man who appears after the car
    turns left" -> "man"; "Segment the red square moving right" -> "red square"; a query the rule
    empties is returned as typed (trimmed), so SAM 3 always gets some text.
    """
    text = " ".join(re.sub(r"[^\w\s'-]", " ", query).split()).lower()
    words = text.split()
    changed = True
    while words and changed:  # leading instruction words and articles, in any order
        changed = False
        for lead in _LEADING:
            parts = lead.split()
            if words[: len(parts)] == parts:
                words = words[len(parts) :]
                changed = True
                break
    cut = _CLAUSE.search(" ".join(words))
    head = " ".join(words)[: cut.start()].split() if cut else words
    # "man walking on the left" -> "man": a participle after the noun starts what it does.
    for i, word in enumerate(head[1:], start=1):
        if word.endswith("ing") and len(word) > 4:
            head = head[:i]
            break
    head = head[-_MAX_WORDS:]
    return " ".join(head) if head else " ".join(query.split())


def concept_prompt(query: str, config: PipelineConfig) -> tuple[str, str]:
    """(text given to SAM 3, how it was obtained) for ``config.sam3_text``."""
    if getattr(config, "sam3_text", "noun-phrase") == "query":
        return " ".join(query.split()), "the query as typed"
    phrase = concept_phrase(query)
    return phrase, "a noun phrase cut from the query by a fixed rule (no reasoning model)"


# ------------------------------------------------------------------------------------- the model


def _load_sam3_video(model_id: str, device: torch.device, dtype: torch.dtype) -> tuple[Any, Any]:
    from transformers import Sam3VideoModel, Sam3VideoProcessor

    local = hub_offline(model_id)
    model = Sam3VideoModel.from_pretrained(model_id, dtype=dtype, local_files_only=local).to(device).eval()
    processor = Sam3VideoProcessor.from_pretrained(model_id, local_files_only=local)
    return model, processor


@dataclass
class Sam3Text:
    """The cached SAM 3 video model + processor (weights only; every run passes its own inputs)."""

    model_id: str
    device: torch.device
    dtype: torch.dtype
    model: Any = field(repr=False)
    processor: Any = field(repr=False)

    @classmethod
    def load(cls, config: PipelineConfig) -> Sam3Text:
        model_id = str(config.sam3_model)
        device = resolve_device(config.device)
        dtype = resolve_dtype(config.dtype, device)
        model, processor = cached_model(
            "sam3-video", model_id, device, dtype, lambda: _load_sam3_video(model_id, device, dtype)
        )
        return cls(model_id, device, dtype, model, processor)

    @property
    def description(self) -> str:
        return (
            f"SAM 3 promptable concept segmentation (transformers Sam3VideoModel) {self.model_id} on "
            f"{self.device} ({dtype_name(self.dtype)}): detects every instance of the text's concept"
        )

    @property
    def memory_reach(self) -> int:
        cfg = self.model.config.tracker_config
        return max(int(cfg.num_maskmem) - 1, int(cfg.max_object_pointers_in_encoder) - 1, 1)

    @torch.inference_mode()
    def segment(
        self, video: VideoSource, text: str, memory_window: int | None = -1
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Yield ``(frame_idx, masks (N, H, W) bool, scores (N,))`` for frames 0..len-1: the instances
        of ``text`` SAM 3 tracks on each frame. ``memory_window``: past frames whose tracker outputs are
        kept (-1: the tracker's memory reach; None: all, the unbounded reference for tests)."""
        width, height = video.size
        window = self.memory_reach if memory_window == -1 else memory_window
        session = self.processor.init_video_session(
            inference_device=self.device,
            processing_device="cpu",
            video_storage_device="cpu",
            dtype=self.dtype,
        )
        self.processor.add_text_prompt(session, text)
        order = list(range(len(video)))
        for first in range(0, len(order), READ_CHUNK):
            chunk = order[first : first + READ_CHUNK]
            for frame_idx, frame in zip(chunk, video.frames(chunk)):
                inputs = self.processor(images=frame, device=self.device, return_tensors="pt")
                out = self.model(
                    inference_session=session, frame=inputs.pixel_values[0].to(self.dtype), reverse=False
                )
                result = self.processor.postprocess_outputs(session, out, original_sizes=[[height, width]])
                _forget(session, frame_idx, window)
                masks = result["masks"].cpu().numpy().astype(bool).reshape(-1, height, width)
                scores = result["scores"].float().cpu().numpy().reshape(-1)
                yield frame_idx, masks, scores


def _forget(session: Any, frame_idx: int, window: int | None) -> None:
    """Drop stored pixels of past frames and tracker outputs beyond the memory reach (never read again)."""
    frames = getattr(session, "processed_frames", None) or {}
    for idx in [i for i in frames if i < frame_idx]:
        del frames[idx]
    if window is None:
        return
    oldest = frame_idx - window
    for per_obj in getattr(session, "output_dict_per_obj", {}).values():
        outputs = per_obj.get("non_cond_frame_outputs", {})
        for idx in [i for i in outputs if i < oldest]:
            del outputs[idx]


# ------------------------------------------------------------------------------------- the method


@dataclass
class DirectResult:
    """What the direct method returns to the orchestrator (for ``RunFinished``)."""

    num_targets: int
    timings: dict[str, float]


def run_direct(
    video: VideoSource,
    query: str,
    config: PipelineConfig,
    check: Callable[[], None] = lambda: None,
    backend: Sam3Text | None = None,
) -> Generator[Event, None, DirectResult]:
    """SAM 3 on the query's concept over every frame, as events (see the module docstring).

    ``check`` is called before each frame (the orchestrator's cancel check raises there). ``backend``
    defaults to the cached SAM 3 model of ``config.sam3_model``."""
    sam3 = backend if backend is not None else Sam3Text.load(config)
    yield from _backend_events(sam3)
    text, how = concept_prompt(query, config)
    yield PromptShown(
        for_stage="segmenter", purpose="concept", text=f"{text}\n\n(SAM 3 concept prompt: {how})"
    )
    num_frames = len(video)
    width, height = video.size
    timings: dict[str, float] = {}
    memory = MemoryPeak()
    t0 = time.perf_counter()
    seen: set[int] = set()
    found: list[int] = []  # frames where at least one instance was segmented
    stream = sam3.segment(video, text)
    empty_rle: dict[str, Any] | None = None
    for frame_idx, masks, scores in _checked(stream, check):
        memory.sample()
        merged = union(masks) if len(masks) else np.zeros((height, width), dtype=bool)
        if merged.any():
            found.append(frame_idx)
            rle = encode_rle(merged)
        else:
            empty_rle = empty_rle or encode_rle(merged)
            rle = empty_rle
        seen.add(frame_idx)
        if frame_idx == 0:
            timings["segmenter"] = time.perf_counter() - t0
            yield from _first_frame_events(
                merged, rle, scores, len(masks), text, timings["segmenter"], num_frames
            )
            t1 = time.perf_counter()
        yield PropagatedMask(
            frame_idx=frame_idx,
            direction="keyframe" if frame_idx == 0 else "forward",
            rles=[rle],
            done=len(seen),
            total=num_frames,
        )
    if len(seen) != num_frames:
        raise ValueError(f"SAM 3 left {num_frames - len(seen)} frame(s) without masks")
    timings["propagator"] = time.perf_counter() - t1
    details: dict[str, Any] = {
        "frames": num_frames,
        "frames_per_second": (num_frames - 1) / timings["propagator"] if timings["propagator"] > 0 else None,
        "frames_with_instances": len(found),
        **memory.details(),
    }
    yield StageTiming(for_stage="propagator", seconds=timings["propagator"], details=details)
    if not found:
        yield RunWarning(
            for_stage="segmenter",
            message=f"SAM 3 found no instance of “{text}” on any frame, so every mask is empty",
        )
    return DirectResult(num_targets=1, timings=timings)


def _backend_events(sam3: Sam3Text) -> Iterator[Event]:
    """One SAM 3 model stands for both stage 3 backends: it segments frame 0 and tracks the rest."""
    yield BackendInfo(
        for_stage="segmenter",
        name=METHOD,
        weights_free=False,
        description=sam3.description,
        model_id=sam3.model_id,
    )
    yield BackendInfo(
        for_stage="propagator",
        name=METHOD,
        weights_free=False,
        description="SAM 3's own tracker (the same model): instances followed frame to frame, forward only",
        model_id=sam3.model_id,
    )


def _first_frame_events(
    merged: np.ndarray,
    rle: dict[str, Any],
    scores: np.ndarray,
    instances: int,
    text: str,
    seconds: float,
    num_frames: int,
) -> Iterator[Event]:
    """Frame 0 plays the keyframe: its mask (the union of SAM 3's instances, boxed as the cue), the
    segmenter's timing, and the start of propagation."""
    yield KeyframeMask(
        frame_idx=0,
        target=0,
        rle=rle,
        score=float(scores.max()) if len(scores) else 0.0,
        cues=TargetCues(box=mask_box(merged), obj_id=1, frame_idx=0).to_dict(),
        area=int(merged.sum()),
    )
    yield StageTiming(
        for_stage="segmenter",
        seconds=seconds,
        details={"concept": text, "instances_on_frame_0": instances, "targets": 1},
    )
    yield PropagationStarted(keyframe=0, num_frames=num_frames, num_targets=1)


def _checked(stream: Iterator[Any], check: Callable[[], None]) -> Iterator[Any]:
    for item in stream:
        check()
        yield item


__all__ = ["METHOD", "DirectResult", "Sam3Text", "concept_phrase", "concept_prompt", "run_direct"]
