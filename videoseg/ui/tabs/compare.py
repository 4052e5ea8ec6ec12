"""The Compare tab: the same video and query under two presets, side by side (the paper's ablations).

Each side shows its HTFS timeline, the keyframe mask with its cues and the overlay video; when the
ground truth is known (a bundled shapes example whose expression is the query, or a zip of PNG masks)
both runs are scored per frame and the J&F curves and a summary table show where they differ (e.g.
Table 5: full HTFS vs first frame; Table 6: all cues vs box only). Named API endpoint: ``compare``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import gradio as gr

from videoseg.core.masks import union_stack
from videoseg.ui import diagnosis_view
from videoseg.ui.common import (
    AppContext,
    drive,
    file_path,
    session_hash,
    stamped,
    started_at,
    stopped_message,
    until_stopped,
    wire_stop,
)
from videoseg.ui.examples import compare_rows, ground_truth_for, load_gt_zip
from videoseg.ui.live import SKIP, LiveView
from videoseg.ui.runner import check_preset, check_query, pipeline_events, preset_choices
from videoseg.ui.session import UploadError, hide_paths
from videoseg.ui.text import md, warn
from videoseg.viz.curves import jf_curves_figure, per_frame_scores, summarise

# Compare has no examples of its own; it can take the Run tab's video (see build_compare_tab).
MISSING_VIDEO = "upload one, or press “Use the Run tab's video and query”"
SIDE_OUTPUTS = ("timeline", "keyframe_image", "video")
SUMMARY_HEADERS = ["preset", "J", "F", "J&F", "target frame", "target frame in GT", "seconds"]


def compare_stream(
    ctx: AppContext,
    video: Any,
    query: str | None,
    preset_a: str | None,
    preset_b: str | None,
    gt_zip: Any = None,
    request: gr.Request | None = None,
    clicked: float | None = None,
) -> Iterator[list[Any]]:
    """Yields [status, a_timeline, a_keyframe, a_video, b_timeline, b_keyframe, b_video, curves, summary].

    The tab's Stop (:func:`~videoseg.ui.common.wire_stop`, for "comparison") ends the preset that is
    running as cancelled at its next event and skips the other; what both sides showed stays.
    ``clicked``: when Compare was pressed; a Stop since then (even while it waited in the queue)
    stops it."""
    started = started_at(clicked)
    skip = gr.skip()

    def message(text: str) -> list[Any]:
        return [text, *[skip] * 8]

    try:
        path = file_path(video)
        query = check_query(query)
        names = [check_preset(preset_a), check_preset(preset_b)]
        opened = ctx.caps.open(path, MISSING_VIDEO)
    except UploadError as exc:
        warn(str(exc))
        yield message(f"### ❌ {md(str(exc), code_spans=True)}")
        return
    try:
        session = session_hash(request)
        gt, gt_note = (
            None,
            "no ground truth: pick a bundled example (its expression as the query) or add a GT zip",
        )
        if gt_zip is not None:
            gt_dir = ctx.store.new_run_dir(session, "gt")
            try:
                gt = load_gt_zip(ctx.caps.extract_zip(file_path(gt_zip), gt_dir, "ground-truth zip"))
                gt_note = f"ground truth from the uploaded zip ({len(gt)} masks)"
            except (UploadError, ValueError, OSError) as exc:
                reason = hide_paths(str(exc), gt_dir)
                warn(f"Ground truth not used: {reason}")
                gt_note = f"ground truth zip not used: {reason}"
        else:
            found = ground_truth_for(path, query, ctx.examples)
            if found is not None:
                gt, gt_note = found[0], f"ground truth: {found[1]}"
        if gt is not None and (len(gt) != len(opened) or gt.shape[2:0:-1] != tuple(opened.size)):
            gt_note = (
                f"ground truth not used: {gt.shape[0]} masks of {gt.shape[2]}×{gt.shape[1]} vs "
                f"{len(opened)} frames of {opened.size[0]}×{opened.size[1]}"
            )
            warn(gt_note)
            gt = None
        present = gt.reshape(len(gt), -1).any(axis=1).tolist() if gt is not None else None
        diagnosis_view.remember(session, [], [], opened)  # a stopped comparison shows no stale diagnosis
        # Clear the previous comparison first: its B side, curves and summary would otherwise stay
        # on screen, unmarked, until this one replaced them (or for good, when this one is stopped).
        # the names are presets checked above (check_preset), so they may go into code spans as they are
        yield [f"### ⏳ A `{names[0]}`: starting · B `{names[1]}`: waiting", *[None] * 7, []]
        sides: list[list[Any]] = [[skip] * 3, [skip] * 3]
        views: list[LiveView] = []
        status = ["waiting", "waiting"]

        def stopped() -> bool:
            return ctx.stop_requested(session, started, "comparison")

        for k, name in enumerate(names):
            if stopped():
                break  # stopped between the two runs: B does not start
            view = LiveView(ctx.store.new_run_dir(session, f"compare{k}"), opened, gt_present=present)
            views.append(view)
            cancel = threading.Event()
            events = pipeline_events(str(path), query, name, None, len(opened), cancel, opened=opened)
            try:
                for values in drive(view, until_stopped(events, stopped, cancel, view)):
                    sides[k] = [values[n] if values[n] is not SKIP else skip for n in SIDE_OUTPUTS]
                    status[k] = view.render_progress()["stage"]
                    head = (
                        stopped_status(names, views)
                        if view.state.status == "cancelled"  # its last update: no "⏳" after Stop
                        else f"### ⏳ A `{names[0]}`: {status[0]} · B `{names[1]}`: {status[1]}"
                    )
                    yield [head, *sides[0], *sides[1], skip, skip]
                    sides[k] = [skip] * 3
            finally:
                cancel.set()
        if len(views) < len(names) or any(v.state.status == "cancelled" for v in views):
            # the curves and the summary need both runs: a stopped comparison leaves them as they are
            yield [stopped_status(names, views), *[skip] * 8]
            return
        rows, series, targets = [], {}, {}
        for name, view in zip(names, views):
            s = view.state
            target = s.sampler_result.target_frame if s.sampler_result else None
            err = next((e.message for e in s.errors if e.fatal), None)
            if gt is not None and err is None:
                pred = union_stack(s.masks, *gt.shape)  # the union the benchmarks score
                scores = per_frame_scores(pred, gt)
                mean = summarise(scores)
                series[name], targets[name] = scores, target
                in_gt = None if target is None else bool(present[target])
                rows.append(
                    [
                        name,
                        round(mean["J"], 3),
                        round(mean["F"], 3),
                        round(mean["J&F"], 3),
                        target,
                        in_gt,
                        round(s.finished.seconds, 2) if s.finished else None,
                    ]
                )
            else:
                seconds = round(s.finished.seconds, 2) if s.finished else None
                rows.append([name, None, None, None, target, None, seconds])
        errors = [f"{n}: {e.message}" for n, v in zip(names, views) for e in v.state.errors if e.fatal]
        lines = ["### ✅ Compared" if not errors else "### ⚠️ Compared, with errors", md(gt_note)]
        lines += [f"❌ {md(e)}" for e in errors]
        if len(series) == 2:
            a, b = (summarise(series[n])["J&F"] for n in names)
            better = names[0] if a > b else names[1] if b > a else "neither"
            lines.append(f"J&F: `{names[0]}` {a:.3f} vs `{names[1]}` {b:.3f}: **{better}** is better here.")
        curves = (
            jf_curves_figure(series, targets, title="per-frame J&F against the ground truth")
            if series
            else None
        )
        # Per-propagator diagnosis (drift, frames/s, memory, worst frames), shown by a follow-up step.
        diagnosis_view.remember(session, names, [v.state for v in views], opened, gt)
        yield ["\n\n".join(lines), *[skip] * 6, curves, rows]
    finally:
        opened.close()


def stopped_status(names: list[str], views: list[LiveView]) -> str:
    """The status of a stopped comparison: how far each preset got, and how to start again."""
    sides = []
    for label, name, k in zip("AB", names, range(len(names))):
        state = views[k].state if k < len(views) else None
        if state is None:
            where = "not started"
        elif state.status == "cancelled":
            where = f"stopped in the {next(e.for_stage for e in state.errors if e.fatal)} stage"
        else:  # it ended before the Stop
            where = {"finished": "done", "error": "failed"}.get(state.status, state.status)
        sides.append(f"{label} `{name}`: {where}")
    return f"{stopped_message('comparison', 'Compare')}\n\n{' · '.join(sides)}"


def build_compare_tab(ctx: AppContext, run_inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    gr.Markdown(
        "Run the same video and query under two presets, e.g. `shapes` (full HTFS) vs "
        "`shapes-first-frame` (Table 5), or `shapes` (all cues) vs `shapes-box-only` (Table 6)."
    )
    rows, labels = compare_rows(ctx.examples)
    with gr.Row(equal_height=False):
        with gr.Column():
            video = gr.Video(label="Video", sources=["upload"], height=220)
            examples_box = gr.Column()  # beside the inputs, filled once they exist
        with gr.Column():
            query = gr.Textbox(label="Query", lines=2)
            with gr.Row():
                preset_a = gr.Dropdown(
                    choices=preset_choices(), value="shapes", label="Preset A", allow_custom_value=True
                )
                preset_b = gr.Dropdown(
                    choices=preset_choices(),
                    value="shapes-first-frame",
                    label="Preset B",
                    allow_custom_value=True,
                )
            gt_zip = gr.File(
                label="Ground truth (optional zip of per-frame PNG masks)", file_types=[".zip"], height=120
            )
            with gr.Row():
                copy_btn = gr.Button("Use the Run tab's video and query", size="sm")
                go = gr.Button("Compare", variant="primary", elem_id="compare-button")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="compare-stop")
            # under its buttons, where the eyes are after a click
            status = gr.Markdown("", elem_classes=["vs-status"], elem_id="compare-status")
    if rows:
        with examples_box:
            # one click fills the video, the query and both presets of one of the paper's ablations
            gr.Examples(
                examples=rows,
                inputs=[video, query, preset_a, preset_b],
                example_labels=labels,
                label="The paper's ablations on the bundled clips (a click fills everything; press Compare)",
                cache_examples=False,
                elem_id="compare-examples",
            )
    with gr.Row(equal_height=False):
        with gr.Column():
            gr.Markdown("#### A")
            a_timeline = gr.Plot(label="A · HTFS timeline")
            a_key = gr.Image(label="A · keyframe mask + cues", type="filepath", interactive=False, height=240)
            a_video = gr.Video(label="A · overlay", interactive=False, height=240)
        with gr.Column():
            gr.Markdown("#### B")
            b_timeline = gr.Plot(label="B · HTFS timeline")
            b_key = gr.Image(label="B · keyframe mask + cues", type="filepath", interactive=False, height=240)
            b_video = gr.Video(label="B · overlay", interactive=False, height=240)
    curves = gr.Plot(label="Per-frame J&F")
    summary = gr.Dataframe(headers=SUMMARY_HEADERS, label="Summary", interactive=False)
    diagnosis = diagnosis_view.build_diagnosis_panel()

    # API parameter names are these functions' own; a None default makes one optional for a client.
    def compare(
        video: Any,
        query: str,
        preset_a: str,
        preset_b: str,
        ground_truth_zip: Any = None,
        clicked: float | None = None,
        request: gr.Request | None = None,
    ) -> Iterator[list[Any]]:
        yield from compare_stream(ctx, video, query, preset_a, preset_b, ground_truth_zip, request, clicked)

    outputs = [status, a_timeline, a_key, a_video, b_timeline, b_key, b_video, curves, summary]
    compared = stamped(
        go.click,
        compare,
        [video, query, preset_a, preset_b, gt_zip],
        status,
        "comparison",
        outputs=outputs,
        api_name="compare",
        concurrency_limit=1,
        show_progress="minimal",
    )
    compared.then(
        diagnosis_view.shown,
        outputs=[diagnosis["plot"], diagnosis["table"], diagnosis["image"]],
        api_visibility="private",
        show_progress="hidden",
    )
    wire_stop(ctx, stop_btn, {"status": status}, "comparison", "Compare")
    if run_inputs is not None:
        copy_btn.click(
            lambda v, q: (v, q),
            inputs=[run_inputs["video"], run_inputs["query"]],
            outputs=[video, query],
            api_visibility="private",
        )
    return {
        "video": video,
        "query": query,
        "preset_a": preset_a,
        "preset_b": preset_b,
        "gt_zip": gt_zip,
        "compare": go,
        "stop": stop_btn,
        "status": status,
        "outputs": outputs,
    }


__all__ = ["build_compare_tab", "compare_stream", "stopped_status"]
