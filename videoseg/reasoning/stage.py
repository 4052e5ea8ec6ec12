"""Paper step 2, "reason": rate the query's difficulty (its reasoning budget), then stream the
reasoner's ``<think>…</think><answer>…</answer>`` and read the answer into cues on the target frame.

Decisions:
- an answer that cannot be read is a ``ParseError`` event carrying the raw text, and means *no cues*:
  the run goes on with empty masks, as a benchmark scores an unreadable answer;
- cues come back in the model's coordinate space (:meth:`VideoQA.answer_space`) and are mapped to the
  frame's pixels; cues outside the frame, and cue kinds the config's ablation leaves out, are dropped
  with a ``RunWarning``.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

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
)
from videoseg.core.interfaces import Clip, ReasonRequest, VideoQA
from videoseg.reasoning.difficulty import length_factor, max_new_tokens_for, rate
from videoseg.sampling.answers import parse_difficulty
from videoseg.sampling.stage import Looked


def rate_difficulty(
    vqa: VideoQA, key_clip: Clip, query: str, config: PipelineConfig
) -> Generator[Event, None, int | None]:
    """The reasoning budget (tokens) from the model's 5-axis difficulty rating; None when unreadable."""
    t0 = time.perf_counter()
    raw = vqa.rate_difficulty(key_clip, query)
    yield PromptShown(
        for_stage="reasoner",
        purpose="difficulty",
        text=vqa.last_prompts.difficulty,
        frame_indices=list(key_clip.frame_indices),
    )
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
    reasoning: _Reasoning = yield from _stream(vqa, request, looked)
    targets = yield from _read_answer(vqa, reasoning.raw_text, looked, config)
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


def _stream(vqa: VideoQA, request: ReasonRequest, looked: Looked) -> Generator[Event, None, _Reasoning]:
    """The prompt, each streamed piece, then ReasoningDone with the token counts."""
    pieces: list[str] = []
    think_pieces: int | None = None
    text_so_far = ""
    for piece in vqa.reason(request):
        if not pieces:
            # The backend sets its prompt when the stream starts.
            yield _reason_prompt(vqa, looked)
        pieces.append(piece)
        text_so_far += piece
        if think_pieces is None and "</think>" in text_so_far:
            think_pieces = len(pieces)
        yield ReasoningToken(index=len(pieces) - 1, text=piece)
    if not pieces:
        yield _reason_prompt(vqa, looked)
    raw_text = "".join(pieces)
    usage = getattr(vqa, "last_usage", None)
    if isinstance(usage, dict) and "num_tokens" in usage:
        num_tokens = int(usage["num_tokens"])
        think_tokens = int(usage.get("think_tokens", think_pieces or 0))
    else:
        num_tokens = len(pieces)
        think_tokens = think_pieces if think_pieces is not None else len(pieces)
    think, answer = split_think_answer(raw_text)
    yield ReasoningDone(
        raw_text=raw_text,
        think=think,
        answer=answer or "",
        num_tokens=num_tokens,
        think_tokens=think_tokens,
        truncated=num_tokens >= request.max_new_tokens and "</answer>" not in raw_text,
    )
    return _Reasoning(raw_text, num_tokens, think_tokens)


def _read_answer(
    vqa: VideoQA, raw_text: str, looked: Looked, config: PipelineConfig
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
        yield ParseError(message=f"the answer cannot be read ({_describe(exc)})", raw=raw_text)
        return []
    model_size = vqa.answer_space(width, height)
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


def _reason_prompt(vqa: Any, looked: Looked) -> PromptShown:
    frames = list(looked.key_clip.frame_indices)
    if looked.reference_clip is not None:
        frames = sorted(set(frames) | set(looked.reference_clip.frame_indices))
    return PromptShown(
        for_stage="reasoner", purpose="reason", text=vqa.last_prompts.reason, frame_indices=frames
    )


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = ["rate_difficulty", "reason"]
