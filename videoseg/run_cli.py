"""``python -m videoseg run`` and ``replay``: the whole method from a terminal, and traces played back.

``run VIDEO QUERY --preset NAME --out DIR`` runs the three stages with a progress bar and writes
``DIR/masks/%05d.png`` (pixel = target index, 0 background, DAVIS palette), ``DIR/overlay.mp4``,
``DIR/cues.json`` and ``DIR/reasoning.txt``; ``--trace FILE`` records every event. ``replay TRACE``
prints a recorded run as a readable log and, with ``--out``, writes the same outputs from the trace
(the overlay needs the video the trace names).

Exit codes: 0 success, 1 the run (or the trace) ended in an error, 2 bad arguments or unreadable trace.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from videoseg import events as ev
from videoseg.config import PRESETS, describe_presets, preset
from videoseg.state import RunState

OVERLAY_ALPHA = 0.5


def add_parser(subparsers: Any) -> None:
    """Register ``run`` and ``replay`` on the ``python -m videoseg`` subcommand parser."""
    p = subparsers.add_parser(
        "run",
        help="segment what a query refers to in a video (all three stages)",
        description="Run HTFS -> reasoner -> keyframe mask -> propagation and write masks, overlay, cues.",
        epilog="presets:\n" + describe_presets(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("video", type=Path, help="video file (mp4, avi, mov, ...)")
    p.add_argument(
        "query", help="what to segment, e.g. 'the circle that appears after the red square turns left'"
    )
    p.add_argument("--preset", default="shapes", help="named configuration (listed below); default: shapes")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--trace", type=Path, default=None, help="also record every event to this JSON Lines file")
    p.add_argument("--vlm", default=None, help="reasoner: shapes | manual | Qwen2.5-VL hub id or local path")
    p.add_argument(
        "--sam2", default=None, help="SAM2 hub id, local path or size (tiny/small/base-plus/large)"
    )
    p.add_argument("--segmenter", choices=["sam2", "grabcut", "sam2-official"], default=None)
    p.add_argument("--propagator", choices=["xmem", "sam2", "flow"], default=None)
    p.add_argument("--xmem", default=None, help="path of the XMem checkpoint (XMem.pth)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no log")
    p.set_defaults(func=_run_main)

    r = subparsers.add_parser(
        "replay",
        help="print a recorded trace as a log (and optionally write its outputs)",
        description="Replay a trace file recorded with `run --trace` or the explorer.",
    )
    r.add_argument("trace", type=Path, help="trace file (JSON Lines)")
    r.add_argument("--out", type=Path, default=None, help="write masks / overlay / cues / reasoning here")
    r.add_argument("--verbose", action="store_true", help="also list every propagated frame and token")
    r.set_defaults(func=_replay_main)


# --------------------------------------------------------------------------- run


def _run_main(args: argparse.Namespace) -> int:
    from videoseg.pipeline import run

    if args.preset not in PRESETS:
        print(f"error: unknown preset {args.preset!r}; known: {', '.join(PRESETS)}", file=sys.stderr)
        return 2
    overrides = {
        key: value
        for key, value in (
            ("vlm", args.vlm),
            ("sam2_model", args.sam2),
            ("segmenter", args.segmenter),
            ("propagator", args.propagator),
            ("xmem_checkpoint", args.xmem),
            ("device", args.device),
        )
        if value is not None
    }
    try:
        config = preset(args.preset, **overrides)
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    events: Iterable[ev.Event] = run(args.video, args.query, config, preset=args.preset)
    if args.trace is not None:
        from videoseg.trace import tee

        events = tee(events, args.trace)
    state = RunState()
    for event in _with_progress(events, quiet=args.quiet):
        state.apply(event)
    return _finish(state, args.out, quiet=args.quiet)


def _with_progress(events: Iterable[ev.Event], quiet: bool) -> Iterator[ev.Event]:
    """Pass events through, showing a tqdm bar over propagation and a log line per decision."""
    if quiet:
        yield from events
        return
    from tqdm import tqdm

    bar: Any = None
    try:
        for event in events:
            if isinstance(event, ev.PropagationStarted):
                bar = tqdm(total=event.num_frames, desc="propagating", unit="frame", file=sys.stderr)
            elif isinstance(event, ev.PropagatedMask) and bar is not None:
                bar.update(1)
            elif not isinstance(event, ev.ReasoningToken):
                line = describe_event(event)
                if line and bar is not None:
                    bar.write(line, file=sys.stderr)
                elif line:
                    print(line, file=sys.stderr)
            yield event
    finally:
        if bar is not None:
            bar.close()


def _finish(state: RunState, out: Path | None, quiet: bool, video_path: str | None = None) -> int:
    fatal = [e for e in state.errors if e.fatal]
    if fatal:
        print(f"error [{fatal[0].for_stage}]: {fatal[0].message}", file=sys.stderr)
        return 1
    if state.finished is None:
        print("error: the run ended without finishing (truncated trace?)", file=sys.stderr)
        return 1
    if out is not None:
        try:
            notes = write_outputs(state, out, video_path=video_path)
        except (OSError, ValueError, KeyError) as exc:
            print(f"error: could not write outputs to {out}: {exc}", file=sys.stderr)
            return 1
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        if not quiet:
            print(f"wrote {out}")
    return 0


# --------------------------------------------------------------------------- outputs


def write_outputs(state: RunState, out: Path, video_path: str | None = None) -> list[str]:
    """Write masks/, overlay.mp4, cues.json and reasoning.txt of a finished run; returns notes.

    The overlay needs the video's frames: ``video_path`` or the path the run recorded. When neither
    opens, the overlay is skipped and a note says why.
    """
    from videoseg.video import VideoError, open_video, write_mask_pngs, write_mp4

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_mask_pngs(out / "masks", state.iter_label_maps())
    cues = {
        "query": state.query,
        "frame_idx": state.keyframe,
        "targets": state.cues or [],
        "used": state.cues_used,
        "parse_error": None if state.parse_error is None else state.parse_error.message,
        "keyframe_scores": [state.keyframe_masks[k].score for k in sorted(state.keyframe_masks)],
    }
    (out / "cues.json").write_text(json.dumps(cues, indent=2), encoding="utf-8")
    reasoning = state.reasoning.raw_text if state.reasoning is not None else state.text
    (out / "reasoning.txt").write_text(reasoning, encoding="utf-8")

    notes: list[str] = []
    path = video_path or state.video.get("path")
    if not path:
        return [*notes, "no video path recorded: overlay.mp4 not written"]
    try:
        video = open_video(path)
    except (VideoError, OSError) as exc:
        return [*notes, f"overlay.mp4 not written: {exc}"]
    with video:
        if len(video) != state.num_frames:
            return [
                *notes,
                f"overlay.mp4 not written: {path} has {len(video)} frames, the run {state.num_frames}",
            ]
        frames = (overlay(frame, state.label_map(idx)) for idx, frame in video.iter_frames())
        write_mp4(out / "overlay.mp4", frames, video.fps)
    return notes


def overlay(frame: np.ndarray, labels: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """Blend each target's colour (DAVIS palette, target i -> colour i + 1) over an RGB frame."""
    from videoseg.video import davis_palette

    if not labels.any():
        return frame
    colours = davis_palette().astype(np.float32)
    out = frame.astype(np.float32)
    fg = labels > 0
    out[fg] = (1 - alpha) * out[fg] + alpha * colours[labels[fg]]
    return out.round().astype(np.uint8)


