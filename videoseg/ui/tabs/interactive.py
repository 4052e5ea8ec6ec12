"""The Interactive tab: correct a failure by hand (the user takes the reasoner's place, paper step 2).

Pick a frame, click positive / negative points or two corners of a box per target, then re-segment
that frame with the preset's segmenter (step 3a, API ``resegment``: the backend is called directly)
and re-propagate to the whole video with the preset's propagator (step 3b, API ``repropagate``: the
whole pipeline runs with the ``manual`` reasoner and the clicked cues, so the result has the same
view, downloads and trace as any run).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import cv2
import gradio as gr
import numpy as np

from videoseg.core import limits
from videoseg.core.cues import BOX_KEYS, NEG_KEYS, POINT_KEYS, TargetCues
from videoseg.ui.common import (
    AppContext,
    drive,
    file_path,
    session_hash,
    stamped,
    started_at,
    stopped_note,
    until_stopped,
    wire_stop,
)
from videoseg.ui.live import SKIP, LiveView
from videoseg.ui.runner import check_preset, check_query, pipeline_events, preset_choices
from videoseg.ui.session import UploadError
from videoseg.ui.text import html_text, md, warn
from videoseg.viz.overlay import cues_legend_html, draw_cues, keyframe_overlay

MODES = ("positive point", "negative point", "box (2 clicks)")
MAX_TARGETS = 8  # targets one can click (the "Target number" field's range)
# Interactive has no examples of its own; it can take the Run tab's video (see build_interactive_tab).
MISSING_VIDEO = "upload one, or press “Use the Run tab's video”"
STREAM_OUTPUTS = ("status", "keyframe_image", "strip", "video", "downloads")


CUE_KEYS = frozenset(("obj_id", "frame_idx", *BOX_KEYS, *POINT_KEYS, *NEG_KEYS))


def parse_cues(text: str | None, frame_idx: int, size: tuple[int, int] | None = None) -> list[TargetCues]:
    """The cues JSON (a list of TargetCues dicts) moved to ``frame_idx``; ValueError with the reason.

    ``size`` (width, height) of the frame: a typed box with no area inside it, or a point farther
    outside than the pipeline tolerates (:meth:`TargetCues.clipped`), is an error here rather than
    a cue silently dropped (and a "re-segmented, 0 px" result)."""
    if text is not None and not isinstance(text, str):
        raise ValueError(f"the cues must be JSON text, not {type(text).__name__}")
    if not text or not text.strip():
        return []
    try:
        # bounded before anything is built from it: length, values, nesting, number sizes
        data = limits.parse_json(text, "the cues", max_chars=limits.MAX_CUES_CHARS, max_depth=4)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the cues are not valid JSON ({exc.msg})") from exc
    except limits.TooLarge as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(data, list):
        raise ValueError("the cues must be a JSON list of targets")
    if len(data) > MAX_TARGETS:
        raise ValueError(f"the cues list {len(data)} targets; at most {MAX_TARGETS} can be given")
    out = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise ValueError(f"cue {i + 1} is not an object")
        unknown = [k for k in item if k not in CUE_KEYS]
        if unknown:  # a misspelt key would silently drop its cue
            raise ValueError(
                f"cue {i + 1}: unknown key {unknown[0]!r}; use box [x1, y1, x2, y2], point [x, y], "
                "negatives [[x, y], ...] (or the model's bbox_2d, point_2d, neg_point_2d) and obj_id"
            )
        try:
            c = TargetCues.from_dict(item)
            # from_dict reads an item without a "box" key in the model's format and numbers it 1;
            # keep the target number typed by hand, else number the targets in order.
            c.obj_id = int(item["obj_id"]) if item.get("obj_id") is not None else i + 1
        except (TypeError, ValueError, KeyError, IndexError, OverflowError) as exc:
            raise ValueError(f"cue {i + 1}: {exc}") from exc
        # Target numbers index the mask stack: 0, negative or huge ones (typed by hand) would fail
        # or allocate a mask per number up to them.
        if not 1 <= c.obj_id <= MAX_TARGETS:
            raise ValueError(f"cue {i + 1}: the target number must be 1 to {MAX_TARGETS}, not {c.obj_id}")
        if len(c.negatives) > limits.MAX_NEGATIVES:
            raise ValueError(
                f"cue {i + 1}: {len(c.negatives)} negative points; at most {limits.MAX_NEGATIVES} can be given"
            )
        numbers = [*(c.box or []), *(c.point or []), *(v for p in c.negatives for v in p)]
        if any(abs(v) > limits.MAX_ABS_COORD for v in numbers):
            raise ValueError(f"cue {i + 1}: a coordinate beyond ±{limits.MAX_ABS_COORD:g} pixels is no pixel")
        if any(o.obj_id == c.obj_id for o in out):
            raise ValueError(f"cue {i + 1}: target {c.obj_id} is given twice; merge its cues into one")
        c.frame_idx = frame_idx
        if size is not None and c.clipped(*size).count() < c.count():
            width, height = size
            raise ValueError(
                f"cue {i + 1}: {_outside(c, width, height)} outside the {width}×{height} frame "
                f"(x 0 to {width - 1}, y 0 to {height - 1}); correct or remove it"
            )
        out.append(c)
    return out


def _outside(c: TargetCues, width: int, height: int) -> str:
    """Which of ``c``'s cues :meth:`TargetCues.clipped` would drop, e.g. "the point [5000, -20] is"."""
    kept = c.clipped(width, height)

    def xy(p: list[float]) -> str:
        return f"[{p[0]:g}, {p[1]:g}]"

    if c.box is not None and kept.box is None:
        return f"the box [{', '.join(f'{v:g}' for v in c.box)}] is"
    if c.point is not None and kept.point is None:
        return f"the point {xy(c.point)} is"
    dropped = [p for p in c.negatives if TargetCues(negatives=[p]).clipped(width, height).count() == 0]
    return f"the negative point{'s' if len(dropped) > 1 else ''} {', '.join(map(xy, dropped))} " + (
        "are" if len(dropped) > 1 else "is"
    )


