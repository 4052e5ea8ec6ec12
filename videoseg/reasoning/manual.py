"""Manual cues: the user is the reasoner (stage 2 replaced by clicks; weights-free).

:class:`ManualVideoQA` answers the pipeline's questions from ``config.manual_cues`` (a list of
:class:`~videoseg.core.cues.TargetCues` dicts, original-frame pixels, all on one frame ``frame_idx``), and
says so in every answer:

- interval question: there is no model to localise the query, so the honest answer is "the whole
  window" (HTFS then keeps the full video as the key segment and stops zooming);
- percentage question: the frame the user clicked on is known, so the answer is that frame's
  position in the key segment (HTFS's ``f_tgt`` lands on it); a clicked frame outside the segment is
  reported as such and pulled to the nearest end;
- difficulty: not rated (nothing parses, the pipeline warns and applies no budget);
- reasoning: a short statement that the cues were given by hand, then the answer JSON of the cues in
  original pixels (the answer size is the frame's own size).

The object is built per run from that run's cues (it is weights-free and never cached); its calls take
the run's :class:`~videoseg.core.interfaces.CallSettings` like every VideoQA and keep nothing.
"""

from __future__ import annotations

import json
import re
from typing import ClassVar

from videoseg.core.config import PipelineConfig
from videoseg.core.cues import TargetCues
from videoseg.core.interfaces import (
    BackendDescription,
    CallSettings,
    Clip,
    ModelAnswer,
    ReasonRequest,
    TextReasoning,
    Usage,
)


class ManualVideoQA:
    """VideoQA over user-given cues. Raises ValueError when ``config.manual_cues`` is missing or bad."""

    def __init__(self, config: PipelineConfig) -> None:
        if not config.manual_cues:
            raise ValueError(
                "the manual backend needs cues: set config.manual_cues (box / points per target)"
            )
        try:
            cues = [TargetCues.from_dict(d) for d in config.manual_cues]
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise ValueError(f"manual cues are not valid target cues: {exc}") from exc
        for i, c in enumerate(cues):
            if c.is_empty:
                raise ValueError(f"manual target {i + 1} has no box and no point")
        frames = {c.frame_idx for c in cues}
        if len(frames) > 1:
            raise ValueError(f"manual cues must all be on one frame, got frames {sorted(frames)}")
        self.cues = cues
        self.frame_idx = cues[0].frame_idx
        self.info = BackendDescription(
            name="manual",
            weights_free=True,
            description=f"manual cues given by the user on frame {self.frame_idx}; no model reasons",
            model_id=None,
        )

    _PROMPTS: ClassVar[dict[str, str]] = {
        "interval": "(manual backend: no question is asked of a model)",
        "percentage": "(manual backend: the clicked frame's position is reported)",
        "difficulty": "(manual backend: no difficulty rating)",
    }

    def question_prompt(
        self, purpose: str, clip: Clip, query: str, settings: CallSettings | None = None
    ) -> str:
        if purpose not in self._PROMPTS:
            raise ValueError(f"unknown question {purpose!r}; one of {', '.join(self._PROMPTS)}")
        return self._PROMPTS[purpose]

    def answer_intervals(self, clip: Clip, query: str, num: int, settings: CallSettings) -> ModelAnswer:
        text = (
            "Manual cues: no model localises the query in time, so the whole window is relevant: "
            f"from 0.0 to {clip.duration:.3f} seconds."
        )
        return _answer([text] * int(num), self._PROMPTS["interval"])

    def answer_percentages(self, clip: Clip, query: str, num: int, settings: CallSettings) -> ModelAnswer:
        start, end = clip.window
        length = end - start + 1
        frame = min(max(self.frame_idx, start), end)
        # +0.5 frame puts the answer in the middle of the clicked frame's slot, so that
        # start + floor(T_key * p) lands on it despite rounding of the printed percentage.
        percent = 100.0 * (frame - start + 0.5) / length
        note = (
            "" if frame == self.frame_idx else f" (clicked frame {self.frame_idx} lies outside; nearest end)"
        )
        # The percentage comes first: the parser reads the first number.
        text = f"{percent:.6f}% of the segment: the cues were given on frame {frame}{note}."
        return _answer([text] * int(num), self._PROMPTS["percentage"])

    def rate_difficulty(self, clip: Clip, query: str, settings: CallSettings) -> ModelAnswer:
        text = "Not rated: the cues were given by hand, no model judged the difficulty."
        return _answer([text], self._PROMPTS["difficulty"])

    def start_reasoning(self, request: ReasonRequest, settings: CallSettings) -> TextReasoning:
        where = f"frame {self.frame_idx}"
        if request.target_index != self.frame_idx:
            where += f" (applied as given to frame {request.target_index}, the sampler's target frame)"
        answer = json.dumps([c.to_model_dict() for c in self.cues])
        text = (
            f"<think>No model reasoning: {len(self.cues)} target(s) were marked by hand on {where}, "
            f"in original pixels.</think><answer>{answer}</answer>"
        )
        height, width = request.target_frame.shape[:2]
        # Streamed in word-sized pieces like a model would, so consumers exercise the same path; the
        # user's cues are never cut by a token cap.
        pieces = re.findall(r"\S+\s*|\s+", text)
        return TextReasoning(
            "(manual backend: the user's cues are restated)", (width, height), pieces, len(pieces)
        )


def _answer(texts: list[str], prompt: str) -> ModelAnswer:
    usage = Usage(
        new_tokens=[len(re.findall(r"\S+\s*|\s+", t)) for t in texts], truncated=[False] * len(texts)
    )
    return ModelAnswer(texts=texts, prompt=prompt, usage=usage)


__all__ = ["ManualVideoQA"]
