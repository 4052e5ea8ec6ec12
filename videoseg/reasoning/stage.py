"""Paper step 2, "reason": rate the query's difficulty (its reasoning budget), then stream the
reasoner's ``<think>…</think><answer>…</answer>`` and read the answer into cues on the target frame.

Decisions:
- an answer that cannot be read is a ``ParseError`` event carrying the raw text, and means *no cues*:
  the run goes on with empty masks, as a benchmark scores an unreadable answer;
- every model call is a ``ModelCall`` event; the reasoning prompt is shown before generation starts
  (the backend builds it first: :meth:`VideoQA.start_reasoning`);
- the token cap is the reasoner profile's (``max_new_tokens`` overrides it); the difficulty budget only
  shapes the prompt, never cuts the answer; an answer cut at the cap gives a ``RunWarning`` naming the
  token count;
- when the profile is grounding-only, the difficulty question goes to the sampler's model (the
  caller passes it), like the HTFS questions;
- cues come back in the coordinate space the call reports (``ReasoningCall.answer_size``) and are
  mapped to the frame's pixels; cues outside the frame, and cue kinds the config's ablation leaves
  out, are dropped with a ``RunWarning``; for a real model whose profile is not trained to give
  negative points, a negative point inside its target's box is dropped with a warning
  (:meth:`~videoseg.reasoning.profiles.Profile.screen_negatives`).
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass

from videoseg.core.config import PipelineConfig
from videoseg.core.cues import CueParseError, TargetCues, parse_answer, split_think_answer
from videoseg.core.events import (
    CuesParsed,
    DifficultyRated,
    Event,
    ParseError,
    PromptShown,
    ReasoningDone,
    ReasoningToken,
    RunWarning,
    StageTiming,
    describe_error,
)
from videoseg.core.interfaces import CallSettings, Clip, ReasoningCall, ReasonRequest, VideoQA
from videoseg.reasoning.difficulty import length_factor, max_new_tokens_for, rate
from videoseg.reasoning.profiles import get_profile
from videoseg.sampling.answers import parse_difficulty
from videoseg.sampling.htfs import model_call_event
from videoseg.sampling.stage import Looked


def rate_difficulty(
    vqa: VideoQA, key_clip: Clip, query: str, config: PipelineConfig
) -> Generator[Event, None, int | None]:
    """The reasoning budget (tokens) from the model's 5-axis difficulty rating; None when unreadable."""
    t0 = time.perf_counter()
    settings = CallSettings.from_config(config)
    yield PromptShown(
        for_stage="reasoner",
        purpose="difficulty",
        text=vqa.question_prompt("difficulty", key_clip, query, settings),
        frame_indices=list(key_clip.frame_indices),
    )
    answer = vqa.rate_difficulty(key_clip, query, settings)
    yield model_call_event("difficulty", "difficulty", answer.usage, vqa.info.model_id)
    raw = answer.texts[0] if answer.texts else ""
    budget: int | None = None
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
    yield StageTiming(for_stage="difficulty", seconds=time.perf_counter() - t0, details={"budget": budget})
    return budget


@dataclass
class _Reasoning:
    raw_text: str
    num_tokens: int
    think_tokens: int


def reason(
    vqa: VideoQA,
    looked: Looked,
    query: str,
    budget: int | None,
    config: PipelineConfig,
) -> Generator[Event, None, list[TargetCues]]:
    """Stream the reasoning, then read its answer into cues in the target frame's pixels."""
    t0 = time.perf_counter()
    max_new = max_new_tokens_for(budget, config)
    request = ReasonRequest(
        query=query,
        key_clip=looked.key_clip,
        target_frame=looked.target_frame,
        target_index=looked.decision.target_frame,
        reference_clip=looked.reference_clip,
        max_new_tokens=max_new,
        budget=budget,
        cue_kinds=tuple(config.cues),
    )
    settings = CallSettings.from_config(config, max_new_tokens=max_new)
    call = vqa.start_reasoning(request, settings)
    reasoning: _Reasoning = yield from _stream(vqa, call, looked)
    targets = yield from _read_answer(vqa, call, reasoning.raw_text, looked, config)
    yield StageTiming(
        for_stage="reasoner",
        seconds=time.perf_counter() - t0,
        details={
            "num_tokens": reasoning.num_tokens,
            "think_tokens": reasoning.think_tokens,
            "budget": budget,
            "max_new_tokens": max_new,
            "length_factor": length_factor(reasoning.think_tokens, budget),
        },
    )
    return targets


