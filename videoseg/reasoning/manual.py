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
  original pixels (``answer_space`` is the frame's own size).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from videoseg.core.config import PipelineConfig
from videoseg.core.cues import TargetCues
from videoseg.core.interfaces import BackendDescription, Clip, ReasonRequest, VideoQAPrompts


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
        self.config = config
        self.cues = cues
        self.frame_idx = cues[0].frame_idx
        self.info = BackendDescription(
            name="manual",
            weights_free=True,
            description=f"manual cues given by the user on frame {self.frame_idx}; no model reasons",
            model_id=None,
        )
        self.last_prompts = VideoQAPrompts()

    def answer_interval(self, clip: Clip, query: str, sample: int) -> str:
        self.last_prompts.interval = "(manual backend: no question is asked of a model)"
        return (
            "Manual cues: no model localises the query in time, so the whole window is relevant: "
            f"from 0.0 to {clip.duration:.3f} seconds."
        )

    def answer_percentage(self, clip: Clip, query: str, sample: int) -> str:
        self.last_prompts.percentage = "(manual backend: the clicked frame's position is reported)"
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
        return f"{percent:.6f}% of the segment: the cues were given on frame {frame}{note}."

    def rate_difficulty(self, clip: Clip, query: str) -> str:
        self.last_prompts.difficulty = "(manual backend: no difficulty rating)"
        return "Not rated: the cues were given by hand, no model judged the difficulty."

    def reason(self, request: ReasonRequest) -> Iterator[str]:
        self.last_prompts.reason = "(manual backend: the user's cues are restated)"
        where = f"frame {self.frame_idx}"
        if request.target_index != self.frame_idx:
            where += f" (applied as given to frame {request.target_index}, the sampler's target frame)"
        answer = json.dumps([c.to_model_dict() for c in self.cues])
        text = (
            f"<think>No model reasoning: {len(self.cues)} target(s) were marked by hand on {where}, "
            f"in original pixels.</think><answer>{answer}</answer>"
        )
        # Stream in word-sized pieces like a model would, so consumers exercise the same path.
        yield from re.findall(r"\S+\s*|\s+", text)

    def answer_space(self, width: int, height: int) -> tuple[int, int]:
        return width, height


__all__ = ["ManualVideoQA"]