def add_click(
    cues: list[TargetCues],
    mode: str,
    target: int,
    x: float,
    y: float,
    pending: list[float] | None,
    frame_idx: int,
) -> tuple[list[TargetCues], list[float] | None]:
    """Apply one click: returns the new cues and the pending first box corner (or None)."""
    target = min(max(1, int(target)), MAX_TARGETS)
    by_id = {c.obj_id: c for c in cues}
    c = by_id.get(target) or TargetCues(obj_id=target, frame_idx=frame_idx)
    if mode == MODES[0]:
        c.point = [x, y]
    elif mode == MODES[1]:
        c.negatives = [*c.negatives, [x, y]]
    elif mode == MODES[2]:
        if pending is None:
            return cues, [x, y]
        c.box = [min(pending[0], x), min(pending[1], y), max(pending[0], x), max(pending[1], y)]
        pending = None
    else:
        raise ValueError(f"unknown click mode {mode!r}")
    c.__post_init__()
    by_id[target] = c
    return [by_id[k] for k in sorted(by_id)], pending


def _dump(cues: list[TargetCues]) -> str:
    return json.dumps([c.to_dict() for c in cues])


def frame_index(value: Any, num_frames: int) -> int:
    """The frame number the caller gave, checked: a whole number from 0 to ``num_frames - 1``.

    The slider keeps the page within range; an API caller (or a stale slider) is told, instead of
    the work silently running on another frame."""
    try:
        number = float(value if value is not None else 0)
    except (TypeError, ValueError):
        raise UploadError(f"The frame must be a number, not {value!r}.") from None
    if not number.is_integer():
        raise UploadError(f"The frame must be a whole number, not {number:g}.")
    if not 0 <= number < num_frames:
        raise UploadError(
            f"Frame {number:g} does not exist: the video has {num_frames} frames (0 to {num_frames - 1})."
        )
    return int(number)


def _frame(ctx: AppContext, video: Any, frame_idx: Any, strict: bool = False) -> tuple[np.ndarray, int]:
    """(frame, its index); ``strict``: an index outside the video is an error, else it is clamped
    (the frame view follows a slider that may still hold the previous video's range)."""
    with ctx.caps.open(file_path(video), MISSING_VIDEO) as v:
        if strict:
            idx = frame_index(frame_idx, len(v))
        else:
            idx = min(max(int(float(frame_idx or 0)), 0), len(v) - 1)
        return v.frames([idx])[0], idx


