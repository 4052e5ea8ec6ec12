"""``python -m videoseg run`` and ``replay``: the whole method from a terminal, and traces played back.

``run VIDEO QUERY --preset NAME --out DIR`` runs the three stages with a progress bar and writes
``DIR/masks/%05d.png`` (pixel = target index, 0 background, DAVIS palette), ``DIR/overlay.mp4``,
``DIR/cues.json`` and ``DIR/reasoning.txt``; ``--trace FILE`` records every event. ``replay TRACE``
prints a recorded run as a readable log and, with ``--out``, writes the same outputs from the trace
(the overlay needs the video the trace names).

Exit codes: 0 success, 1 the run (or the trace) ended in an error, 2 bad arguments, an unreadable
trace, or weights the configuration needs that are not here and cannot be downloaded (the hub is
unreachable: every missing checkpoint is named in one line before any stage runs, see
:mod:`videoseg.runtime.weights`). A run (or replayed trace) that finds no target still exits 0, with a
``warning:`` line on stderr saying so and why, when the events tell (an unreadable answer, a reasoner
that named no target, empty keyframe masks).

Nothing the user made is lost: output paths are checked before any model loads (a file where a
folder should be, a trace path that holds something other than a trace, such as the input video,
are refused). Every artefact is written by :mod:`videoseg.io.export` (one format each; the overlay
has the explorer's look), streamed while the run propagates: mask PNGs as their frames arrive, the
overlay in chunks. They go into a new folder beside ``--out`` that replaces it in one step when the
run ends (:class:`videoseg.io.outputs.FolderReplacement`): at every instant ``--out`` holds either
the complete earlier run or the complete new one, even when the process is killed; a failed run
leaves it untouched; the user's own files in it stay; no stale output of an earlier run survives.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from videoseg.core import events as ev
from videoseg.core.config import PRESETS, PROPAGATORS, SEGMENTERS, describe_presets, preset
from videoseg.core.state import RunState
from videoseg.io.export import OUTPUT_NAMES, RunExport, export_run
from videoseg.io.outputs import MASK_NAME, check_output_file, check_replaceable_dir, same_file
from videoseg.runtime import weights


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
        "--profile",
        default=None,
        help="how the reasoner is asked and answers: qwen2.5-vl | videoseg-r1 | visionreasoner | seg-zero "
        "(default: the preset's; --vlm changes only the weights, never the profile)",
    )
    p.add_argument(
        "--sampler-vlm",
        default=None,
        metavar="ID_OR_PATH",
        help="model asked the HTFS and difficulty questions when the profile is grounding-only "
        "(visionreasoner, seg-zero); default: the preset's (the base Qwen2.5-VL of the reasoner's size)",
    )
    p.add_argument(
        "--sam2", default=None, help="SAM2 hub id, local path or size (tiny/small/base-plus/large)"
    )
    p.add_argument("--segmenter", choices=list(SEGMENTERS), default=None)
    p.add_argument("--propagator", choices=list(PROPAGATORS), default=None)
    p.add_argument("--xmem", default=None, help="path of the XMem checkpoint (XMem.pth)")
    p.add_argument("--edgetam", default=None, help="EdgeTAM video hub id or local path (propagator edgetam)")
    p.add_argument(
        "--sam3", default=None, help="SAM 3 hub id or local path (propagator sam3-tracker, preset sam3-text)"
    )
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
    from videoseg.pipeline.orchestrator import run

    if args.preset not in PRESETS:
        print(f"error: unknown preset {args.preset!r}; known: {', '.join(PRESETS)}", file=sys.stderr)
        return 2
    overrides = {
        key: value
        for key, value in (
            ("vlm", args.vlm),
            ("profile", args.profile),
            ("sampler_vlm", args.sampler_vlm),
            ("sam2_model", args.sam2),
            ("segmenter", args.segmenter),
            ("propagator", args.propagator),
            ("xmem_checkpoint", args.xmem),
            ("edgetam_model", args.edgetam),
            ("sam3_model", args.sam3),
            ("device", args.device),
        )
        if value is not None
    }
    try:
        config = preset(args.preset, **overrides)
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # Output paths are checked before the run: a long run must not end in "cannot write".
    problem = check_replaceable_dir(args.out, "--out")
    if problem is None and same_file(args.out / "overlay.mp4", args.video):
        problem = f"--out {args.out} would overwrite the input video with overlay.mp4; choose another folder"
    if problem is None and args.trace is not None:
        problem = check_trace_target(args.trace, args.video)
        clash = _output_clash(args.trace, args.out)
        if problem is None and clash is not None:
            problem = f"--trace {args.trace} is {clash}, which the outputs replace; choose another trace path"
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    # Every checkpoint the stages need, named at once before any stage runs (and not one at a time
    # as each stage fails after the earlier ones ran) when they are missing and cannot be downloaded.
    refusal = weights.command_line_refusal(args.preset, config, with_options=True)
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return 2
    if args.trace is not None and args.trace.is_file() and args.trace.stat().st_size:
        print(f"note: replacing the earlier trace {args.trace}", file=sys.stderr)
    from videoseg.core.trace import TraceError, tee

    # The trace records the video's absolute path, so `replay` from another folder still finds it
    # for the overlay (a path relative to this run's working folder would not). The video is opened
    # once here and shared by the run and the overlay writer (opening counts every frame: on a long
    # video that pass is worth doing once); one that does not open is left to the run to report.
    video = _open_quietly(args.video.absolute())
    events: Iterable[ev.Event] = run(
        video if video is not None else args.video.absolute(), args.query, config, preset=args.preset
    )
    if args.trace is not None:
        events = tee(events, args.trace)
    state = RunState()
    try:
        # Outputs are written while the run goes on (mask PNGs as frames arrive, the overlay in
        # chunks), into a folder beside --out that replaces it only when the run has finished.
        with RunExport(args.out, video=video) as export:
            try:
                for event in _with_progress(events, quiet=args.quiet):
                    state.apply(event)
                    export.feed(event)
            except TraceError as exc:  # the trace became unwritable during the run (disk full...)
                print(f"error: {exc}", file=sys.stderr)
                export.abort()
                return 1
            return _finish(state, args.out, quiet=args.quiet, export=export)
    except OSError as exc:  # the folder beside --out could not be made (disk full, permissions)
        text = exc.strerror or str(exc)
        print(f"error: could not write outputs to {args.out}: {text}", file=sys.stderr)
        return 1
    finally:
        if video is not None:
            video.close()


def _open_quietly(path: Path) -> Any:
    """The opened video, or None when it does not open (the run then reports why, as its error)."""
    from videoseg.io.video import VideoError, open_video

    try:
        return open_video(path)
    except (VideoError, OSError, ValueError):
        return None


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
                if bar.n >= bar.total:  # later log lines must not redraw a finished bar
                    bar.close()
                    bar = None
            elif isinstance(event, ev.RunError) and event.fatal:
                pass  # _finish prints it: one error line, not two
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


def _finish(
    state: RunState,
    out: Path | None,
    quiet: bool,
    video_path: str | None = None,
    export: RunExport | None = None,
) -> int:
    """Report how the run ended and switch its outputs into ``out`` (the streamed ``export`` of a
    live run, or everything written now from the state of a replayed trace)."""
    fatal = [e for e in state.errors if e.fatal]
    if fatal:
        print(f"error [{fatal[0].for_stage}]: {fatal[0].message}", file=sys.stderr)
        if export is not None:
            export.abort()
        return 1
    if state.finished is None:
        print("error: the run ended without finishing (truncated trace?)", file=sys.stderr)
        if export is not None:
            export.abort()
        return 1
    # A run that finds nothing still worked (exit 0), but empty masks must not pass unnoticed.
    nothing = no_target_reason(state)
    if nothing is not None:
        print(f"warning: {nothing}", file=sys.stderr)
    if out is not None:
        try:
            if export is not None:
                notes = export.finish(state)
            else:
                notes = export_run(state, out, video_path=video_path)
        except Exception as exc:  # any failure: say it in one line; earlier outputs stay whole
            text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).strip("'\"")
            print(f"error: could not write outputs to {out}: {text or type(exc).__name__}", file=sys.stderr)
            return 1
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        if not quiet:
            print(f"wrote {out}")
    return 0


def no_target_reason(state: RunState) -> str | None:
    """Why a finished run's masks are empty on every frame, as far as the events tell; None when it
    found a target with a non-empty keyframe mask."""
    num_targets = state.finished.num_targets if state.finished is not None else state.num_targets
    if num_targets == 0:
        if state.parse_error is not None:
            return (
                "no target found: the reasoner's answer could not be read "
                f"({state.parse_error.message}); every mask is empty"
            )
        if state.cues == []:
            return "no target found: the reasoner named none for this query; every mask is empty"
        return "no target found; every mask is empty"
    if not _every_mask_empty(state):
        return None
    if state.keyframe_masks and all(m.area == 0 for m in state.keyframe_masks.values()):
        return (
            f"no target found: the reasoner named {num_targets} target(s) but the segmenter's keyframe "
            "masks are empty; every mask is empty"
        )
    return f"no target found: the reasoner named {num_targets} target(s) but every mask is empty"


def _every_mask_empty(state: RunState) -> bool:
    """Whether no frame's mask has a single pixel (read from the RLE counts, without decoding)."""
    from pycocotools import mask as coco_mask

    try:
        for idx in state.masks:
            for rle in state.masks.rles(idx):
                counts = rle["counts"]
                counts = counts.encode("ascii") if isinstance(counts, str) else counts
                if coco_mask.area({"size": list(rle["size"]), "counts": counts}) > 0:
                    return False
    except Exception:  # a damaged mask: writing the outputs names it; no guess here
        return False
    return True


