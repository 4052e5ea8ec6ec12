"""The three-stage pipeline as one stream of typed events (the paper's whole method, steps 1-3).

``run(video, query, config)`` yields, in order:

- ``RunStarted``; ``BackendInfo`` for the sampler (only when it asks a model: not for
  ``first_frame``), the reasoner (which also rates difficulty), the segmenter and the propagator;
- stage 1: ``FramesDecoded`` / ``PromptShown`` / ``SamplerLevel``\\* / ``SamplerPercent`` (as the
  strategy asks), ``SamplerResult``, ``FramesDecoded`` for the frames the reasoner sees,
  ``StageTiming("sampler")``;
- stage 2: ``PromptShown("difficulty")`` + ``DifficultyRated`` when ``config.rate_difficulty``
  (a rating that does not parse gives a ``RunWarning`` and no budget), ``StageTiming("difficulty")``;
  ``PromptShown("reason")``, ``ReasoningToken``\\* in order, ``ReasoningDone``, then ``CuesParsed`` or
  ``ParseError``, ``StageTiming("reasoner")``;
- stage 3: ``KeyframeMask`` per target, ``StageTiming("segmenter")``, ``PropagationStarted``,
  ``PropagatedMask`` for the keyframe (direction ``"keyframe"``), then every other frame exactly once,
  forward then backward, ``StageTiming("propagator")``;
- ``RunFinished``.

Each ``StageTiming`` follows its stage at once, so a live consumer can fill its time panel as the
run goes. Bad input never raises: a bad video, an empty query, a device that is not there, a backend
that cannot load (missing checkpoint, missing package) or fails while running, and a cancel (via
``threading.Event``) all end the stream with a fatal ``RunError(for_stage=...)``.

Decisions documented here:
- a ``ParseError`` (the answer cannot be read) means *no cues*: the run goes on and ends normally
  with empty masks on every frame, as a benchmark scores an unreadable answer; the ParseError event
  keeps the raw text for the user. An empty answer list ``[]`` ("no target") does the same without an
  error;
- when every keyframe mask is empty (or there are no targets) the propagator is not called: empty
  masks are emitted for every frame, in the same forward-then-backward order;
- a target whose cues are all removed by the cue ablation filter, or fall outside the frame, gets an
  empty mask and a ``RunWarning``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from videoseg.core.config import PipelineConfig
from videoseg.core.config import preset as make_preset
from videoseg.core.events import (
    CANCELLED,
    BackendInfo,
    Event,
    RunError,
    RunFinished,
    RunStarted,
    StageTiming,
    describe_error,
)
from videoseg.core.interfaces import BackendDescription, Backends, VideoSource
from videoseg.propagation.stage import propagate
from videoseg.reasoning.stage import rate_difficulty, reason
from videoseg.runtime.backends import (
    make_propagator,
    make_sampler_vqa,
    make_segmenter,
    make_vqa,
    run_device,
)
from videoseg.sampling.stage import Looked, where_to_look
from videoseg.segmentation.stage import segment_keyframe

# A referring or reasoning expression is a sentence or two; a much longer text is a paste mistake
# that would only fill the reasoner's context.
MAX_QUERY_CHARS = 2000


class _Cancelled(Exception):
    pass


class _Context:
    """What the outer guard needs to report a failure: the stage running and what to close."""

    def __init__(self, cancel: threading.Event | None) -> None:
        self.stage = "input"
        self.cancel = cancel
        self.to_close: Any = None
        self.timings: dict[str, float] = {}  # stage -> seconds, from each stage's StageTiming

    def check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise _Cancelled

    def close(self) -> None:
        if self.to_close is not None:
            # Closing a broken container must not mask the run's own outcome.
            with contextlib.suppress(Exception):
                self.to_close.close()
            self.to_close = None


def run(
    video: str | Path | VideoSource,
    query: str,
    config: PipelineConfig | None = None,
    *,
    preset: str | None = None,
    cancel: threading.Event | None = None,
    backends: Backends | None = None,
) -> Iterator[Event]:
    """Run the pipeline on ``video`` (a path or an opened video) and yield its events.

    ``config`` None means the named ``preset`` (or the defaults). ``preset`` is only recorded otherwise.
    Always starts with RunStarted and ends with RunFinished or a fatal RunError; never raises for bad
    input (see the module docstring). ``backends`` replaces the config's backend of any stage whose
    field is set (a loaded model shared by several runs, or a test's fake).
    """
    ctx = _Context(cancel)
    inner = _run(ctx, video, query, config, preset, backends)
    try:
        yield from inner
    except _Cancelled:
        yield RunError.cancel(ctx.stage)
    except Exception as exc:  # a backend failing mid-run: report it as the stage's error
        yield RunError(for_stage=ctx.stage, message=describe_error(exc))
    finally:
        inner.close()
        ctx.close()


def query_problem(query: Any) -> str | None:
    """Why ``query`` cannot be used (None when it can); the explorer checks its queries with this too."""
    if query is None or (isinstance(query, str) and not query.strip()):
        return "the query is empty: describe the object to segment"
    if not isinstance(query, str):
        return f"the query must be text, got {type(query).__name__}"
    if len(query) > MAX_QUERY_CHARS:
        return (
            f"the query is {len(query)} characters long; at most {MAX_QUERY_CHARS} are allowed "
            "(describe the object in a sentence or two)"
        )
    try:
        query.encode("utf-8")
    except UnicodeEncodeError as exc:
        # A terminal in a non-UTF-8 locale passes such bytes as lone surrogates; no model can read them.
        return (
            f"the query holds bytes that are not valid text at character {exc.start + 1}; "
            "check the terminal's character encoding (UTF-8 expected)"
        )
    return None


def _video_info(source: VideoSource | None, video: Any) -> dict[str, Any]:
    if source is None:
        return {"path": str(video) if isinstance(video, (str, Path)) else None}
    width, height = source.size
    num_frames = len(source)
    fps = float(source.fps)
    path = getattr(source, "path", None)
    if path is None and isinstance(video, (str, Path)):
        path = video
    return {
        "path": None if path is None else str(path),
        "num_frames": num_frames,
        "fps": fps,
        "width": int(width),
        "height": int(height),
        "duration": num_frames / fps if fps > 0 else 0.0,
    }


def _open(video: Any) -> tuple[VideoSource, bool]:
    """(video, whether we opened it and so must close it)."""
    if isinstance(video, (str, Path)):
        from videoseg.io.video import open_video

        return open_video(video), True
    if not isinstance(video, VideoSource):
        raise TypeError(f"expected a video path or an opened video, got {type(video).__name__}")
    return video, False


def _relay(gen: Generator[Event, None, Any], ctx: _Context) -> Generator[Event, None, Any]:
    """Yield a stage generator's events, checking for cancel before each; return its result.

    Each stage's StageTiming passes through here, so the run's timings are collected in one place.
    """
    while True:
        ctx.check()
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if isinstance(event, StageTiming):
            ctx.timings[event.for_stage] = event.seconds
        yield event


def _run(
    ctx: _Context,
    video: Any,
    query: Any,
    config: PipelineConfig | None,
    preset: str | None,
    backends: Backends | None,
) -> Generator[Event, None, None]:
    started = time.perf_counter()
    inputs = yield from _check_inputs(ctx, video, query, config, preset)
    if inputs is None:
        return
    source, query, config = inputs
    if config.method == "sam3-text":  # a direct method beside the pipeline: no HTFS, no reasoning
        yield from _run_direct(ctx, source, query, config, started)
        return
    loaded = yield from _load_backends(ctx, config, backends or Backends())

    ctx.stage = "sampler"
    sampler_vqa = loaded.sampler_vqa or loaded.vqa
    looked: Looked = yield from _relay(where_to_look(source, query, sampler_vqa, config), ctx)

    budget: int | None = None
    if config.rate_difficulty:
        ctx.stage = "difficulty"
        budget = yield from _relay(rate_difficulty(sampler_vqa, looked.key_clip, query, config), ctx)

    ctx.stage = "reasoner"
    targets = yield from _relay(reason(loaded.vqa, looked, query, budget, config), ctx)

    ctx.stage = "segmenter"
    keyframe = looked.decision.target_frame
    masks = yield from _relay(segment_keyframe(loaded.segmenter, looked.target_frame, keyframe, targets), ctx)

    ctx.stage = "propagator"
    yield from _relay(propagate(loaded.propagator, source, keyframe, masks, targets), ctx)

    ctx.close()
    yield RunFinished(
        num_frames=len(source),
        num_targets=len(targets),
        seconds=time.perf_counter() - started,
        timings=dict(ctx.timings),
    )


def _run_direct(
    ctx: _Context, source: VideoSource, query: str, config: PipelineConfig, started: float
) -> Generator[Event, None, None]:
    """SAM 3 on the query's concept (videoseg.pipeline.direct), with the pipeline's events."""
    from videoseg.pipeline.direct import run_direct  # imports torch: only for this method

    ctx.stage = "segmenter"
    result = yield from _relay(run_direct(source, query, config, check=ctx.check), ctx)
    ctx.close()
    yield RunFinished(
        num_frames=len(source),
        num_targets=result.num_targets,
        seconds=time.perf_counter() - started,
        timings=dict(ctx.timings),
    )


def _check_inputs(
    ctx: _Context, video: Any, query: Any, config: PipelineConfig | dict | None, preset: str | None
) -> Generator[Event, None, tuple[VideoSource, str, PipelineConfig] | None]:
    """RunStarted, then everything that can be wrong before any model runs (None: a RunError was sent)."""
    problems: list[tuple[str, str]] = []
    try:
        if config is None:
            config = make_preset(preset) if preset else PipelineConfig()
        elif isinstance(config, dict):
            config = PipelineConfig.from_dict(config)
        elif not isinstance(config, PipelineConfig):
            raise TypeError(f"config must be a PipelineConfig or a dict, got {type(config).__name__}")
    except KeyError as exc:  # an unknown preset: its message, without KeyError's quotes
        problems.append(("config", str(exc.args[0]) if exc.args else describe_error(exc)))
        config = PipelineConfig()
    except (ValueError, TypeError) as exc:
        problems.append(("config", describe_error(exc)))
        config = PipelineConfig()
    source: VideoSource | None = None
    try:
        source, owned = _open(video)
        if owned:
            ctx.to_close = source
    except Exception as exc:  # VideoError and friends: the message names the problem
        problems.append(("video", str(exc) or describe_error(exc)))
    device = "cpu"
    try:
        device = run_device(config)
    except Exception as exc:
        device = str(config.device)
        problems.append(("device", describe_error(exc)))
    yield RunStarted(
        query=query if isinstance(query, str) else repr(query),
        video=_video_info(source, video),
        config=config.to_dict(),
        preset=preset,
        device=device,
    )
    if source is not None and not problems and len(source) < 1:
        problems.append(("video", "the video has no frames"))
    problem = query_problem(query)
    if problem is not None:
        problems.append(("input", problem))
    if problems:
        stage, message = problems[0]
        ctx.stage = stage
        yield RunError(for_stage=stage, message=message)
        return None
    assert source is not None
    return source, query.strip(), config


def _load_backends(
    ctx: _Context, config: PipelineConfig, given: Backends
) -> Generator[Event, None, Backends]:
    """Each stage's backend (the given one, or built from the config), announced as BackendInfo.

    Built up front so that a missing checkpoint fails before any work; the cheap ones first, so a
    missing XMem.pth is reported before a large VLM is loaded.
    """
    ctx.stage = "propagator"
    propagator = given.propagator or make_propagator(config)
    check_ready = getattr(propagator, "check_ready", None)
    if check_ready is not None:
        check_ready()
    ctx.stage = "segmenter"
    segmenter = given.segmenter or make_segmenter(config)
    ctx.stage = "reasoner" if config.sampler == "first_frame" else "sampler"
    vqa = given.vqa or make_vqa(config)
    # A grounding-only reasoner profile cannot answer the HTFS / difficulty questions: they go to
    # config.sampler_vlm (a given reasoner double answers them itself unless a sampler is given too).
    asks = config.sampler != "first_frame" or config.rate_difficulty
    sampler_vqa = given.sampler_vqa or (
        vqa if given.vqa is not None or not asks else make_sampler_vqa(config)
    )
    if config.sampler != "first_frame":
        yield _backend_event("sampler", sampler_vqa.info)
    yield _backend_event("reasoner", vqa.info)
    yield _backend_event("segmenter", segmenter.info)
    yield _backend_event("propagator", propagator.info)
    return Backends(vqa=vqa, sampler_vqa=sampler_vqa, segmenter=segmenter, propagator=propagator)


def _backend_event(stage: str, info: BackendDescription) -> BackendInfo:
    return BackendInfo(
        for_stage=stage,
        name=info.name,
        weights_free=bool(info.weights_free),
        description=info.description,
        model_id=info.model_id,
    )


__all__ = ["CANCELLED", "MAX_QUERY_CHARS", "query_problem", "run"]
