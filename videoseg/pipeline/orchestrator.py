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

import numpy as np

from videoseg.core.config import PipelineConfig
from videoseg.core.config import preset as make_preset
from videoseg.core.cues import CueParseError, TargetCues, parse_answer, split_think_answer
from videoseg.core.events import (
    BackendInfo,
    CuesParsed,
    DifficultyRated,
    Event,
    KeyframeMask,
    ParseError,
    PromptShown,
    PropagatedMask,
    PropagationStarted,
    ReasoningDone,
    ReasoningToken,
    RunError,
    RunFinished,
    RunStarted,
    RunWarning,
    StageTiming,
)
from videoseg.core.interfaces import BackendDescription, Clip, ReasonRequest, VideoSource
from videoseg.core.masks import encode_rle
from videoseg.reasoning.difficulty import length_factor, max_new_tokens_for, rate
from videoseg.runtime.backends import make_propagator, make_segmenter, make_vqa, resolve_device
from videoseg.sampling.answers import parse_difficulty
from videoseg.sampling.baselines import run_sampler
from videoseg.sampling.htfs import FrameReader, SamplerDecision

CANCELLED = "cancelled by the user"
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
) -> Iterator[Event]:
    """Run the pipeline on ``video`` (a path or an opened video) and yield its events.

    ``config`` None means the named ``preset`` (or the defaults). ``preset`` is only recorded otherwise.
    Always starts with RunStarted and ends with RunFinished or a fatal RunError; never raises for bad
    input (see the module docstring).
    """
    ctx = _Context(cancel)
    inner = _run(ctx, video, query, config, preset)
    try:
        yield from inner
    except _Cancelled:
        yield RunError(for_stage=ctx.stage, message=CANCELLED)
    except Exception as exc:  # a backend failing mid-run: report it as the stage's error
        yield RunError(for_stage=ctx.stage, message=_describe(exc))
    finally:
        inner.close()
        ctx.close()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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
    """Yield a stage generator's events, checking for cancel before each; return its result."""
    while True:
        ctx.check()
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        yield event


