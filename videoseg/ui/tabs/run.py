"""The Run tab: one video + query + preset through all three paper stages, shown live.

As the pipeline's events arrive the tab fills in the HTFS timeline and sampled frames (step 1), the
streamed reasoning and the cues on the target frame (step 2), the keyframe mask and the propagation
in both directions (step 3), then offers the downloads. Its click handler is the named API endpoint
``run`` (inputs: video file, query, preset name), a generator that streams those updates.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from videoseg.ui.common import (
    AppContext,
    build_run_view,
    drive,
    file_path,
    message_outputs,
    ordered,
    read_ahead,
    session_hash,
    stamped,
    started_at,
    stop_values,
    stopped_note,
    to_updates,
    until_stopped,
    wire_stop,
)
from videoseg.ui.examples import example_rows, ground_truth_for
from videoseg.ui.live import LiveView, empty_outputs
from videoseg.ui.runner import (
    check_preset,
    check_query,
    describe_preset,
    pipeline_events,
    preset_choices,
    preset_requirements,
)
from videoseg.ui.session import UploadError
from videoseg.ui.tabs.reward import attach_run_reward
from videoseg.ui.text import md, warn


def missing_video_hint(ctx: AppContext) -> str:
    """What to do without a video in the Run tab: only offer examples when there are some to pick."""
    return "upload one or pick an example below" if example_rows(ctx.examples) else "upload one"


def run_stream(
    ctx: AppContext,
    video: Any,
    query: str | None,
    preset_name: str | None,
    request: gr.Request | None = None,
    overrides: dict[str, Any] | None = None,
    kind: str = "run",
    pace: float = 0.0,
    clicked: float | None = None,
) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    """(output values, run record) pairs for one run; bad input gives one message update.

    ``pace`` (reasoning tokens/s, 0 = off) slows the display of weights-free runs, which finish too
    fast to follow; real-model runs are shown at the model's own speed. ``clicked``: when Run was
    pressed (:func:`~videoseg.ui.common.click_time`); a Stop since then, even one pressed while the
    run waited in the queue, stops it."""
    started = started_at(clicked)
    try:
        path = file_path(video)
        query = check_query(query)
        preset_name = check_preset(preset_name)
        opened = ctx.caps.open(path, missing_video_hint(ctx))
    except UploadError as exc:
        warn(str(exc))
        yield message_outputs(str(exc)), None
        return
    try:
        out_dir = ctx.store.new_run_dir(session_hash(request), kind)
        gt = None
        try:
            gt = ground_truth_for(path, query, ctx.examples)
        except (OSError, ValueError):
            gt = None  # ground truth is optional decoration on the timeline
        gt_present = gt[0].reshape(len(gt[0]), -1).any(axis=1).tolist() if gt is not None else None
        view = LiveView(out_dir, opened, gt_present=gt_present)
        first = empty_outputs()
        first["status"] = f"### ⏳ Starting `{preset_name}` on {len(opened)} frames…"  # a checked preset
        first["progress"] = {"stage": "run", "status": "starting", "stages_seen": []}
        record = {
            "video": str(path),
            "query": query,
            "preset": preset_name,
            "dir": str(out_dir),
            "trace": str(out_dir / "trace.jsonl"),
        }
        yield first, record
        cancel = threading.Event()
        events = pipeline_events(str(path), query, preset_name, overrides, len(opened), cancel, opened=opened)
        session = session_hash(request)
        try:
            shown_pace = float(pace or 0.0) if not preset_requirements(preset_name) else 0.0
            if shown_pace > 0:
                events = read_ahead(events, cancel)  # the display's pace must not slow the run itself
            watched = until_stopped(
                events,
                lambda: ctx.stop_requested(session, started, "run"),
                cancel,
                view,
                stopped_note("run", "Run"),
            )
            for values in drive(view, watched, pace=shown_pace):
                progress = values.get("progress")
                if (
                    isinstance(progress, dict)
                    and progress.get("error")
                    and progress.get("status") != "cancelled"
                ):
                    warn(values["progress"]["error"])
                yield values, record
        finally:
            cancel.set()
    finally:
        opened.close()


def upload_status(ctx: AppContext, video: Any) -> str | None:
    """The Run tab's status right after an upload: the video's size and length, or why it cannot be
    used (the browser's player only says "Video not playable"); None when there is no video."""
    path = file_path(video)
    if not path:
        return None
    try:
        meta = ctx.caps.check_video(path)
    except UploadError as exc:
        warn(str(exc))
        return f"### ❌ {md(str(exc), code_spans=True)}"
    return (
        f"Video ready: {meta['num_frames']} frames, {meta['width']}×{meta['height']}, "
        f"{meta['fps']:.1f} fps ({meta['duration']:.1f} s). Type a query and press **Run**."
    )


def cache_examples_lazily() -> bool:
    """Whether examples are cached lazily: on a Hugging Face Space (``SPACE_ID`` set) unless
    ``VIDEOSEG_CACHE_EXAMPLES=off``; elsewhere only with ``VIDEOSEG_CACHE_EXAMPLES=lazy``, because a
    cached example shows the final state at once instead of the stages happening."""
    setting = os.environ.get("VIDEOSEG_CACHE_EXAMPLES", "lazy" if os.environ.get("SPACE_ID") else "off")
    return setting.strip().lower() == "lazy"


def build_run_tab(ctx: AppContext) -> dict[str, Any]:
    """Build the tab inside the current Blocks; returns its components by name (for tests / wiring)."""
    rows = example_rows(ctx.examples)
    default_preset = "shapes"
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=300):
            video = gr.Video(label="Video (upload, or pick an example below)", sources=["upload"], height=260)
            # compact, beside the inputs: a table of video thumbnails pushed the run's stages below
            # the fold, so a click on Run showed nothing where the visitor was looking
            examples_box = gr.Column()  # filled below, once the outputs a cached example needs exist
        with gr.Column(scale=3, min_width=320):
            query = gr.Textbox(label="Query", lines=2, placeholder="e.g. the triangle that turns left")
            preset = gr.Dropdown(
                choices=preset_choices(),
                value=default_preset,
                label="Preset",
                allow_custom_value=True,
                info="real-model presets say whether their weights are here",
            )
            preset_info = gr.Markdown(describe_preset(default_preset))
            pace = gr.Slider(
                0,
                60,
                value=0,
                step=5,
                label="Presentation pace (reasoning tokens/s; 0 = full speed)",
                info="Weights-free runs finish in about a second: slow their display down to follow each stage.",
                elem_id="run-pace",
            )
            with gr.Row():
                run_btn = gr.Button("Run", variant="primary", elem_id="run-button")
                stop_btn = gr.Button("Stop", variant="stop")
            # the run's status right under its buttons, where the eyes are after a click
            status = gr.Markdown("", elem_classes=["vs-status"], elem_id="run-status")
            gr.Markdown(f"<small>Limits here: {ctx.caps.describe()}.</small>")
    view = build_run_view(status=status)
    last_run = gr.State(None)

    def run_paced(
        video_value: Any,
        query_value: str,
        preset_value: str,
        pace_value: float,
        clicked_value: float | None,
        request: gr.Request,
    ) -> Iterator[list[Any]]:
        record = None
        runs = run_stream(
            ctx, video_value, query_value, preset_value, request, pace=pace_value, clicked=clicked_value
        )
        for values, rec in runs:
            record = rec or record
            yield [*to_updates(values), record if record is not None else gr.skip()]

    # API parameter names are these functions' own: keep them the words a caller would use.
    def run(video: Any, query: str, preset: str, request: gr.Request) -> Iterator[list[Any]]:
        yield from run_paced(video, query, preset, 0.0, None, request)

    # The page's Run button also sends the presentation pace; the public API endpoint ``run`` keeps
    # exactly (video file, query text, preset name), served by a hidden trigger.
    api_trigger = gr.Button(visible=False)
    outputs = [*ordered(view), last_run]
    options = {"concurrency_limit": 2, "show_progress": "minimal"}
    run_api = api_trigger.click(
        run, inputs=[video, query, preset], outputs=outputs, api_name="run", **options
    )
    finished = [run_api]  # each way a run starts; the training-reward panel fills in after it
    for trigger in (run_btn.click, query.submit):
        done = stamped(
            trigger,
            run_paced,
            [video, query, preset, pace],
            view["status"],
            "run",
            outputs=outputs,
            api_visibility="private",
            **options,
        )
        finished.append(done)

    wire_stop(ctx, stop_btn, view, "run", "Run")
    video.upload(
        lambda value: upload_status(ctx, value) or gr.skip(),
        inputs=video,
        outputs=view["status"],
        api_visibility="private",
        show_progress="hidden",
    )

    def run_example(
        video_value: Any, query_value: str, preset_value: str, request: gr.Request | None = None
    ) -> Iterator[list[Any]]:
        # Gradio's lazy example caching calls this through a wrapper that passes no request.
        for values, _ in run_stream(ctx, video_value, query_value, preset_value, request):
            yield to_updates(values)

    examples = None
    if rows:
        lazy = cache_examples_lazily()
        caching: dict[str, Any] = (
            {"fn": run_example, "outputs": ordered(view), "cache_examples": True, "cache_mode": "lazy"}
            if lazy
            else {"cache_examples": False}
        )
        with examples_box:
            examples = gr.Examples(
                examples=rows,
                inputs=[video, query, preset],
                label="Examples (weights-free; a click fills the inputs, then press Run)"
                + (": the first click computes and caches, press Run to watch it live" if lazy else ""),
                examples_per_page=8,
                example_labels=[f"{row[1]} · {Path(row[0]).parent.name.replace('_', ' ')}" for row in rows],
                elem_id="run-examples",
                **caching,
            )
    preset.change(describe_preset, inputs=preset, outputs=preset_info, api_visibility="private")
    reward = attach_run_reward(ctx, finished, last_run)
    return {
        "video": video,
        "query": query,
        "preset": preset,
        "run": run_btn,
        "stop": stop_btn,
        "view": view,
        "last_run": last_run,
        "examples": examples,
        "preset_info": preset_info,
        "reward": reward,
    }


__all__ = ["build_run_tab", "run_stream", "stop_values", "upload_status"]