def _stream(vqa: VideoQA, call: ReasoningCall, looked: Looked) -> Generator[Event, None, _Reasoning]:
    """The prompt (before any token), each streamed piece, the call's cost, then ReasoningDone."""
    yield _reason_prompt(call, looked)
    pieces: list[str] = []
    think_pieces: int | None = None
    text_so_far = ""
    stream = call.stream()
    try:
        for piece in stream:
            pieces.append(piece)
            text_so_far += piece
            if think_pieces is None and "</think>" in text_so_far:
                think_pieces = len(pieces)
            yield ReasoningToken(index=len(pieces) - 1, text=piece)
    finally:
        # A cancel closes this generator: stop the model at its next token.
        stream.close()
        call.close()
    usage = call.usage
    yield model_call_event("reasoner", "reason", usage, vqa.info.model_id)
    raw_text = "".join(pieces)
    num_tokens = sum(usage.new_tokens) if usage.new_tokens else len(pieces)
    if usage.think_tokens is not None:
        think_tokens = int(usage.think_tokens)
    else:
        think_tokens = think_pieces if think_pieces is not None else len(pieces)
    think, answer = split_think_answer(raw_text)
    truncated = any(usage.truncated)
    yield ReasoningDone(
        raw_text=raw_text,
        think=think,
        answer=answer or "",
        num_tokens=num_tokens,
        think_tokens=think_tokens,
        truncated=truncated,
    )
    if truncated:
        yield RunWarning(
            for_stage="reasoner",
            message=(
                f"the reasoning was cut at its cap of {usage.max_new_tokens} tokens ({num_tokens} written) "
                "before the model ended its answer; raise max_new_tokens to let it finish"
            ),
        )
    return _Reasoning(raw_text, num_tokens, think_tokens)


def _read_answer(
    vqa: VideoQA, call: ReasoningCall, raw_text: str, looked: Looked, config: PipelineConfig
) -> Generator[Event, None, list[TargetCues]]:
    """Cues per target in the target frame's pixels (empty list when the answer cannot be read)."""
    frame_idx = looked.decision.target_frame
    height, width = looked.target_frame.shape[:2]
    try:
        parsed = parse_answer(raw_text, frame_idx=frame_idx)
    except CueParseError as exc:
        yield ParseError(message=str(exc), raw=exc.raw)
        return []
    except (ArithmeticError, ValueError, TypeError) as exc:
        # An answer shape the parser's own checks miss (e.g. a 400-digit coordinate overflows
        # float()) is still an unreadable answer: no cues, not a failed run.
        yield ParseError(message=f"the answer cannot be read ({describe_error(exc)})", raw=raw_text)
        return []
    model_size = tuple(call.answer_size)
    if not (len(model_size) == 2 and all(isinstance(v, (int, float)) and v > 0 for v in model_size)):
        raise ValueError(f"the reasoner reported an answer space of {model_size!r}, not a positive size")
    targets: list[TargetCues] = []
    for t in parsed.targets:
        in_model = t.from_model_space(model_size, (width, height))
        mapped = in_model.clipped(width, height)
        outside = in_model.count() - mapped.count()
        if outside:
            yield RunWarning(
                for_stage="reasoner", message=f"target {t.obj_id}: {outside} cue(s) outside the frame ignored"
            )
        kept = mapped.filtered(config.cues)
        kept.frame_idx = frame_idx
        if not vqa.info.weights_free:
            # A model's negative points are trusted only when its profile was trained to give them.
            kept, dropped = get_profile(config.profile).screen_negatives(kept)
            if dropped:
                yield RunWarning(for_stage="reasoner", message=dropped)
        if kept.is_empty:
            yield RunWarning(
                for_stage="reasoner",
                message=(
                    f"target {t.obj_id}: no cue left after keeping {list(config.cues)} inside the frame; "
                    "its mask is empty"
                ),
            )
        targets.append(kept)
    yield CuesParsed(frame_idx=frame_idx, targets=[t.to_dict() for t in targets], used=list(config.cues))
    return targets


def _reason_prompt(call: ReasoningCall, looked: Looked) -> PromptShown:
    frames = list(looked.key_clip.frame_indices)
    if looked.reference_clip is not None:
        frames = sorted(set(frames) | set(looked.reference_clip.frame_indices))
    return PromptShown(for_stage="reasoner", purpose="reason", text=call.prompt, frame_indices=frames)


__all__ = ["rate_difficulty", "reason"]
