"""The shapes-world symbolic VideoQA: a classical-vision stand-in for Qwen2.5-VL (paper steps 1 and 2).

:class:`ShapesVideoQA` answers the same questions the VLM is asked, in the same text formats, so the
whole pipeline (HTFS, reasoning, cues, segmentation, propagation, metrics, UI) runs on a CPU in
seconds with real ground truth. It is *not* a neural network and knows nothing but the shapes
world. Every answer comes from the frames of the call (detection, tracking and events of
:mod:`videoseg.shapes.symbolic.perception`) and the parsed query (:mod:`videoseg.shapes.world.grammar`), never from
the generator's ground truth. A per-frame detection cache (keyed by the frame's bytes) only saves
time.

- ``answer_interval``: resolve the query over the clip, then answer the span around the target's best
  view, at most half the clip long (so HTFS zooms in towards it); no target found -> the whole clip.
- ``answer_percentage``: the position of the frame where the target is seen best (whole, away from
  the border and from other shapes), with half a frame added so ``floor`` lands on that frame.
- ``num`` answers per question: answer 0 is exact; answers k > 0 shift the interval by a seeded jitter
  of at most 4 % of the clip (the run's seed, the HTFS level, k and the query seed it), to make the
  K / M averaging of HTFS visible. Percentages are not jittered: a shifted target frame could land on
  an occluded view.
- It holds no per-run state (like the shared Qwen object): every call takes the run's
  :class:`~videoseg.core.interfaces.CallSettings` and returns its texts, the prompt and a
  :class:`~videoseg.core.interfaces.Usage` (word pieces counted as tokens, no vision tokens).
- ``reason``: streams ``<think>`` (parse, what was seen, events, the decision) then ``<answer>`` with,
  per target, the visible mask's box, its interior point farthest from the boundary and a negative
  point within 40 px (on the nearest other shape, else on the background just outside), in
  original pixels (``answer_space`` is the identity). A query it cannot parse gives a chain saying
  so and ``[]``. With a token budget the chain is shortened to fit it.
- ``rate_difficulty``: five 1..10 scores from what it sees (objects, occlusion, query form, motion).
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass, field

import cv2
import numpy as np

from videoseg.core.config import PipelineConfig
from videoseg.core.interfaces import (
    BackendDescription,
    CallSettings,
    Clip,
    ModelAnswer,
    ReasonRequest,
    TextReasoning,
    Usage,
)
from videoseg.shapes.symbolic.perception import Detection, FrameCache, FrameParse, Perception, Track, perceive
from videoseg.shapes.world.grammar import (
    Query,
    QueryParseError,
    describe,
    parse_query,
    resolve,
)

NEG_MAX_DISTANCE = 40.0  # the paper's negative-point reward: 0 < distance to the target mask <= 40 px

DESCRIPTION = (
    "Symbolic shapes-world model: classical computer vision (HSV colour segmentation, contour-geometry "
    "shape classification, tracking, motion-event detection) plus a rule-based query parser. It is not "
    "a neural network and only understands the synthetic shapes videos of videoseg.shapes; it answers "
    "from the frames it is shown, never from ground truth."
)


@dataclass
class _Understanding:
    """What one call made of its frames and the query."""

    perception: Perception
    query: Query | None
    error: str | None
    targets: list[Track]
    notes: list[str] = field(default_factory=list)
    confirmed: bool = False  # the targets meet every condition of the query in these frames


def _pieces(text: str) -> list[str]:
    """Word pieces (at most 6 characters after leading spaces) that concatenate back to ``text``."""
    return re.findall(r"\s*\S{1,6}|\s+", text)


class ShapesVideoQA:
    """VideoQA protocol of :mod:`videoseg.core.interfaces` for the shapes world (see module docstring)."""

    def __init__(self, config: PipelineConfig | None = None) -> None:
        # ``config`` is accepted for the backend factory's uniform call; nothing of a run is kept.
        self.info = BackendDescription(
            name="shapes-symbolic", weights_free=True, description=DESCRIPTION, model_id=None
        )
        self._cache = FrameCache()  # per-frame detections, keyed by the frame's bytes: no run state

    # ------------------------------------------------------------------ VideoQA calls

    def question_prompt(
        self, purpose: str, clip: Clip, query: str, settings: CallSettings | None = None
    ) -> str:
        names = {
            "interval": "INTERVAL_QUESTION",
            "percentage": "PERCENT_QUESTION",
            "difficulty": "DIFFICULTY_QUESTION",
        }
        if purpose not in names:
            raise ValueError(f"unknown question {purpose!r}; one of {', '.join(names)}")
        return self._prompt(names[purpose], clip, query)

    def answer_intervals(self, clip: Clip, query: str, num: int, settings: CallSettings) -> ModelAnswer:
        """``num`` answers 'From <start> to <end> seconds.' (answer k > 0 jittered, see module docstring)."""
        texts = [self._interval(clip, query, k, settings.seed) for k in range(int(num))]
        return _answer(texts, self.question_prompt("interval", clip, query))

    def answer_percentages(self, clip: Clip, query: str, num: int, settings: CallSettings) -> ModelAnswer:
        """``num`` answers '<p>%' (all the same: percentages are not jittered)."""
        return _answer(
            [self._percentage(clip, query)] * int(num), self.question_prompt("percentage", clip, query)
        )

    def rate_difficulty(self, clip: Clip, query: str, settings: CallSettings) -> ModelAnswer:
        """JSON with the five 1..10 scores, computed from what is seen and how the query reads."""
        return _answer([self._difficulty(clip, query)], self.question_prompt("difficulty", clip, query))

    def start_reasoning(self, request: ReasonRequest, settings: CallSettings) -> TextReasoning:
        """``<think>...</think><answer>[...]</answer>`` in word pieces, in original pixels."""
        from videoseg.reasoning import prompts

        prompt = (
            "[shapes-symbolic answers this from pixels; the VLM would be asked:]\n"
            + prompts.reason_instructions(str(request.query), request.cue_kinds, request.budget)
        )
        height, width = np.asarray(request.target_frame).shape[:2]
        cap = settings.max_new_tokens or request.max_new_tokens
        return TextReasoning(prompt, (width, height), _pieces(self._reason_text(request)), cap)

    # ------------------------------------------------------------------ understanding

    def _understand(self, frames: np.ndarray, indices: list[int], fps: float, query: str) -> _Understanding:
        perception = perceive(frames, indices, fps, cache=self._cache)
        try:
            q = parse_query(query)
        except QueryParseError as exc:
            return _Understanding(perception, None, str(exc), [])
        res = resolve(q, perception.world, strict=False)
        notes = list(res.notes)
        ids = list(res.ids)
        if q.unknown_words:
            notes.insert(0, "Words I do not know and ignore: " + ", ".join(q.unknown_words) + ".")
        want = q.expected_count
        if want is not None and len(ids) > want:
            wants_late = any(t.after is not None for t in q.targets)

            def rank(i: int) -> tuple:
                tr = perception.track(i)
                first = min(tr.obs)
                return (-res.scores.get(i, 0.0), -first if wants_late else 0, -tr.full_area())

            ids = sorted(ids, key=rank)[:want]
        return _Understanding(perception, q, None, [perception.track(i) for i in ids], notes, res.confirmed)

    def _best_position(self, u: _Understanding) -> int | None:
        """Observation index where all targets are seen best (None: never all seen)."""
        p = u.perception
        if not u.targets:
            return None
        seen = sorted(set.intersection(*(set(t.obs) for t in u.targets)))
        if not seen:
            seen = sorted(set.union(*(set(t.obs) for t in u.targets)))
        mid = (seen[0] + seen[-1]) / 2
        half = max((seen[-1] - seen[0]) / 2, 1)
        best, best_score = None, -np.inf
        for pos in seen:
            score = 0.0
            for t in u.targets:
                d = t.obs.get(pos)
                if d is None:
                    score -= 2.0
                    continue
                score += min(d.area / t.full_area(), 1.0)
                if d.touches_border:
                    score -= 0.5
                gap = _gap_to_others(d, p.parses[pos])
                if gap < 12:
                    score -= 0.4 * (12 - gap) / 12
            score += 0.15 * (1 - abs(pos - mid) / half)  # propagation is shorter from the middle
            if score > best_score:
                best, best_score = pos, score
        return best

    # ------------------------------------------------------------------ sampler questions

    def _prompt(self, template_name: str, clip: Clip, query: str) -> str:
        from videoseg.reasoning import prompts

        return (
            "[shapes-symbolic answers this from pixels; the VLM would be asked:]\n"
            + prompts.clip_question(
                getattr(prompts, template_name), query=str(query), times=clip.times(), duration=clip.duration
            )
        )

    def _interval(self, clip: Clip, query: str, sample: int, seed: int) -> str:
        """'From <start> to <end> seconds.' relative to ``clip.window[0]`` (see module docstring)."""
        duration = clip.duration
        u = self._understand(clip.frames, clip.frame_indices, clip.fps, query)
        origin = clip.window[0] / clip.fps
        if u.error or not u.confirmed:
            # an event outside these frames cannot be checked: keep the whole clip rather than
            # zoom towards a guess (HTFS then stops zooming here)
            why = u.error or (
                "I cannot confirm which object the query means from these frames"
                if u.targets
                else "no object in these frames fits the query"
            )
            return f"From 0.00 to {duration:.2f} seconds (the whole clip): {why}."
        p = u.perception
        best = self._best_position(u)
        assert best is not None
        seen = sorted(set().union(*(set(t.obs) for t in u.targets)))
        step = duration / max(len(p.times), 1)
        lo, hi = p.times[seen[0]] - origin, p.times[seen[-1]] - origin + step
        length = min(max(0.5 * duration, 1.0), hi - lo)
        centre = p.times[best] - origin + step / 2
        start = min(max(centre - length / 2, lo), hi - length)
        start, end = max(start, 0.0), min(start + length, duration)
        if sample > 0:
            rng = np.random.default_rng([int(seed), sample, zlib.crc32(str(query).encode())])
            shift = float(rng.uniform(-0.04, 0.04)) * duration
            start, end = max(start + shift, 0.0), min(end + shift, duration)
        names = ", ".join(t_name(t) for t in u.targets)
        return (
            f"From {start:.2f} to {end:.2f} seconds: {names} is seen best around "
            f"{p.times[best] - origin:.2f} s."
        )

    def _percentage(self, clip: Clip, query: str) -> str:
        """'<p>%' of the frame showing the target best (see module docstring)."""
        u = self._understand(clip.frames, clip.frame_indices, clip.fps, query)
        start, end = clip.window
        length = end - start + 1
        best = self._best_position(u) if u.confirmed else None
        if best is None:
            why = u.error or (
                "I cannot confirm which object the query means from these frames"
                if u.targets
                else "no object in these frames fits the query"
            )
            return f"50.00% (the middle of the segment, a guess): {why}."
        frame = min(max(u.perception.frame_indices[best], start), end)
        percent = 100.0 * (frame - start + 0.5) / length
        return f"{percent:.4f}%: {', '.join(t_name(t) for t in u.targets)} is seen best in frame {frame}."

    # ------------------------------------------------------------------ difficulty

    def _difficulty(self, clip: Clip, query: str) -> str:
        u = self._understand(clip.frames, clip.frame_indices, clip.fps, query)
        w = u.perception.world
        n = len(w.tracks)
        colours = [t.colour for t in w.tracks]
        shapes = [t.shape for t in w.tracks]
        lookalikes = sum(colours.count(c) - 1 for c in set(colours)) + sum(
            shapes.count(s) - 1 for s in set(shapes) if s
        )
        hidden = sum(1 for t in w.tracks if t.hidden_behind)
        speeds = [t.speed for t in w.tracks]
        events = sum(1 for t in w.tracks for k, _ in t.events if k.startswith("turn") or k == "stop")
        q = u.query
        relations = (
            0
            if q is None
            else sum(
                bool(r.event) + 2 * bool(r.after or r.before) + 2 * bool(r.hidden_behind) + bool(r.fastest)
                for r in q.targets
            )
        )
        late = any(min(t.obs) > 0 for t in u.targets)
        scores = {
            "scene": 1 + 1.2 * max(n - 1, 0) + 0.5 * lookalikes,
            "segmentation": 2
            + 2.5 * hidden
            + (1 if u.targets and min(t.full_area() for t in u.targets) < 400 else 0),
            "temporal": 1 + 2 * relations + (2 if late else 0),
            "motion": 1 + (max(speeds) / 25.0 if speeds else 0) + 0.5 * events,
            "linguistic": 1
            + 1.5 * relations
            + (len(q.targets) - 1 if q else 0)
            + (len(q.unknown_words) if q else 6),
        }
        return json.dumps({k: int(min(max(round(v), 1), 10)) for k, v in scores.items()})

    # ------------------------------------------------------------------ reasoning

    def _reason_text(self, request: ReasonRequest) -> str:
        """The whole answer text (coordinates in the original frame's pixels)."""
        frames: dict[int, np.ndarray] = {}
        for clip in (request.key_clip, request.reference_clip):
            if clip is None:
                continue
            for i, f in zip(clip.frame_indices, clip.frames):
                frames[int(i)] = f
        frames[int(request.target_index)] = request.target_frame
        order = sorted(frames)
        u = self._understand(np.stack([frames[i] for i in order]), order, request.key_clip.fps, request.query)
        think_lines, answer = self._explain_and_answer(u, request)
        think = self._fit_budget(think_lines, request)
        return f"<think>{think}</think><answer>{json.dumps(answer)}</answer>"

    def _explain_and_answer(
        self, u: _Understanding, request: ReasonRequest
    ) -> tuple[list[tuple[int, str]], list]:
        """Reasoning lines as (priority, text) (1 = essential) and the answer list."""
        p = u.perception
        lines: list[tuple[int, str]] = []
        if u.error:
            lines.append((1, f"I cannot parse the query: {u.error}."))
            lines.append(
                (
                    1,
                    "I only understand colours, shapes and the events turn left / right, stop, "
                    "enter, leave, hidden behind and fastest, so I give no target.",
                )
            )
            return lines, []
        assert u.query is not None
        lines.append((1, f"The query asks for: {describe(u.query)}."))
        span = f"{p.times[0]:.1f}-{p.times[-1]:.1f} s"
        seen = ", ".join(f"{t_name(t)} ({_span(t, p)})" for t in p.tracks) or "nothing"
        lines.append((2, f"In {len(p.times)} frames ({span}) I see {len(p.tracks)} shapes: {seen}."))
        evs = [
            f"{t_name(p.track(f.obj_id))} {k.replace('_', ' ')}s at {tm:.1f} s"
            for f in p.world.tracks
            for k, tm in f.events
            if k != "appear" or tm > p.times[0]
        ]
        if evs:
            lines.append((2, "Events: " + "; ".join(evs) + "."))
        lines.extend((3, n) for n in u.notes)
        if not u.targets:
            lines.append((1, "No shape I saw fits the query, so I give no target."))
            return lines, []
        pos = p.position(int(request.target_index))
        answer = []
        for t in u.targets:
            d = t.obs.get(pos) if pos is not None else None
            if d is None:
                lines.append(
                    (1, f"Target {t_name(t)} is not visible in the target frame, so I cannot mark it.")
                )
                continue
            item = self._cues(d, p.parses[pos], request)
            answer.append(item)
            neg_where = item.pop("_neg_where")
            lines.append(
                (
                    1,
                    f"Target: {t_name(t)}, box {item.get('bbox_2d')} in the target frame; the "
                    f"positive point is deep inside it; the negative point is {neg_where}.",
                )
            )
        kinds = set(request.cue_kinds)
        for item in answer:
            if "negative" not in kinds:
                item.pop("neg_point_2d", None)
            if "point" not in kinds and "box" in kinds:
                item.pop("point_2d", None)
            if "box" not in kinds and "point" in kinds:
                item.pop("bbox_2d", None)
        return lines, answer

    def _cues(self, det: Detection, parse: FrameParse, request: ReasonRequest) -> dict:
        mask = parse.mask(det)
        x1, y1, x2, y2 = det.bbox
        # the extreme pixels of the visible component: a looser box lets GrabCut take the
        # anti-aliased rim and the codec's colour bleed (measured: IoU 0.88 with +1 px, 0.91 without)
        box = [x1, y1, x2, y2]
        inside = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
        py, px = np.unravel_index(int(np.argmax(inside)), inside.shape)
        neg, where = _negative_point(mask, parse, det)
        return {"bbox_2d": box, "point_2d": [int(px), int(py)], "neg_point_2d": neg, "_neg_where": where}

    def _fit_budget(self, lines: list[tuple[int, str]], request: ReasonRequest) -> str:
        """Join the reasoning lines, dropping the least important ones to fit the token budget."""
        limit = request.budget if request.budget is not None else max(request.max_new_tokens - 120, 32)
        for max_priority in (3, 2, 1):
            text = " ".join(t for p, t in lines if p <= max_priority)
            if len(_pieces(text)) <= limit:
                return text
        pieces = _pieces(" ".join(t for p, t in lines if p <= 1))
        return "".join(pieces[:limit]).rstrip() + " ..."


# --------------------------------------------------------------------------- helpers


def _answer(texts: list[str], prompt: str) -> ModelAnswer:
    """Answers of the symbolic model: word pieces stand for tokens; it looks at no vision tokens."""
    usage = Usage(new_tokens=[len(_pieces(t)) for t in texts], truncated=[False] * len(texts))
    return ModelAnswer(texts=list(texts), prompt=prompt, usage=usage)


def t_name(track: Track) -> str:
    return f"the {track.colour} {track.shape or 'shape'}"


def _span(track: Track, p: Perception) -> str:
    first, last = min(track.obs), max(track.obs)
    return f"{p.times[first]:.1f}-{p.times[last]:.1f} s"


def _gap_to_others(det: Detection, parse: FrameParse) -> float:
    """Smallest box-to-box gap (px) between a detection and the other detections of its frame."""
    gaps = []
    for o in parse.detections:
        if o.label == det.label:
            continue
        dx = max(o.bbox[0] - det.bbox[2], det.bbox[0] - o.bbox[2], 0)
        dy = max(o.bbox[1] - det.bbox[3], det.bbox[1] - o.bbox[3], 0)
        gaps.append(float(np.hypot(dx, dy)))
    return min(gaps) if gaps else np.inf


def _negative_point(mask: np.ndarray, parse: FrameParse, det: Detection) -> tuple[list[int], str]:
    """A point outside the target and at most 40 px from it: on the nearest other shape when one is
    that close (what the segmenter must exclude), else on the background just outside the target."""
    dist = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)  # distance to the target
    others = (parse.labels > 0) & ~mask
    near_other = others & (dist > 3) & (dist <= NEG_MAX_DISTANCE - 5)
    if near_other.any():
        # deep inside that other shape, but still within reach of the target
        depth = cv2.distanceTransform(np.pad(others, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
        score = np.where(near_other, depth - 0.05 * dist, -np.inf)
        y, x = np.unravel_index(int(np.argmax(score)), score.shape)
        label = int(parse.labels[y, x])
        other = next((o for o in parse.detections if o.label == label), None)
        name = f"the {other.colour} {other.shape or 'shape'}" if other else "another shape"
        return [int(x), int(y)], f"on {name} next to it"
    free = cv2.distanceTransform((parse.labels == 0).astype(np.uint8), cv2.DIST_L2, 5)
    ring = (dist >= 8) & (dist <= 14) & (parse.labels == 0)
    if not ring.any():
        ring = (dist > 2) & (dist <= NEG_MAX_DISTANCE) & ~mask
    score = np.where(ring, free, -np.inf)
    y, x = np.unravel_index(int(np.argmax(score)), score.shape)
    return [int(x), int(y)], "on the background just outside it"