def _save(ctx: AppContext, request: gr.Request | None, name: str, rgb: np.ndarray) -> str:
    folder = ctx.store.session_dir(session_hash(request)) / "interactive"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}-{np.random.default_rng().integers(1 << 30)}.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return str(path)


def draw_frame(
    ctx: AppContext,
    video: Any,
    frame_idx: float,
    cues_json: str,
    pending: Any,
    request: gr.Request | None = None,
) -> tuple[Any, str]:
    """(image of the frame with its cues drawn, cue legend HTML); a message and no new image on error."""
    try:
        img, idx = _frame(ctx, video, int(frame_idx or 0))
        parsed = parse_cues(cues_json, idx, (img.shape[1], img.shape[0]))
    except (UploadError, ValueError) as exc:
        return gr.skip(), f"<p>❌ {html_text(exc)}</p>"
    return _save(ctx, request, f"frame-{idx}", draw_cues(img, parsed, pending)), cues_legend_html(parsed, idx)


def load_video(
    ctx: AppContext, video: Any, request: gr.Request | None = None
) -> tuple[Any, Any, Any, str, None]:
    """(frame slider update, first frame image, cues, status, pending corner) for a new video."""
    if file_path(video) is None:
        # the video was cleared: drop its frame so that no click lands on a picture of nothing
        return gr.skip(), None, gr.skip(), f"No video: {MISSING_VIDEO}.", None
    try:
        meta = ctx.caps.check_video(file_path(video), MISSING_VIDEO)
    except UploadError as exc:
        return gr.skip(), gr.skip(), gr.skip(), f"❌ {md(exc, code_spans=True)}", None
    n = int(meta["num_frames"])
    img, _ = draw_frame(ctx, video, 0, "[]", None, request)
    # Gradio refuses a slider whose maximum equals its minimum: a 1-frame video gets 0..1, locked.
    slider = gr.update(maximum=max(1, n - 1), value=0, interactive=n > 1)
    return slider, img, "[]", f"{n} frame{'s' if n != 1 else ''} loaded: click on the frame.", None


def resegment(
    ctx: AppContext,
    video: Any,
    frame_idx: float,
    cues_json: str,
    preset_name: str,
    request: gr.Request | None = None,
) -> tuple[str | None, str]:
    """(image of the new keyframe mask with its cues, status Markdown)."""
    try:
        preset_name = check_preset(preset_name, ("segmenter",))  # the cues are typed: no reasoner
        frame, idx = _frame(ctx, video, frame_idx, strict=True)
        cues = parse_cues(cues_json, idx, (frame.shape[1], frame.shape[0]))
        if not cues or all(c.is_empty for c in cues):
            raise UploadError("No cues yet: click on the frame to add a point or a box first.")
    except (UploadError, ValueError) as exc:
        warn(str(exc))
        return gr.skip(), f"❌ {md(exc, code_spans=True)}"
    from videoseg.core.config import preset
    from videoseg.core.state import RunState
    from videoseg.core.trace import write_trace
    from videoseg.pipeline.resegment import resegment as resegment_events

    # The correction runs as an event stream like a run, and is recorded as a trace beside the
    # session's other runs (issue 11: nothing bypasses the stream).
    height, width = frame.shape[:2]
    clipped = [c.clipped(width, height) for c in cues]
    with ctx.caps.open(file_path(video), MISSING_VIDEO) as opened:
        events = list(resegment_events(opened, idx, clipped, preset(preset_name), preset=preset_name))
    write_trace(ctx.store.new_run_dir(session_hash(request), "resegment") / "trace.jsonl", events)
    state = RunState.from_events(events)
    if state.errors:
        error = state.errors[-1]
        warn(error.message)
        return gr.skip(), f"❌ The segmenter could not run: {md(error.message)}"
    masks = state.keyframe_mask_array(height, width)
    img = keyframe_overlay(frame, masks, cues)  # the mask in front: small targets stay visible
    segmenter = state.backends["segmenter"].name
    scores = ", ".join(
        f"target {k.target + 1}: score {k.score:.2f}, {k.area} px"
        for k in sorted(state.keyframe_masks.values(), key=lambda k: k.target)
        if any(c.obj_id == k.target + 1 for c in cues)
    )
    return _save(
        ctx, request, f"reseg-{idx}", img
    ), f"✅ Frame {idx} re-segmented with `{segmenter}`: {scores}"