def _run(
    ctx: _Context, video: Any, query: Any, config: PipelineConfig | None, preset: str | None
) -> Generator[Event, None, None]:
    started = time.perf_counter()
    timings: dict[str, float] = {}

    # ---- inputs: everything that can be wrong before any model runs
    problems: list[tuple[str, str]] = []
    try:
        if config is None:
            config = make_preset(preset) if preset else PipelineConfig()
        elif isinstance(config, dict):
            config = PipelineConfig.from_dict(config)
        elif not isinstance(config, PipelineConfig):
            raise TypeError(f"config must be a PipelineConfig or a dict, got {type(config).__name__}")
    except KeyError as exc:  # an unknown preset: its message, without KeyError's quotes
        problems.append(("config", str(exc.args[0]) if exc.args else _describe(exc)))
        config = PipelineConfig()
    except (ValueError, TypeError) as exc:
        problems.append(("config", _describe(exc)))
        config = PipelineConfig()
    source: VideoSource | None = None
    try:
        source, owned = _open(video)
        if owned:
            ctx.to_close = source
    except Exception as exc:  # VideoError and friends: the message names the problem
        problems.append(("video", str(exc) or _describe(exc)))
    device = "cpu"
    try:
        device = resolve_device(config)
    except Exception as exc:
        device = str(config.device)
        problems.append(("device", _describe(exc)))
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
        return
    assert source is not None
    query = query.strip()
    num_frames = len(source)
    width, height = source.size

    # ---- backends (constructed up front so that a missing checkpoint fails before any work; the
    # cheap ones first, so a missing XMem.pth is reported before a large VLM is loaded)
    ctx.stage = "propagator"
    propagator = make_propagator(config)
    check_ready = getattr(propagator, "check_ready", None)
    if check_ready is not None:
        check_ready()
    ctx.stage = "segmenter"
    segmenter = make_segmenter(config)
    ctx.stage = "reasoner" if config.sampler == "first_frame" else "sampler"
    vqa = make_vqa(config)
    if config.sampler != "first_frame":
        yield _backend_event("sampler", vqa.info)
    yield _backend_event("reasoner", vqa.info)
    yield _backend_event("segmenter", segmenter.info)
    yield _backend_event("propagator", propagator.info)

    # ---- stage 1: where to look
    ctx.stage = "sampler"
    t0 = time.perf_counter()
    reader = FrameReader(source)
    decision: SamplerDecision = yield from _relay(run_sampler(reader, query, vqa, config), ctx)
    key_frames, key_decoded = reader.read(decision.key_frames, purpose="reasoner key frames")
    yield key_decoded
    key_clip = Clip(
        frames=key_frames,
        frame_indices=list(decision.key_frames),
        fps=reader.fps,
        # target_only shows one frame: its window is that frame, not the key segment it came from.
        window=(decision.target_frame,) * 2 if decision.strategy == "target_only" else decision.key_segment,
    )
    reference_clip = None
    if decision.reference_frames:
        ref_frames, ref_decoded = reader.read(decision.reference_frames, purpose="reference frames")
        yield ref_decoded
        reference_clip = Clip(
            frames=ref_frames,
            frame_indices=list(decision.reference_frames),
            fps=reader.fps,
            window=(0, num_frames - 1),
        )
    target_frame = key_frames[decision.key_frames.index(decision.target_frame)]
    timings["sampler"] = time.perf_counter() - t0
    yield StageTiming(
        for_stage="sampler",
        seconds=timings["sampler"],
        details={
            "strategy": decision.strategy,
            "levels": decision.levels,
            "frames_decoded": len(reader.decoded),
            "share_decoded": len(reader.decoded) / num_frames,
            "fallback": decision.fallback,
        },
    )

    # ---- stage 2a: difficulty -> budget
    budget: int | None = None
    if config.rate_difficulty:
        ctx.stage = "difficulty"
        ctx.check()
        t0 = time.perf_counter()
        raw = vqa.rate_difficulty(key_clip, query)
        yield PromptShown(
            for_stage="reasoner",
            purpose="difficulty",
            text=vqa.last_prompts.difficulty,
            frame_indices=list(key_clip.frame_indices),
        )
        scores = parse_difficulty(raw)
        if scores is None:
            yield RunWarning(
                for_stage="difficulty",
                message=f"no difficulty rating could be read, so no reasoning budget applies: {raw[:200]!r}",
            )
        else:
            rating = rate(scores, config)
            budget = rating.budget
            yield DifficultyRated(
                scores=rating.scores, difficulty=rating.difficulty, level=rating.level, budget=budget, raw=raw
            )
        timings["difficulty"] = time.perf_counter() - t0
        yield StageTiming(for_stage="difficulty", seconds=timings["difficulty"], details={"budget": budget})

    # ---- stage 2b: reasoning, streamed
    ctx.stage = "reasoner"
    ctx.check()
    t0 = time.perf_counter()
    max_new = max_new_tokens_for(budget, config)
    request = ReasonRequest(
        query=query,
        key_clip=key_clip,
        target_frame=target_frame,
        target_index=decision.target_frame,
        reference_clip=reference_clip,
        max_new_tokens=max_new,
        budget=budget,
        cue_kinds=tuple(config.cues),
    )
    pieces: list[str] = []
    think_pieces: int | None = None
    text_so_far = ""
    for piece in vqa.reason(request):
        ctx.check()
        if not pieces:
            # The backend sets its prompt when the stream starts.
            yield _reason_prompt(vqa, key_clip, reference_clip)
        pieces.append(piece)
        text_so_far += piece
        if think_pieces is None and "</think>" in text_so_far:
            think_pieces = len(pieces)
        yield ReasoningToken(index=len(pieces) - 1, text=piece)
    if not pieces:
        yield _reason_prompt(vqa, key_clip, reference_clip)
    raw_text = "".join(pieces)
    usage = getattr(vqa, "last_usage", None)
    if isinstance(usage, dict) and "num_tokens" in usage:
        num_tokens = int(usage["num_tokens"])
        think_tokens = int(usage.get("think_tokens", think_pieces or 0))
    else:
        num_tokens = len(pieces)
        think_tokens = think_pieces if think_pieces is not None else len(pieces)
    think, answer = split_think_answer(raw_text)
    truncated = num_tokens >= max_new and "</answer>" not in raw_text
    yield ReasoningDone(
        raw_text=raw_text,
        think=think,
        answer=answer or "",
        num_tokens=num_tokens,
        think_tokens=think_tokens,
        truncated=truncated,
    )
    targets: list[TargetCues] = []
    try:
        parsed = parse_answer(raw_text, frame_idx=decision.target_frame)
    except CueParseError as exc:
        yield ParseError(message=str(exc), raw=exc.raw)
    except (ArithmeticError, ValueError, TypeError) as exc:
        # An answer shape the parser's own checks miss (e.g. a 400-digit coordinate overflows
        # float()) is still an unreadable answer: no cues, not a failed run.
        yield ParseError(message=f"the answer cannot be read ({_describe(exc)})", raw=raw_text)
    else:
        model_size = vqa.answer_space(width, height)
        if not (len(model_size) == 2 and all(isinstance(v, (int, float)) and v > 0 for v in model_size)):
            raise ValueError(f"the reasoner reported an answer space of {model_size!r}, not a positive size")
        for t in parsed.targets:
            in_model = t.from_model_space(model_size, (width, height))
            mapped = in_model.clipped(width, height)
            outside = in_model.count() - mapped.count()
            if outside:
                yield RunWarning(
                    for_stage="reasoner",
                    message=f"target {t.obj_id}: {outside} cue(s) outside the frame ignored",
                )
            kept = mapped.filtered(config.cues)
            kept.frame_idx = decision.target_frame
            if kept.is_empty:
                yield RunWarning(
                    for_stage="reasoner",
                    message=(
                        f"target {t.obj_id}: no cue left after keeping {list(config.cues)} inside the frame; "
                        "its mask is empty"
                    ),
                )
            targets.append(kept)
        yield CuesParsed(
            frame_idx=decision.target_frame, targets=[t.to_dict() for t in targets], used=list(config.cues)
        )
    timings["reasoner"] = time.perf_counter() - t0
    yield StageTiming(
        for_stage="reasoner",
        seconds=timings["reasoner"],
        details={
            "num_tokens": num_tokens,
            "think_tokens": think_tokens,
            "budget": budget,
            "max_new_tokens": max_new,
            "length_factor": length_factor(think_tokens, budget),
        },
    )

    # ---- stage 3a: keyframe masks
    ctx.stage = "segmenter"
    ctx.check()
    t0 = time.perf_counter()
    keyframe = decision.target_frame
    keyframe_masks = np.zeros((len(targets), height, width), dtype=bool)
    for i, cues in enumerate(targets):
        ctx.check()
        if cues.is_empty:
            mask, score = keyframe_masks[i], 0.0
        else:
            mask, score = segmenter.segment(target_frame, cues)
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (height, width):
                raise ValueError(f"segmenter returned a {mask.shape} mask for a {(height, width)} frame")
            keyframe_masks[i] = mask
        yield KeyframeMask(
            frame_idx=keyframe,
            target=i,
            rle=encode_rle(mask),
            score=float(score),
            cues=cues.to_dict(),
            area=int(mask.sum()),
        )
    timings["segmenter"] = time.perf_counter() - t0
    yield StageTiming(for_stage="segmenter", seconds=timings["segmenter"], details={"targets": len(targets)})

    # ---- stage 3b: propagation, forward then backward
    ctx.stage = "propagator"
    ctx.check()
    t0 = time.perf_counter()
    yield PropagationStarted(keyframe=keyframe, num_frames=num_frames, num_targets=len(targets))
    done = 1
    yield PropagatedMask(
        frame_idx=keyframe,
        direction="keyframe",
        rles=[encode_rle(m) for m in keyframe_masks],
        done=done,
        total=num_frames,
    )
    seen = {keyframe}
    if keyframe_masks.any():
        stream: Iterator[tuple[int, str, np.ndarray]] = propagator.propagate(source, keyframe, keyframe_masks)
    else:
        stream = _empty_stream(num_frames, keyframe, keyframe_masks)
    empty_rles: list[dict[str, Any]] | None = None
    for frame_idx, direction, masks in stream:
        ctx.check()
        frame_idx = int(frame_idx)
        if not 0 <= frame_idx < num_frames or frame_idx in seen:
            raise ValueError(f"propagator yielded frame {frame_idx} twice or outside 0..{num_frames - 1}")
        masks = np.asarray(masks, dtype=bool)
        if masks.shape != keyframe_masks.shape:
            raise ValueError(f"propagator returned masks {masks.shape}, expected {keyframe_masks.shape}")
        seen.add(frame_idx)
        done += 1
        if not masks.any():
            # Most frames of a "no target" run are empty: encode the empty masks once.
            if empty_rles is None:
                empty_rles = [encode_rle(m) for m in np.zeros_like(keyframe_masks)]
            rles = empty_rles
        else:
            rles = [encode_rle(m) for m in masks]
        yield PropagatedMask(frame_idx=frame_idx, direction=direction, rles=rles, done=done, total=num_frames)
    if len(seen) != num_frames:
        missing = sorted(set(range(num_frames)) - seen)
        raise ValueError(f"propagator left {len(missing)} frame(s) without masks, first {missing[:5]}")
    timings["propagator"] = time.perf_counter() - t0
    yield StageTiming(
        for_stage="propagator",
        seconds=timings["propagator"],
        details={
            "frames": num_frames,
            "frames_per_second": (num_frames - 1) / timings["propagator"]
            if timings["propagator"] > 0
            else None,
        },
    )
    ctx.close()
    yield RunFinished(
        num_frames=num_frames,
        num_targets=len(targets),
        seconds=time.perf_counter() - started,
        timings=dict(timings),
    )


def _empty_stream(num_frames: int, keyframe: int, masks: np.ndarray) -> Iterator[tuple[int, str, np.ndarray]]:
    empty = np.zeros_like(masks)
    for idx in range(keyframe + 1, num_frames):
        yield idx, "forward", empty
    for idx in range(keyframe - 1, -1, -1):
        yield idx, "backward", empty


def _backend_event(stage: str, info: BackendDescription) -> BackendInfo:
    return BackendInfo(
        for_stage=stage,
        name=info.name,
        weights_free=bool(info.weights_free),
        description=info.description,
        model_id=info.model_id,
    )


def _reason_prompt(vqa: Any, key_clip: Clip, reference_clip: Clip | None) -> PromptShown:
    frames = list(key_clip.frame_indices)
    if reference_clip is not None:
        frames = sorted(set(frames) | set(reference_clip.frame_indices))
    return PromptShown(
        for_stage="reasoner", purpose="reason", text=vqa.last_prompts.reason, frame_indices=frames
    )


__all__ = ["CANCELLED", "MAX_QUERY_CHARS", "query_problem", "run"]
