"""Paper step 3a on its own, as an event stream: the user's typed or clicked cues -> keyframe masks.

The Interactive tab corrects a failure by placing cues by hand on any frame; this stream segments
that frame with the preset's segmenter and reports it with the same events as a full run
(``RunStarted``, ``BackendInfo("segmenter")``, ``CuesParsed``, ``KeyframeMask`` per target,
``StageTiming("segmenter")``, ``RunFinished``), so a correction folds into a
:class:`~videoseg.core.state.RunState` and can be recorded as a trace like any run. Re-propagation
runs the whole pipeline with the ``manual`` reasoner instead (:mod:`videoseg.reasoning.manual`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence

from videoseg.core.config import PipelineConfig
from videoseg.core.cues import TargetCues
from videoseg.core.events import (
    BackendInfo,
    CuesParsed,
    Event,
    RunError,
    RunFinished,
    RunStarted,
    StageTiming,
    describe_error,
)
from videoseg.core.interfaces import Segmenter, VideoSource
from videoseg.runtime.backends import make_segmenter
from videoseg.segmentation.stage import segment_keyframe

QUERY = "(manual cues)"


def resegment(
    video: VideoSource,
    frame_idx: int,
    cues: Sequence[TargetCues],
    config: PipelineConfig,
    *,
    preset: str | None = None,
    segmenter: Segmenter | None = None,
) -> Iterator[Event]:
    """Segment frame ``frame_idx`` of ``video`` from ``cues`` (its pixels); never raises for bad input.

    Target ``i`` of the masks is the cue with ``obj_id == i + 1`` (a target without a cue stays empty).
    """
    started = time.perf_counter()
    width, height = video.size
    yield RunStarted(
        query=QUERY,
        video={"num_frames": len(video), "fps": float(video.fps), "width": int(width), "height": int(height)},
        config=config.to_dict(),
        preset=preset,
        device="cpu" if config.weights_free else str(config.device),
    )
    stage = "input"
    try:
        if not 0 <= int(frame_idx) < len(video):
            raise ValueError(f"frame {frame_idx} is outside the video (0..{len(video) - 1})")
        targets = _by_target(cues, int(frame_idx))
        stage = "segmenter"
        segmenter = segmenter or make_segmenter(config)
        info = segmenter.info
        yield BackendInfo(
            for_stage="segmenter",
            name=info.name,
            weights_free=bool(info.weights_free),
            description=info.description,
            model_id=info.model_id,
        )
        frame = video.frames([int(frame_idx)])[0]
        yield CuesParsed(
            frame_idx=int(frame_idx), targets=[t.to_dict() for t in targets], used=list(config.cues)
        )
        timings: dict[str, float] = {}
        for event in segment_keyframe(segmenter, frame, int(frame_idx), targets):
            if isinstance(event, StageTiming):
                timings[event.for_stage] = event.seconds
            yield event
    except Exception as exc:  # a bad cue or a segmenter that cannot load or run: the stage's error
        yield RunError(for_stage=stage, message=describe_error(exc))
        return
    yield RunFinished(
        num_frames=len(video),
        num_targets=len(targets),
        seconds=time.perf_counter() - started,
        timings=timings,
    )


def _by_target(cues: Sequence[TargetCues], frame_idx: int) -> list[TargetCues]:
    """One cue per target number 1..max(obj_id), in order; a missing number is an empty target."""
    if not cues:
        raise ValueError("no cues: add a point or a box first")
    ids = [int(c.obj_id) for c in cues]
    if min(ids) < 1 or len(set(ids)) != len(ids):
        raise ValueError(f"target numbers must be distinct and start at 1, got {ids}")
    by_id = {c.obj_id: c for c in cues}
    return [
        dataclasses.replace(by_id[i], frame_idx=frame_idx)
        if i in by_id
        else TargetCues(obj_id=i, frame_idx=frame_idx)
        for i in range(1, max(ids) + 1)
    ]


__all__ = ["QUERY", "resegment"]