def repropagate_stream(
    ctx: AppContext,
    video: Any,
    query: str | None,
    frame_idx: float,
    cues_json: str,
    preset_name: str,
    request: gr.Request | None = None,
    clicked: float | None = None,
) -> Iterator[list[Any]]:
    """Streams [status, keyframe image, propagation strip, overlay video, downloads].

    The tab's Stop (:func:`~videoseg.ui.common.wire_stop`, for "re-propagation") ends it as
    cancelled at its next event, as the Run tab's Stop ends a run; what it showed stays.
    ``clicked``: when Re-propagate was pressed (a Stop since then, even while it waited in the
    queue, stops it)."""
    started = started_at(clicked)
    cancel = threading.Event()
    skip = gr.skip()
    try:
        # the query is only recorded in the trace, but it is checked like every tab's, before any work
        query = check_query(query, required=False)
        preset_name = check_preset(preset_name, ("segmenter", "propagator"))
        path = file_path(video)
        opened = ctx.caps.open(path, MISSING_VIDEO)
    except UploadError as exc:
        warn(str(exc))
        yield [f"❌ {md(exc, code_spans=True)}", skip, skip, skip, skip]
        return
    try:
        try:
            idx = frame_index(frame_idx, len(opened))
            cues = parse_cues(cues_json, idx, tuple(opened.size))
            if not cues or all(c.is_empty for c in cues):
                raise ValueError("No cues yet: click on the frame to add a point or a box first.")
        except ValueError as exc:
            warn(str(exc))
            yield [f"❌ {md(exc, code_spans=True)}", skip, skip, skip, skip]
            return
        session = session_hash(request)
        view = LiveView(ctx.store.new_run_dir(session, "interactive"), opened)
        overrides = {"vlm": "manual", "manual_cues": [c.to_dict() for c in cues], "rate_difficulty": False}
        text = query or "(manual cues)"
        events = pipeline_events(str(path), text, preset_name, overrides, len(opened), cancel, opened=opened)
        watched = until_stopped(
            events,
            lambda: ctx.stop_requested(session, started, "re-propagation"),
            cancel,
            view,
            stopped_note("re-propagation", "Re-propagate"),
        )
        for values in drive(view, watched):
            r = view.state.sampler_result
            if (
                r is not None
                and r.target_frame != idx
                and not any("clicked frame" in m for m in view.messages)
            ):
                view.messages.append(
                    f"⚠️ The pipeline placed the cues on frame {r.target_frame}, not on the "
                    f"clicked frame {idx}."
                )
                values["status"] = view.render_status()
            yield [skip if values[n] is SKIP else values[n] for n in STREAM_OUTPUTS]
    finally:
        cancel.set()  # a stream closed early (page left) stops the pipeline too
        opened.close()


