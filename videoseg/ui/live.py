"""Turning the pipeline's event stream into what the explorer shows, as the events arrive.

:class:`LiveView` is one consumer of the typed event stream (beside the CLI and the trace writer): it
folds each event into a :class:`~videoseg.core.state.RunState` and renders the Run tab's outputs from it:
the HTFS timeline (step 1), the sampled frames, the streamed reasoning and parsed cues (step 2), the
keyframe mask and the propagation filling in both directions (step 3), a per-stage panel and, at the
end, the downloads. A live run and a replayed trace go through exactly this code.

Rendering is incremental and throttled: each event marks what it changed; :meth:`LiveView.apply`
says whether an update is due (always on a stage's first event, so the stream shows every stage in
order; at most every ``min_interval`` seconds for token and mask streams); :meth:`LiveView.outputs`
re-renders only what changed and writes images to files (the UI is sent paths, not arrays).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from videoseg.core import events as ev
from videoseg.core.state import RunState
from videoseg.core.trace import TraceWriter
from videoseg.ui.text import code, html_text, md, pre
from videoseg.viz.overlay import (
    KEY_FRAME_COLOUR,
    REFERENCE_FRAME_COLOUR,
    TARGET_FRAME_COLOUR,
    contact_sheet,
    cues_legend_html,
    draw_cues,
    keyframe_overlay,
    mark_frame,
    overlay_masks,
)
from videoseg.viz.timeline import timeline_figure

STAGES = ("sampler", "difficulty", "reasoner", "segmenter", "propagator")
# Order in which a run's stages first show up; "done" / "error" close the stream.
STAGE_ORDER = ("run", "sampler", "reasoner", "segmenter", "propagator", "done")
OUTPUT_NAMES = (
    "status",
    "progress",
    "timeline",
    "gallery",
    "reasoning",
    "cues_image",
    "cues_legend",
    "keyframe_image",
    "strip",
    "video",
    "stages",
    "downloads",
)
STAGE_HEADERS = ["stage", "backend", "status", "s", "tokens", "frames"]
# The strip is shown about 300 px high: 5 rows of 12 tiles keep each tile's frame number (written
# under it, see contact_sheet) legible there; at 96 tiles in 8 rows the numbers were a few pixels.
MAX_TILES = 60
STRIP_COLUMNS = 12
TILE_WIDTH = 80
MAX_GALLERY = 48  # sampled frames shown at most (a real run shows about a dozen)
FRAME_CACHE = 16  # decoded frames kept (each up to 4096x2304x3 bytes)


class Skip:
    """Marker for "this output did not change" (the UI layer turns it into ``gr.skip()``)."""

    def __repr__(self) -> str:
        return "SKIP"


SKIP = Skip()


def strip_frames(num_frames: int, keyframe: int, max_tiles: int = MAX_TILES) -> list[int]:
    """Frames shown in the propagation strip: at most ``max_tiles``, evenly spread, keyframe included.

    When the keyframe is not one of the evenly spread frames it takes the place of the nearest one,
    so the sheet keeps whole rows (an extra tile would start a row of its own).
    """
    count = max(1, min(max_tiles, num_frames))
    frames = sorted({round(i * (num_frames - 1) / max(1, count - 1)) for i in range(count)})
    if 0 <= keyframe < num_frames and keyframe not in frames:
        nearest = min(range(len(frames)), key=lambda i: abs(frames[i] - keyframe))
        frames[nearest] = keyframe
        frames.sort()
    return frames


def _stage_of(event: ev.Event) -> str:
    if isinstance(event, ev.RunFinished):
        return "done"
    if isinstance(event, ev.StageTiming):
        return "reasoner" if event.for_stage == "difficulty" else event.for_stage
    return event.stage


def _fps(value: Any) -> float:
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def _write_image(path: Path, rgb: np.ndarray) -> str:
    params = [cv2.IMWRITE_JPEG_QUALITY, 88] if path.suffix == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params):
        raise OSError(f"could not write {path}")
    return str(path)


class LiveView:
    """Folds events and renders the Run tab's outputs into files under ``out_dir``.

    video: an opened video for pixels (None: a replay without its video; masks are drawn on a dark
    canvas of the recorded size). gt_present: optional per-frame ground-truth presence for the
    timeline. trace: write every event to ``out_dir/trace.jsonl`` (False when replaying a trace that
    is itself the record).
    """

    def __init__(
        self,
        out_dir: Path,
        video: Any | None = None,
        *,
        min_interval: float = 0.2,
        gt_present: Sequence[bool] | None = None,
        trace: bool = True,
        trace_source: Path | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.video = video
        self.state = RunState()
        self.min_interval = min_interval
        self.gt_present = list(gt_present) if gt_present is not None else None
        self.stage = "run"
        self.stages_seen: list[str] = []
        self.dirty: set[str] = set(OUTPUT_NAMES)
        self._last_emit = 0.0
        self._counter = 0
        self._frame_cache: dict[int, np.ndarray] = {}
        self._blank: np.ndarray | None = None
        self._tile_frames: list[int] = []
        self._tiles: list[np.ndarray] = []
        self._tile_done: list[bool] = []
        self._tile_of: dict[int, int] = {}
        self._stage_frames: dict[str, int] = {}
        self._stage_status: dict[str, str] = {}
        self._last_decoded = 0
        self._trace = TraceWriter(self.out_dir / "trace.jsonl") if trace else None
        if self._trace is not None:
            self._trace.open()
        self.trace_path = self.out_dir / "trace.jsonl" if trace else trace_source
        self.messages: list[str] = []  # user-facing notes added by the caller (e.g. a replay without video)
        self.final_files: list[str] = []
        self.ended = False  # the event source stopped (a truncated trace ends without RunFinished)

    # ------------------------------------------------------------------ folding

    def apply(self, event: ev.Event) -> bool:
        """Fold one event in; True when an update should be sent now."""
        self.state.apply(event)
        if self._trace is not None:
            self._trace.write(event)
        stage = _stage_of(event)
        new_stage = False
        if isinstance(event, ev.RunError) and event.fatal:
            stage = "error"
        if stage != "run" and stage != self.stage:
            if stage not in self.stages_seen:
                self.stages_seen.append(stage)
                new_stage = True
            self.stage = stage
        self._mark(event)
        if isinstance(event, ev.FramesDecoded):
            key = self.stage if self.stage in ("sampler", "reasoner") else "sampler"
            self._stage_frames[key] = self._stage_frames.get(key, 0) + max(
                0, event.total_decoded - self._last_decoded
            )
            self._last_decoded = max(self._last_decoded, event.total_decoded)
        important = not isinstance(
            event, (ev.ReasoningToken, ev.PropagatedMask, ev.FramesDecoded, ev.PromptShown)
        )
        now = time.monotonic()
        due = new_stage or important or now - self._last_emit >= self.min_interval
        if due:
            self._last_emit = now
        return due

    def _mark(self, e: ev.Event) -> None:
        d = self.dirty
        d.update(("status", "progress", "stages"))
        if isinstance(e, (ev.SamplerLevel, ev.SamplerPercent, ev.SamplerResult, ev.RunStarted)):
            d.add("timeline")
        if isinstance(e, ev.SamplerResult):
            d.add("gallery")
        if isinstance(e, (ev.ReasoningToken, ev.ReasoningDone, ev.DifficultyRated, ev.ParseError)):
            d.add("reasoning")
        if isinstance(e, (ev.CuesParsed, ev.ParseError)):
            d.update(("cues_image", "cues_legend", "keyframe_image"))
        if isinstance(e, ev.KeyframeMask):
            d.add("keyframe_image")
        if isinstance(e, ev.PropagationStarted):
            self._start_strip(e)
            d.add("strip")
        if isinstance(e, ev.PropagatedMask):
            tile = self._tile_of.get(e.frame_idx)
            if tile is not None:
                self._fill_tile(tile, e.frame_idx)
                d.add("strip")
        if isinstance(e, (ev.RunFinished, ev.RunError)) and (not isinstance(e, ev.RunError) or e.fatal):
            d.update(("video", "downloads", "strip"))

    @property
    def finished(self) -> bool:
        return self.ended or self.state.finished is not None or any(e.fatal for e in self.state.errors)

    def close(self) -> None:
        if self._trace is not None:
            self._trace.close()

    # ------------------------------------------------------------------ pixels

    def _size(self) -> tuple[int, int]:
        if self.video is not None:
            return tuple(self.video.size)  # type: ignore[return-value]
        v = self.state.video
        return int(v.get("width") or 320), int(v.get("height") or 240)

    def frames(self, indices: Sequence[int]) -> list[np.ndarray]:
        """RGB frames (the last few cached), or one shared dark canvas when there is no video (a
        trace replay). The cache is bounded: a trace may list thousands of frames to show."""
        missing = sorted({i for i in indices if i not in self._frame_cache})
        if missing:
            if self.video is not None:
                for i, frame in zip(missing, self.video.frames(missing)):
                    self._frame_cache[i] = frame
            else:
                canvas = self._canvas()
                for i in missing:
                    self._frame_cache[i] = canvas
        found = [self._frame_cache[i] for i in indices]
        while len(self._frame_cache) > FRAME_CACHE:
            self._frame_cache.pop(next(iter(self._frame_cache)))
        return found

    def _canvas(self) -> np.ndarray:
        """The dark frame a replay without its video draws on (read-only, shared by every frame)."""
        w, h = self._size()
        if self._blank is None or self._blank.shape[:2] != (h, w):
            self._blank = np.full((h, w, 3), 40, dtype=np.uint8)
            self._blank.flags.writeable = False
        return self._blank

    def _new_path(self, stem: str, suffix: str = ".png") -> Path:
        # A new name per render: browsers and Gradio's cache would otherwise show a stale image.
        self._counter += 1
        return self.out_dir / f"{stem}-{self._counter:05d}{suffix}"

    def _start_strip(self, e: ev.PropagationStarted) -> None:
        n = e.num_frames
        if n <= 0:
            return
        self._tile_frames = strip_frames(n, e.keyframe)
        self._tile_of = {f: i for i, f in enumerate(self._tile_frames)}
        w, h = self._size()
        tile_h = max(8, round(TILE_WIDTH * h / max(1, w)))
        self._tiles = []
        # a few frames at a time: 60 full frames at once would be 370 MB at 1080p
        for start in range(0, len(self._tile_frames), 8):
            chunk = self._tile_frames[start : start + 8]
            frames = self.video.frames(chunk) if self.video is not None else [self._canvas()] * len(chunk)
            self._tiles += [cv2.resize(f, (TILE_WIDTH, tile_h), interpolation=cv2.INTER_AREA) for f in frames]
        self._tile_done = [False] * len(self._tiles)

    def _fill_tile(self, tile: int, frame_idx: int) -> None:
        masks = self.state.masks[frame_idx]
        th, tw = self._tiles[tile].shape[:2]
        if masks.shape[0]:
            small = np.stack(
                [cv2.resize(m.astype(np.uint8), (tw, th), interpolation=cv2.INTER_NEAREST) > 0 for m in masks]
            )
            # with its outline: on an 80-pixel tile a small target's tint alone is hard to see
            self._tiles[tile] = overlay_masks(self._tiles[tile], small, alpha=0.55, contour=True)
        self._tile_done[tile] = True

    # ------------------------------------------------------------------ rendering

    def outputs(self) -> dict[str, Any]:
        """Every output by name; unchanged ones are :data:`SKIP`."""
        out: dict[str, Any] = {}
        for name in OUTPUT_NAMES:
            if name in self.dirty:
                out[name] = getattr(self, f"render_{name}")()
            else:
                out[name] = SKIP
        self.dirty.clear()
        return out

    def render_status(self) -> str:
        s = self.state
        lines = []
        status = s.status
        if status == "finished":
            f = s.finished
            if f.num_targets:
                lines.append(
                    f"### ✅ Done: {f.num_targets} target(s) on {f.num_frames} frames in {f.seconds:.2f} s"
                )
            else:  # a finished run that found nothing is not a success to celebrate: say why
                why = (
                    f"the reasoner's answer could not be read ({md(s.parse_error.message)})"
                    if s.parse_error is not None
                    else "the reasoner named no target; its reasoning (Stage 2) says why"
                )
                lines.append(
                    f"### ⚠️ Done, but no target found: {why}. The masks are empty on all "
                    f"{f.num_frames} frames ({f.seconds:.2f} s)."
                )
        elif status in ("error", "cancelled"):
            err = next(e for e in s.errors if e.fatal)
            head = "⏹ Cancelled" if status == "cancelled" else f"❌ The {md(err.for_stage)} stage failed"
            lines.append(f"### {head}\n\n{md(err.message)}")
        else:
            label = {
                "run": "starting",
                "sampler": "stage 1: choosing where to look (HTFS)",
                "reasoner": "stage 2: reasoning about the query",
                "segmenter": "stage 3a: keyframe mask",
                "propagator": "stage 3b: propagating the mask",
            }.get(self.stage, self.stage)
            # a source that stopped early (truncated trace) is not "running" any more
            head = "⚠️ Incomplete: the events stop at" if self.ended else "⏳ Running:"
            lines.append(f"### {head} {label}")
            done, total = s.progress
            if total:
                lines.append(f"Propagation: {done} / {total} frames")
        if s.video:
            v = s.video
            lines.append(
                f"Video: {md(v.get('num_frames'))} frames, {md(v.get('width'))}×{md(v.get('height'))}, "
                f"{_fps(v.get('fps')):.1f} fps · query: *{md(s.query)}* · "
                f"preset: {code(s.preset or 'custom')} · device: {code(s.device)}"
            )
        for w in s.warnings[-4:]:
            lines.append(f"⚠️ {md(w.for_stage)}: {md(w.message)}")
        lines.extend(self.messages)
        return "\n\n".join(lines)

    def render_progress(self) -> dict[str, Any]:
        s = self.state
        error = next((e.message for e in s.errors if e.fatal), None)
        return {
            "stage": self.stage,
            "stages_seen": list(self.stages_seen),
            "status": s.status,
            "events": s.num_events,
            "tokens": len(s.tokens),
            "propagated": list(s.progress),
            "target_frame": s.sampler_result.target_frame if s.sampler_result else None,
            "error": error,
        }

    def render_timeline(self) -> Any:
        s = self.state
        if not (s.sampler_levels or s.sampler_percent or s.sampler_result):
            return None
        return timeline_figure(
            s.sampler_levels,
            s.sampler_percent,
            s.sampler_result,
            num_frames=s.num_frames or None,
            fps=float(s.video.get("fps") or 1.0),
            gt_present=self.gt_present,
        )

    def render_gallery(self) -> list[tuple[str, str]]:
        r = self.state.sampler_result
        if r is None:
            return []
        refs = set(r.reference_frames)
        keys = set(r.key_frames)
        indices = sorted(keys | refs | {r.target_frame})
        if len(indices) > MAX_GALLERY:  # evenly spread, the target frame always among them
            step = len(indices) / MAX_GALLERY
            indices = sorted({indices[int(i * step)] for i in range(MAX_GALLERY - 1)} | {r.target_frame})
        items = []
        frames = (f for start in range(0, len(indices), 8) for f in self.frames(indices[start : start + 8]))
        for idx, frame in zip(indices, frames):
            if idx == r.target_frame:
                img, caption = mark_frame(frame, TARGET_FRAME_COLOUR), f"★ target frame {idx}"
            elif idx in refs:
                both = " (also key)" if idx in keys else ""
                img, caption = mark_frame(frame, REFERENCE_FRAME_COLOUR), f"◆ reference frame {idx}{both}"
            else:
                img, caption = mark_frame(frame, KEY_FRAME_COLOUR), f"key-segment frame {idx}"
            items.append((_write_image(self._new_path(f"sample-{idx}", ".png"), img), caption))
        return items

    def render_reasoning(self) -> str:
        s = self.state
        parts = []
        if s.difficulty is not None:
            d = s.difficulty
            scores = ", ".join(f"{md(k)} {v:g}" for k, v in d.scores.items())
            budget = "no budget" if d.budget is None else f"budget {d.budget} tokens"
            parts.append(f"**Difficulty** D = {d.difficulty:.1f} ({md(d.level)}; {scores}) → {budget}")
        if s.reasoning is None:
            if s.tokens:
                parts.append(f"**Reasoning** (streaming, {len(s.tokens)} tokens)\n\n{pre(s.text + '▌')}")
        else:
            r = s.reasoning
            cut = " — stopped by the budget cap" if r.truncated else ""
            parts.append(
                f"<details><summary><b>Thinking</b> ({r.think_tokens} of {r.num_tokens} tokens{cut}): "
                f"click to unfold</summary>\n\n{pre(r.think)}\n\n</details>"
            )
            # not a code fence: an answer holding ``` would end it and be read as Markdown
            parts.append(f"**Answer**\n\n{pre(r.answer.strip(), 'vs-reason vs-answer')}")
        if s.parse_error is not None:
            parts.append(
                f"⚠️ **The answer could not be read:** {md(s.parse_error.message)} "
                "(no cues, so the masks are empty)"
            )
        return "\n\n".join(parts)

    def _cue_frame(self) -> int | None:
        s = self.state
        if s.cues:
            return int(s.cues[0].get("frame_idx", s.keyframe or 0))
        if s.sampler_result is not None:
            return s.sampler_result.target_frame
        return None

    def render_cues_image(self) -> str | None:
        idx = self._cue_frame()
        if idx is None or self.state.cues is None:
            return None
        frame = self.frames([idx])[0]
        return _write_image(self._new_path(f"cues-{idx}"), draw_cues(frame, self.state.cues))

    def render_cues_legend(self) -> str:
        s = self.state
        if s.parse_error is not None and not s.cues:
            return "<p><em>No cues: the reasoner's answer could not be parsed.</em></p>"
        if s.cues is None:
            return ""
        used = html_text(", ".join(s.cues_used)) if s.cues_used else "all"
        return (
            cues_legend_html(s.cues, self._cue_frame()) + f"<p>Cue kinds given to the segmenter: {used}</p>"
        )

    def render_keyframe_image(self) -> str | None:
        s = self.state
        if not s.keyframe_masks:
            return self._render_no_keyframe_mask()
        first = next(iter(s.keyframe_masks.values()))
        idx = first.frame_idx
        frame = self.frames([idx])[0]
        from videoseg.core.masks import decode_rle

        masks = np.zeros((max(s.keyframe_masks) + 1, *frame.shape[:2]), dtype=bool)
        for target, e in s.keyframe_masks.items():
            masks[target] = decode_rle(e.rle)
        # the mask in front, its cues thin and hollow under it (the step 2 panel shows them in full)
        img = keyframe_overlay(frame, masks, [e.cues for e in s.keyframe_masks.values() if e.cues])
        return _write_image(self._new_path(f"keyframe-{idx}"), img)

    def _render_no_keyframe_mask(self) -> str | None:
        """The cue frame, labelled, when the reasoner gave no target (or no readable answer)."""
        s = self.state
        no_target = (s.cues is not None and not s.cues) or s.parse_error is not None
        idx = self._cue_frame()
        if not no_target or idx is None:
            return None
        frame = self.frames([idx])[0].copy()
        reason = "answer not readable" if s.parse_error is not None else "no target found"
        text = f"no mask: {reason}"
        scale = max(0.4, frame.shape[1] / 640)
        thickness = max(1, round(scale * 2))
        (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        cv2.rectangle(frame, (0, 0), (w + 12, h + base + 12), (0, 0, 0), -1)
        cv2.putText(frame, text, (6, h + 6), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness)
        return _write_image(self._new_path(f"keyframe-none-{idx}"), frame)

    def render_strip(self) -> str | None:
        if not self._tiles:
            return None
        key = self.state.keyframe
        highlight = self._tile_of.get(key)
        # the keyframe's tile says so (its label is yellow, like its border)
        labels = [f"{f} key" if f == key else str(f) for f in self._tile_frames]
        sheet = contact_sheet(
            self._tiles, self._tile_done, labels, highlight=highlight, columns=STRIP_COLUMNS, top_band=True
        )
        return _write_image(self._new_path("propagation", ".png"), sheet)

    def stage_rows(self) -> list[list[Any]]:
        s = self.state
        rows = []
        for stage in STAGES:
            backend = s.backends.get(stage)
            name = "" if backend is None else backend.name + ("" if backend.weights_free else " (model)")
            if backend is not None and backend.model_id:
                name += f": {backend.model_id}"  # sampler and reasoner may be different checkpoints
            if stage in s.timings:
                status = "done"
            elif any(e.fatal and e.for_stage == stage for e in s.errors):
                status = "stopped" if s.status == "cancelled" else "failed"
            elif self.stage == stage or (stage == "difficulty" and self.stage == "reasoner"):
                status = "stopped" if self.ended else "running"
            else:
                status = "—"
            seconds = round(s.timings[stage], 2) if stage in s.timings else None
            tokens: Any = None
            frames: Any = self._stage_frames.get(stage)
            if stage == "reasoner":
                tokens = s.reasoning.num_tokens if s.reasoning else len(s.tokens)
            calls = s.model_call_totals(stage)
            if calls["calls"]:  # what the stage's model calls cost, summed
                tokens = (
                    f"{calls['calls']} call{'s' if calls['calls'] > 1 else ''}: {calls['prompt_tokens']} in "
                    f"({calls['vision_tokens']} vision), {calls['new_tokens']} out"
                )
                if calls["peak_cuda_mb"] is not None:
                    tokens += f", peak {calls['peak_cuda_mb'] / 1024:.1f} GB"
            if stage == "segmenter":
                frames = 1 if s.keyframe_masks else None
            if stage == "propagator" and s.progress[1]:
                frames = f"{s.progress[0]}/{s.progress[1]}"
            rows.append([stage, name, status, seconds, tokens, frames])
        return rows

    def render_stages(self) -> list[list[Any]]:
        return self.stage_rows()

    def render_video(self) -> str | None:
        if not self.finished or not len(self.state.masks):
            return None
        return str(self.write_overlay_video())

    def render_downloads(self) -> list[str] | None:
        if not self.finished:
            return None
        files = []
        if len(self.state.masks):
            files.append(str(self.write_masks_zip()))
            overlay = self.out_dir / "overlay.mp4"
            if overlay.exists():
                files.append(str(overlay))
        files.append(str(self.write_cues_json()))
        self.close()
        if self.trace_path is not None and Path(self.trace_path).exists():
            files.append(str(self.trace_path))
        self.final_files = files
        return files

    # ------------------------------------------------------------------ final files

    def write_overlay_video(self) -> Path:
        # One writer for every artefact (videoseg.io.export): the explorer's look, a dark canvas
        # when a replayed trace's video is gone.
        from videoseg.io import export

        return export.write_overlay(self.out_dir / "overlay.mp4", self.state, self.video)

    def write_masks_zip(self) -> Path:
        from videoseg.io import export

        # A stopped run has frames without masks: they are written empty.
        paths = export.write_masks(self.out_dir / "masks", self.state, missing="empty")
        return export.zip_masks(self.out_dir / "masks", paths, self.out_dir / "masks.zip")

    def write_cues_json(self) -> Path:
        from videoseg.io import export

        return export.write_cues(self.out_dir / "cues.json", self.state)


def empty_outputs() -> dict[str, Any]:
    """Values that clear every output (the start of a new run)."""
    return {
        "status": "",
        "progress": {},
        "timeline": None,
        "gallery": [],
        "reasoning": "",
        "cues_image": None,
        "cues_legend": "",
        "keyframe_image": None,
        "strip": None,
        "video": None,
        "stages": [[s, "", "—", None, None, None] for s in STAGES],
        "downloads": None,
    }


__all__ = ["OUTPUT_NAMES", "SKIP", "STAGES", "STAGE_HEADERS", "LiveView", "empty_outputs"]
