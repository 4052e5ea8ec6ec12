"""TEST-ONLY doubles: a scripted VideoQA and tiny synthetic videos for pipeline plumbing tests.

Nothing here is a model. :class:`ScriptedVideoQA` replays the answer texts a test gives it and records
what it was asked, so a test can check the exact HTFS arithmetic and the pipeline's handling of every
kind of answer. Never import this outside tests/ and bench/.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from videoseg.core.interfaces import (
    BackendDescription,
    CallSettings,
    Clip,
    ModelAnswer,
    ReasonRequest,
    TextReasoning,
    Usage,
)

Answer = str | Callable[[Clip, int], str]


@dataclass
class ScriptedVideoQA:
    """Answers from scripts: ``intervals[level][k]``, ``percents[m]``, ``difficulty``, ``reasoning`` pieces.

    A level missing from ``intervals`` repeats the last one given. Answers may be callables
    ``(clip, sample) -> str``. ``fail_on`` names a call that raises RuntimeError (model failure):
    ``answer_intervals``, ``answer_percentages``, ``rate_difficulty`` or ``start_reasoning``.
    It records what it was asked (``interval_clips``, ``percent_clips``, ``requests``, ``settings``),
    which is the point of a test double, unlike a real backend that keeps nothing of a run.
    """

    intervals: list[list[Answer]] = field(default_factory=lambda: [["from 0 to 1 seconds"]])
    percents: list[Answer] = field(default_factory=lambda: ["50%"])
    difficulty: str = '{"scene": 2, "segmentation": 2, "temporal": 2, "motion": 2, "linguistic": 2}'
    reasoning: Sequence[str] = ("<think>ok</think>", "<answer>[]</answer>")
    space: tuple[int, int] | None = None  # answer size; None -> the frame's own size
    fail_on: str | None = None
    info: BackendDescription = field(
        default_factory=lambda: BackendDescription("scripted", True, "test double (scripted answers)")
    )
    interval_clips: list[Clip] = field(default_factory=list)
    percent_clips: list[Clip] = field(default_factory=list)
    requests: list[ReasonRequest] = field(default_factory=list)
    settings: list[CallSettings] = field(default_factory=list)

    def _maybe_fail(self, *names: str) -> None:
        if self.fail_on in names:
            raise RuntimeError(f"scripted failure in {self.fail_on}")

    def question_prompt(
        self, purpose: str, clip: Clip, query: str, settings: CallSettings | None = None
    ) -> str:
        return f"{purpose} prompt for {query!r}"

    def answer_intervals(self, clip: Clip, query: str, num: int, settings: CallSettings) -> ModelAnswer:
        self._maybe_fail("answer_intervals", "answer_interval")
        self.interval_clips.append(clip)
        self.settings.append(settings)
        level = len(self.interval_clips) - 1
        answers = self.intervals[min(level, len(self.intervals) - 1)]
        texts = [_text(answers[k % len(answers)], clip, k) for k in range(num)]
        return _answer(texts, self.question_prompt("interval", clip, query))

    def answer_percentages(self, clip: Clip, query: str, num: int, settings: CallSettings) -> ModelAnswer:
        self._maybe_fail("answer_percentages", "answer_percentage")
        self.percent_clips.append(clip)
        self.settings.append(settings)
        texts = [_text(self.percents[m % len(self.percents)], clip, m) for m in range(num)]
        return _answer(texts, self.question_prompt("percentage", clip, query))

    def rate_difficulty(self, clip: Clip, query: str, settings: CallSettings) -> ModelAnswer:
        self._maybe_fail("rate_difficulty")
        self.settings.append(settings)
        return _answer([self.difficulty], "difficulty prompt")

    def start_reasoning(self, request: ReasonRequest, settings: CallSettings) -> TextReasoning:
        self._maybe_fail("start_reasoning", "reason")
        self.requests.append(request)
        self.settings.append(settings)
        height, width = request.target_frame.shape[:2]
        size = self.space if self.space is not None else (width, height)
        # A model stops at its token cap: one piece stands for one token here.
        cap = settings.max_new_tokens or request.max_new_tokens
        return TextReasoning(f"reason prompt for {request.query!r}", size, list(self.reasoning), cap)


def _text(answer: Answer, clip: Clip, sample: int) -> str:
    return answer(clip, sample) if callable(answer) else answer


def _answer(texts: list[str], prompt: str) -> ModelAnswer:
    usage = Usage(new_tokens=[len(t.split()) for t in texts], truncated=[False] * len(texts))
    return ModelAnswer(texts=texts, prompt=prompt, usage=usage)


def moving_square_frames(
    num_frames: int = 24,
    size: tuple[int, int] = (96, 72),
    side: int = 16,
    step: int = 2,
    colour: tuple[int, int, int] = (220, 40, 40),
) -> tuple[np.ndarray, np.ndarray]:
    """(T, H, W, 3) frames of a coloured square moving right over a grey gradient, and its (T, H, W) masks."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    background = np.stack([40 + xx * 60 // width, 90 + yy * 40 // height, 120 + 0 * xx], axis=-1).astype(
        np.uint8
    )
    frames = np.repeat(background[None], num_frames, axis=0).copy()
    masks = np.zeros((num_frames, height, width), dtype=bool)
    y0 = (height - side) // 2
    for t in range(num_frames):
        x0 = (4 + t * step) % max(1, width - side)
        frames[t, y0 : y0 + side, x0 : x0 + side] = colour
        masks[t, y0 : y0 + side, x0 : x0 + side] = True
    return frames, masks


def box_of(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())]


def answer_for_mask(mask: np.ndarray, negative: tuple[float, float] | None = None) -> str:
    """The reasoner answer text a perfect model would write for one target's mask (frame pixels)."""
    x1, y1, x2, y2 = box_of(mask)
    item = f'"bbox_2d": [{x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}], "point_2d": [{(x1 + x2) / 2:.0f}, {(y1 + y2) / 2:.0f}]'
    if negative is not None:
        item += f', "neg_point_2d": [{negative[0]:.0f}, {negative[1]:.0f}]'
    return "<answer>[{" + item + "}]</answer>"