def build_interactive_tab(ctx: AppContext, run_inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    gr.Markdown(
        "Correct a run by hand: pick a frame, click points or a box for each target, re-segment, "
        "then re-propagate. Colours follow the target number."
    )
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=280):
            video = gr.Video(label="Video", sources=["upload"], height=220, elem_id="interactive-video")
            copy_btn = gr.Button("Use the Run tab's video", size="sm")
            preset = gr.Dropdown(
                choices=preset_choices(),
                value="shapes",
                label="Preset (its segmenter + propagator)",
                allow_custom_value=True,
            )
            query = gr.Textbox(label="Query (only recorded in the trace)", value="")
            frame = gr.Slider(
                0,
                max(1, ctx.caps.max_frames - 1),
                value=0,
                step=1,
                label="Frame",
                elem_id="interactive-frame",
            )
            mode = gr.Radio(list(MODES), value=MODES[0], label="Click adds")
            target = gr.Number(value=1, precision=0, minimum=1, maximum=MAX_TARGETS, label="Target number")
            cues = gr.Textbox(label="Cues (JSON; edited by clicks, or by hand)", value="[]", lines=3)
            legend = gr.HTML("")
            with gr.Row():
                undo_btn = gr.Button("Clear cues", size="sm")
                seg_btn = gr.Button("Re-segment", variant="primary", elem_id="resegment-button")
                prop_btn = gr.Button("Re-propagate", variant="primary", elem_id="repropagate-button")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="repropagate-stop")
        with gr.Column(scale=3, min_width=360):
            image = gr.Image(
                label="Click on the frame", type="filepath", interactive=False, elem_id="click-image"
            )
            status = gr.Markdown("")
            key_image = gr.Image(label="Keyframe mask", type="filepath", interactive=False, height=260)
    with gr.Row(equal_height=False):
        strip = gr.Image(label="Propagation", type="filepath", interactive=False)
        out_video = gr.Video(label="Overlay", interactive=False, height=280)
    downloads = gr.File(label="Downloads", file_count="multiple", interactive=False)
    pending = gr.State(None)

    def draw(
        video_value: Any, frame_value: float, cues_value: str, pending_value: Any, request: gr.Request
    ) -> tuple[Any, str]:
        return draw_frame(ctx, video_value, frame_value, cues_value, pending_value, request)

    def load(video_value: Any, request: gr.Request) -> tuple[Any, Any, Any, str, None]:
        return load_video(ctx, video_value, request)

    def click(
        video_value: Any,
        frame_value: float,
        cues_value: str,
        mode_value: str,
        target_value: float,
        pending_value: Any,
        request: gr.Request,
        evt: gr.SelectData,
    ) -> tuple[Any, ...]:
        try:
            x, y = (float(v) for v in evt.index)
            parsed = parse_cues(cues_value, int(frame_value or 0))
            parsed, pending_value = add_click(
                parsed, mode_value, int(target_value or 1), x, y, pending_value, int(frame_value or 0)
            )
        except (ValueError, TypeError) as exc:
            return gr.skip(), gr.skip(), gr.skip(), f"<p>❌ {html_text(exc)}</p>"
        text = _dump(parsed)
        img, legend_html = draw(video_value, frame_value, text, pending_value, request)
        return text, pending_value, img, legend_html

    video.change(
        load, inputs=[video], outputs=[frame, image, cues, status, pending], api_visibility="private"
    )
    # .change, not .release: typing a number or using the arrow keys moves the slider without a
    # release, and the clicks would then land on a frame other than the one on screen.
    frame.change(
        draw,
        inputs=[video, frame, cues, pending],
        outputs=[image, legend],
        api_visibility="private",
        trigger_mode="always_last",
    )
    image.select(
        click,
        inputs=[video, frame, cues, mode, target, pending],
        outputs=[cues, pending, image, legend],
        api_visibility="private",
    )
    undo_btn.click(lambda: ("[]", None), outputs=[cues, pending], api_visibility="private").then(
        draw, inputs=[video, frame, cues, pending], outputs=[image, legend], api_visibility="private"
    )

    # API parameter names are these functions' own: keep them the words a caller would use.
    def do_resegment(
        video: Any, frame: float, cues: str, preset: str, request: gr.Request
    ) -> tuple[Any, str]:
        return resegment(ctx, video, frame, cues, preset, request)

    seg_btn.click(
        do_resegment, inputs=[video, frame, cues, preset], outputs=[key_image, status], api_name="resegment"
    )

    def repropagate(
        video: Any,
        query: str,
        frame: float,
        cues: str,
        preset: str,
        clicked: float | None = None,
        request: gr.Request | None = None,
    ) -> Iterator[list[Any]]:
        yield from repropagate_stream(ctx, video, query, frame, cues, preset, request, clicked)

    stamped(
        prop_btn.click,
        repropagate,
        [video, query, frame, cues, preset],
        status,
        "re-propagation",
        outputs=[status, key_image, strip, out_video, downloads],
        api_name="repropagate",
        concurrency_limit=2,
        show_progress="minimal",
    )
    wire_stop(ctx, stop_btn, {"status": status}, "re-propagation", "Re-propagate")
    if run_inputs is not None:
        copy_btn.click(lambda v: v, inputs=[run_inputs["video"]], outputs=[video], api_visibility="private")
    return {
        "video": video,
        "frame": frame,
        "cues": cues,
        "image": image,
        "mode": mode,
        "repropagate": prop_btn,
        "stop": stop_btn,
        "status": status,
    }


__all__ = [
    "add_click",
    "build_interactive_tab",
    "draw_frame",
    "load_video",
    "parse_cues",
    "repropagate_stream",
    "resegment",
]