# --------------------------------------------------------------------------- replay


def _replay_main(args: argparse.Namespace) -> int:
    from videoseg.trace import TraceError, read_trace

    state = RunState()
    try:
        for event in read_trace(args.trace):
            state.apply(event)
            if args.verbose or not isinstance(event, (ev.ReasoningToken, ev.PropagatedMask)):
                line = describe_event(event, verbose=args.verbose)
                if line:
                    print(line)
    except TraceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return _finish(state, args.out, quiet=False)


def describe_event(event: ev.Event, verbose: bool = False) -> str | None:
    """One readable log line for an event (None for events not worth a line)."""
    e: Any = event
    if isinstance(e, ev.RunStarted):
        v = e.video
        size = f"{v.get('width')}x{v.get('height')}" if v.get("width") else "?"
        return (
            f"run: {e.query!r} on {v.get('path')} ({v.get('num_frames', '?')} frames, {size}, "
            f"{v.get('fps', 0) or 0:.3g} fps), preset {e.preset}, device {e.device}"
        )
    if isinstance(e, ev.BackendInfo):
        kind = "weights-free" if e.weights_free else f"model {e.model_id}"
        return f"  {e.for_stage:<10} {e.name} ({kind}): {e.description}"
    if isinstance(e, ev.SamplerLevel):
        parsed = sum(iv is not None for iv in e.intervals)
        return (
            f"sampler level {e.level}: window {e.window}, {parsed}/{len(e.intervals)} intervals parsed "
            f"-> key segment {e.mean_interval}{' (zoom)' if e.zoom else ''}"
        )
    if isinstance(e, ev.SamplerPercent):
        fb = " (fallback)" if e.fallback else ""
        return f"sampler percent: mean {e.mean_percent:.3f}{fb} in {e.key_segment} -> target frame {e.target_frame}"
    if isinstance(e, ev.SamplerResult):
        return (
            f"sampler [{e.strategy}]: target frame {e.target_frame}, key segment {e.key_segment}, "
            f"key frames {e.key_frames}, reference frames {e.reference_frames}"
        )
    if isinstance(e, ev.FramesDecoded):
        return (
            f"  decoded {len(e.frame_indices)} frame(s) for {e.purpose} (total {e.total_decoded})"
            if verbose
            else None
        )
    if isinstance(e, ev.PromptShown):
        return f"  prompt ({e.purpose}): {e.text}" if verbose else None
    if isinstance(e, ev.DifficultyRated):
        return f"difficulty D={e.difficulty:.2f} ({e.level}), budget {e.budget}"
    if isinstance(e, ev.ReasoningToken):
        return f"  token {e.index}: {e.text!r}"
    if isinstance(e, ev.ReasoningDone):
        cut = " (truncated)" if e.truncated else ""
        return f"reasoning ({e.num_tokens} tokens, {e.think_tokens} thinking){cut}:\n{e.raw_text}"
    if isinstance(e, ev.CuesParsed):
        return f"cues on frame {e.frame_idx} (using {', '.join(e.used)}): {json.dumps(e.targets)}"
    if isinstance(e, ev.ParseError):
        return f"parse error: {e.message} -> no cues, empty masks"
    if isinstance(e, ev.KeyframeMask):
        return f"keyframe mask target {e.target}: {e.area} px, score {e.score:.3f}"
    if isinstance(e, ev.PropagationStarted):
        return f"propagating from frame {e.keyframe} over {e.num_frames} frames, {e.num_targets} target(s)"
    if isinstance(e, ev.PropagatedMask):
        return f"  frame {e.frame_idx} ({e.direction}) {e.done}/{e.total}"
    if isinstance(e, ev.StageTiming):
        return f"  {e.for_stage} took {e.seconds:.2f} s"
    if isinstance(e, ev.RunWarning):
        return f"warning [{e.for_stage}]: {e.message}"
    if isinstance(e, ev.RunError):
        return f"error [{e.for_stage}]: {e.message}"
    if isinstance(e, ev.RunFinished):
        return f"finished: {e.num_frames} frames, {e.num_targets} target(s) in {e.seconds:.2f} s"
    return None


__all__ = ["add_parser", "describe_event", "overlay", "write_outputs"]