# --------------------------------------------------------------------------- outputs


def check_trace_target(trace: Path, video: Path | None = None) -> str | None:
    """Why ``--trace`` may not be written: a folder, the input video, or a file that is not a trace."""
    if video is not None and same_file(trace, video):
        return f"--trace {trace} is the input video; choose another file for the trace"
    return check_output_file(trace, "--trace", keep_unless=looks_like_trace)


def looks_like_trace(path: Path) -> bool:
    """Whether the file starts like a trace (its first line a ``run_started`` event)."""
    try:
        with path.open("rb") as handle:
            first = handle.readline(1 << 20)
        data = json.loads(first.decode("utf-8-sig"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("type") == "run_started"


def _output_clash(path: Path, out: Path) -> str | None:
    """Which output of ``out`` the file ``path`` would be (so writing the outputs would destroy it)."""
    target = Path(os.path.abspath(path))
    out = Path(os.path.abspath(out))
    for name in OUTPUT_NAMES:
        if target == out / name:
            return f"{name} of --out"
    if target.parent == out / "masks" and MASK_NAME.fullmatch(target.name):
        return "a mask file of --out"
    return None


# --------------------------------------------------------------------------- replay


def _replay_main(args: argparse.Namespace) -> int:
    from videoseg.core.trace import TraceError, read_trace

    if args.out is not None:
        problem = check_replaceable_dir(args.out, "--out")
        if problem is not None:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    state = RunState()
    count = 0
    try:
        for event in read_trace(args.trace):
            count += 1
            # A trace is one run: it starts with run_started and holds no second one (two traces
            # concatenated would otherwise mix their masks).
            if count == 1 and not isinstance(event, ev.RunStarted):
                raise TraceError(
                    f"{args.trace}: a trace starts with a run_started event, this one with {event.type!r}; "
                    "its beginning is missing"
                )
            if count > 1 and isinstance(event, ev.RunStarted):
                raise TraceError(f"{args.trace}: event {count} starts a second run; give one run per trace")
            state.apply(event)
            if args.verbose or not isinstance(event, (ev.ReasoningToken, ev.PropagatedMask)):
                line = describe_event(event, verbose=args.verbose)
                if line:
                    print(line)
    except TraceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if count == 0:
        print(f"error: {args.trace} holds no events (an empty trace)", file=sys.stderr)
        return 2
    return _finish(state, args.out, quiet=False)


def describe_event(event: ev.Event, verbose: bool = False) -> str | None:
    """One readable log line for an event (None for events not worth a line)."""
    e: Any = event
    if isinstance(e, ev.RunStarted):
        v = e.video
        if v.get("num_frames") is None:  # the video did not open: the error follows
            return f"run: {e.query!r} on {v.get('path')}, preset {e.preset}, device {e.device}"
        size = f"{v.get('width')}x{v.get('height')}" if v.get("width") else "?"
        fps = v.get("fps")
        # A hand-edited trace may hold anything in this free-form dict: format numbers only.
        fps_text = f"{fps:.3g}" if isinstance(fps, (int, float)) and not isinstance(fps, bool) else "?"
        return (
            f"run: {e.query!r} on {v.get('path')} ({v.get('num_frames', '?')} frames, {size}, "
            f"{fps_text} fps), preset {e.preset}, device {e.device}"
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
    if isinstance(e, ev.ModelCall):
        level = "" if e.level is None else f" level {e.level}"
        cut = f", {e.truncated} cut at {e.max_new_tokens}" if e.truncated else ""
        prompt = f"{e.prompt_tokens} prompt tokens ({e.vision_tokens} vision), " if e.prompt_tokens else ""
        return (
            f"  model call ({e.purpose}{level}): {e.num_sequences} sequence(s), {prompt}"
            f"{sum(e.new_tokens)} new{cut}, {e.seconds:.2f} s"
        )
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


__all__ = ["add_parser", "describe_event", "no_target_reason"]
