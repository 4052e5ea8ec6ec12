"""The Inspect tab: replay a recorded trace, or rank recorded predictions against ground truth.

Replay (API ``replay``) feeds a trace's events through the same view as a live run, so a GPU run
recorded elsewhere can be shown on a laptop. Inspect (API ``inspect``) scores every expression of a
zip of predictions + ground truth (or the bundled examples with their recorded traces), ranks them by
J&F, shows the worst frames with the prediction against the ground truth, and names the paper stage
that most likely failed (:mod:`videoseg.eval.diagnosis`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import gradio as gr
import numpy as np
from gradio.utils import get_upload_folder

from videoseg.core import events as ev
from videoseg.core.trace import TraceError, read_trace
from videoseg.eval.diagnosis import CaseResult, analyse, collect_cases
from videoseg.ui import diagnosis_view
from videoseg.ui.common import (
    AppContext,
    build_run_view,
    drive,
    file_path,
    message_outputs,
    ordered,
    session_hash,
    stamped,
    started_at,
    stopped_note,
    to_updates,
    until_stopped,
    wire_stop,
)
from videoseg.ui.examples import (
    EXAMPLES_DIR,
    TRACES_DIR,
    Example,
    example_ground_truth,
    match_example,
    match_recorded_example,
)
from videoseg.ui.live import LiveView, empty_outputs
from videoseg.ui.session import UploadError, hide_paths
from videoseg.ui.text import md, warn
from videoseg.viz.curves import jf_curves_figure
from videoseg.viz.overlay import overlay_masks

RANK_HEADERS = ["rank", "video", "expression", "J&F", "J", "F", "target frame", "stage at fault", "why"]


def _bundled_traces() -> list[Path]:
    return sorted(TRACES_DIR.glob("*.jsonl")) if TRACES_DIR.is_dir() else []


def _load_trace(ctx: AppContext, trace: Any) -> list[ev.Event]:
    # the Replay tab lists the bundled traces to pick from only when there are some
    missing = "upload one or pick a recorded trace below" if _bundled_traces() else "upload one"
    path = ctx.caps.check_file(file_path(trace), "trace", max_mb=ctx.caps.max_zip_mb, missing=missing)
    try:
        # the recorded video must be one this server would take as an upload (its size and length
        # size what a replay draws), and the file its trace cap (TraceBounds)
        events = list(read_trace(path, ctx.caps.trace_bounds()))
    except TraceError as exc:
        # the message names the file by its path: a visitor sees its name, not the server's folders
        raise UploadError(f"This trace cannot be read: {hide_paths(str(exc), path.parent)}") from exc
    except UnicodeDecodeError as exc:
        raise UploadError("This trace cannot be read: it is not a text (JSON Lines) file") from exc
    if not events:
        raise UploadError("This trace is empty.")
    if not isinstance(events[0], ev.RunStarted):
        raise UploadError(
            f"This trace does not start with a run_started event (it starts with {events[0].type!r})."
        )
    return events


def _resolved(raw: Any) -> Path | None:
    """The recorded video path made absolute (relative ones are the repository's), or None."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        p = Path(raw)
        return (p if p.is_absolute() else EXAMPLES_DIR.parent / p).resolve()
    except (OSError, ValueError, RuntimeError):
        return None


def _is_file(p: Path) -> bool:
    try:
        return p.is_file()
    except (OSError, ValueError):
        return False


def _recorded_video(
    ctx: AppContext, start: ev.RunStarted, session: str | None
) -> tuple[Path | None, Example | None, str]:
    """(video to show, the bundled example it is, how it was found) for a trace's recorded video.

    Shown as is: a recorded file under the bundled examples (or the ones generated into the store)
    or in this session's own folder. A recorded file in Gradio's upload cache (a Run on an example
    uploads a copy) is only compared byte for byte with the examples, and the example's own file is
    shown. Another visitor's folder is never read, compared or guessed at: a crafted trace must not
    show another visitor's video or overlay. Anywhere else, or gone: the one example with the
    recorded frame count, size and fps, if any; such a path itself is never opened.
    """
    recorded = start.video if isinstance(start.video, dict) else {}
    p = _resolved(recorded.get("path"))
    if p is not None:
        store = ctx.store
        allowed = [
            EXAMPLES_DIR.resolve(),
            (store.root / "examples").resolve(),
            store.session_dir(session).resolve(),
        ]
        if any(p.is_relative_to(a) for a in allowed):
            if _is_file(p):
                try:
                    ex = match_example(p, ctx.examples)
                except OSError:
                    ex = None
                return p, ex, "the recorded video"
        elif p.is_relative_to(store.root.resolve()):
            return None, None, ""
        elif p.is_relative_to(Path(get_upload_folder()).resolve()) and _is_file(p):
            try:
                ex = match_example(p, ctx.examples)
            except OSError:
                ex = None
            if ex is None:
                return None, None, ""  # an upload of another video: not shown, not guessed at
            return ex.video, ex, "same bytes as the recorded video"
    ex = match_recorded_example(recorded, ctx.examples, p.parts if p is not None else ())
    if ex is None:
        return None, None, ""
    return (
        ex.video,
        ex,
        "found by the recorded frame count, size and frame rate; the recorded file is not used",
    )


def replay_stream(
    ctx: AppContext,
    trace: Any,
    video: Any = None,
    request: gr.Request | None = None,
    pace: float = 0.0,
    clicked: float | None = None,
) -> Iterator[dict[str, Any]]:
    """Run-view output values for a replayed trace (message-only values for bad input).

    ``pace``: reasoning tokens per second to show (0: as fast as possible), so a recorded run can be
    presented step by step. The tab's Stop (:func:`~videoseg.ui.common.wire_stop`, for "replay")
    ends it as cancelled at its next event, as the Run tab's Stop ends a run; ``clicked``: when
    Replay was pressed (a Stop since then, even while it waited in the queue, stops it)."""
    started = started_at(clicked)
    session = session_hash(request)
    try:
        events = _load_trace(ctx, trace)
        video_path = file_path(video)
        if video_path:
            try:
                example = match_example(video_path, ctx.examples)
            except OSError:
                example = None
            how = "the given video"
        else:
            video_path, example, how = _recorded_video(ctx, events[0], session)
        opened = ctx.caps.open(video_path) if video_path else None
    except UploadError as exc:
        warn(str(exc))
        yield message_outputs(str(exc))
        return
    try:
        out_dir = ctx.store.new_run_dir(session, "replay")
        trace_copy = out_dir / "trace.jsonl"
        trace_copy.write_bytes(Path(file_path(trace)).read_bytes())
        notes = []
        recorded = events[0].video if isinstance(events[0].video, dict) else {}
        if opened is not None and (
            len(opened) != recorded.get("num_frames")
            or list(opened.size) != [recorded.get("width"), recorded.get("height")]
        ):
            opened.close()
            opened = example = None
            notes.append(
                "⚠️ The given video does not match the recorded one; masks are drawn on a blank canvas."
            )
        gt_present, gt_note = _example_ground_truth(
            example, events[0].query, len(opened) if opened is not None else 0
        )
        if example is not None:
            notes.append(f"ℹ️ Video: the bundled example `{example.name}` ({how}).{gt_note}")
        view = LiveView(out_dir, opened, trace=False, trace_source=trace_copy, gt_present=gt_present)
        view.messages.extend(notes)
        if opened is None:
            view.messages.append(
                "ℹ️ Replay without the video: masks are drawn on a blank canvas "
                "(give the video to see the frames)."
            )
        diagnosis_view.remember(session, [], [], None, what="replay")  # no stale panel
        first = empty_outputs()
        first["status"] = f"### ⏳ Replaying {len(events)} recorded events…"
        first["progress"] = {"stage": "run", "status": "replaying", "stages_seen": []}
        yield first
        # a replay has no pipeline to cancel: the threading.Event only satisfies the shared loop
        watched = until_stopped(
            events,
            lambda: ctx.stop_requested(session, started, "replay"),
            threading.Event(),
            view,
            stopped_note("replay", "Replay"),
        )
        yield from drive(view, watched, pace=float(pace or 0.0))
        # Per-propagator diagnosis of the replayed run, shown by the replay's follow-up step.
        name = view.state.preset or "recorded run"
        diagnosis_view.remember(session, [name], [view.state], opened, what="replay")
    finally:
        if opened is not None:
            opened.close()


def _example_ground_truth(
    example: Example | None, query: str, num_frames: int
) -> tuple[list[bool] | None, str]:
    """(per-frame presence for the timeline, a note) of the example's expression whose text is the
    recorded query: what a live Run of the same example shows."""
    if example is None:
        return None, ""
    try:
        found = example_ground_truth(example, query)
    except (OSError, ValueError):
        return None, ""  # ground truth is optional decoration on the timeline
    if found is None or len(found[0]) != num_frames:
        return None, ""
    gt, description = found
    return gt.reshape(len(gt), -1).any(axis=1).tolist(), f" Ground truth on the timeline: {description}."


def _overlay_pred_gt(frame: np.ndarray, pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Prediction filled in the first target colour, ground truth as a green outline."""
    img = overlay_masks(frame, pred[None], alpha=0.45, contour=False)
    found, _ = cv2.findContours(gt.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(img, found, -1, (48, 209, 88), max(1, round(max(frame.shape[:2]) / 200)), cv2.LINE_AA)
    return img


def case_details(
    ctx: AppContext, result: CaseResult, out_dir: Path
) -> tuple[str, Any, list[tuple[str, str]]]:
    """(diagnosis Markdown, J&F curve figure, worst-frame gallery items) for one analysed case."""
    from videoseg.eval.diagnosis import load_prediction
    from videoseg.io.video import open_video, read_mask_pngs

    case = result.case
    ids = read_mask_pngs(case.gt_dir / "Annotations")
    gt = np.isin(ids, np.asarray(case.expression["obj_ids"], dtype=np.uint8))
    pred, _ = load_prediction(case, len(gt), gt.shape[1:])
    frames_src = case.gt_dir / "video.mp4"
    items = []
    frames, video_note = None, ""
    if frames_src.is_file():
        # the video only shows the frames behind the masks: an unreadable one, or one of another
        # size than the ground truth, is replaced by a blank canvas instead of failing the ranking
        try:
            with open_video(frames_src) as video:
                frames = list(video.frames(result.worst))
        except ValueError as exc:
            video_note = f"its video.mp4 cannot be read ({hide_paths(str(exc), case.gt_dir)})"
        if frames and frames[0].shape[:2] != gt.shape[1:]:
            frames, video_note = None, "its video.mp4 has another size than the ground truth"
    if frames is None:
        frames = [np.full((*gt.shape[1:], 3), 40, dtype=np.uint8) for _ in result.worst]
    for idx, frame in zip(result.worst, frames):
        path = out_dir / f"worst-{case.expression.get('id')}-{idx}.png"
        cv2.imwrite(str(path), cv2.cvtColor(_overlay_pred_gt(frame, pred[idx], gt[idx]), cv2.COLOR_RGB2BGR))
        items.append((str(path), f"frame {idx}: J&F {result.scores['J&F'][idx]:.2f}"))
    d = result.diagnosis
    m = result.mean
    lines = [
        f"### {md(case.label)}",
        f"J&F **{m['J&F']:.3f}** (J {m['J']:.3f}, F {m['F']:.3f}) · stage at fault: **{md(d.stage)}**: {md(d.reason)}",
    ]
    facts = []
    if result.target_frame is not None:
        facts.append(f"target frame {result.target_frame}")
    if result.cue_box_iou is not None:
        facts.append(f"cue box IoU {result.cue_box_iou:.2f}")
    if result.keyframe_iou is not None:
        facts.append(f"keyframe mask IoU {result.keyframe_iou:.2f}")
    if facts:
        lines.append(" · ".join(facts))
    lines.append(
        f"Worst frames: {', '.join(map(str, result.worst))} (prediction filled, ground truth outlined green)"
    )
    if video_note:
        lines.append(f"⚠️ Frames drawn on a blank canvas: {md(video_note)}.")
    fig = jf_curves_figure(
        {case.label[:40]: result.scores},
        {case.label[:40]: result.target_frame},
        title="per-frame J&F",
        worst=result.worst,
    )
    return "\n\n".join(lines), fig, items


_NO_CASES = (
    "No expression with both ground truth and a prediction was found in {source}. Expected: a folder with "
    "{q}expressions.json{q} + {q}Annotations/{q} and either traces ({q}*.jsonl{q} whose query is an "
    "expression) or {q}pred/<expression id>/*.png{q}."
)


def markdown_text(text: str) -> str:
    """``text`` shown as written in a Markdown status: a ``*`` in a file pattern does not start
    emphasis, ``<name>`` is not taken for an HTML tag (and removed), a link or image in a file
    name is neither (see :func:`videoseg.ui.text.md`)."""
    return md(text, limit=None)


def inspect_run(
    ctx: AppContext, archive: Any, request: gr.Request | None = None
) -> tuple[list[Any], list[dict]]:
    """([status, ranking rows, selector update, diagnosis, curves, worst gallery], case records)."""
    skip = gr.skip()
    session = session_hash(request)
    unreadable: list[str] = []  # what is wrong with the expressions.json files
    shown = None  # the status's Markdown form of an error, when it differs from the toast's text
    try:
        out_dir = ctx.store.new_run_dir(session, "inspect")
        if archive is not None:
            # a benchmark result (results.json, or a zip of a `benchmark --out` folder) shows its table
            from videoseg.eval.benchmark import find_result, inspect_view

            upload = Path(file_path(archive) or "")
            if upload.suffix.lower() == ".json":
                root = ctx.caps.check_file(
                    upload, "benchmark result", max_mb=ctx.caps.max_zip_mb, missing="upload one"
                )
            else:
                root = ctx.caps.extract_zip(file_path(archive), out_dir / "data", "predictions zip")
            found = find_result(root)
            if found is None and root.is_file():
                raise UploadError(
                    "This JSON file is not a benchmark result (the results.json of `benchmark`)."
                )
            if found is not None:
                try:
                    status, rows, fig = inspect_view(found)
                except ValueError as exc:
                    raise UploadError(f"This benchmark result cannot be read: {exc}") from exc
                return [status, rows, gr.update(choices=[], value=None), "", fig, []], []
            cases = collect_cases(root, problems=unreadable)
            source = "the uploaded zip"
        else:
            cases = []
            for ex in ctx.examples:
                cases += collect_cases(ex.directory, _bundled_traces(), problems=unreadable)
            source = "the bundled examples and their recorded traces"
        if not cases and unreadable:
            raise UploadError(
                f"No expression could be used from {source}: " + "; ".join(unreadable[:3]) + "."
            )
        if not cases:
            # the toast shows plain text; the status is Markdown, where the patterns go in code spans
            shown = _NO_CASES.format(source=source, q="`")
            raise UploadError(_NO_CASES.format(source=source, q=""))
    except UploadError as exc:
        warn(str(exc))
        return [f"### ❌ {shown or markdown_text(str(exc))}", skip, skip, skip, skip, skip], []
    results, problems = [], list(unreadable)
    for case in cases:
        try:
            results.append(analyse(case))
        except (ValueError, OSError, TraceError, KeyError) as exc:
            problems.append(f"{case.label}: {hide_paths(str(exc), out_dir)}")
    if not results:
        msg = "No case could be scored: " + "; ".join(problems[:3])
        warn(msg)
        return [f"### ❌ {markdown_text(msg)}", skip, skip, skip, skip, skip], []
    results.sort(key=lambda r: r.mean["J&F"])
    rows = [
        [
            i + 1,
            r.case.gt_dir.name,
            r.case.expression["text"],
            round(r.mean["J&F"], 3),
            round(r.mean["J"], 3),
            round(r.mean["F"], 3),
            r.target_frame,
            r.diagnosis.stage,
            r.diagnosis.reason,
        ]
        for i, r in enumerate(results)
    ]
    records = [
        {
            "label": r.case.label,
            "gt_dir": str(r.case.gt_dir),
            "expression": r.case.expression,
            "trace": str(r.case.trace) if r.case.trace else None,
            "pred_dir": str(r.case.pred_dir) if r.case.pred_dir else None,
            "out_dir": str(out_dir),
        }
        for r in results
    ]
    details, fig, gallery = case_details(ctx, results[0], out_dir)
    status = f"### Ranked {len(results)} expression(s) from {source}, worst first" + (
        "\n\n⚠️ " + markdown_text("; ".join(problems)) if problems else ""
    )
    labels = [r["label"] for r in records]
    return [status, rows, gr.update(choices=labels, value=labels[0]), details, fig, gallery], records


def select_case(ctx: AppContext, label: str | None, records: list[dict]) -> list[Any]:
    from videoseg.eval.diagnosis import Case

    record = next((r for r in records or [] if r["label"] == label), None)
    if record is None:
        return ["Pick an expression after running Inspect.", gr.skip(), gr.skip()]
    case = Case(
        Path(record["gt_dir"]),
        record["expression"],
        Path(record["trace"]) if record["trace"] else None,
        Path(record["pred_dir"]) if record["pred_dir"] else None,
    )
    try:
        return list(case_details(ctx, analyse(case), Path(record["out_dir"])))
    except (ValueError, OSError, TraceError, KeyError) as exc:
        # its unpacked files are gone (the session's folder was trimmed) or cannot be read any more
        message = f"{case.label} cannot be shown any more: {hide_paths(str(exc), ctx.store.root)}. Run Inspect again."
        warn(message)
        return [f"### ❌ {md(message)}", gr.skip(), gr.skip()]


def build_inspect_tab(ctx: AppContext, last_run: gr.State | None = None) -> dict[str, Any]:
    with gr.Tab("Replay a trace"):
        gr.Markdown(
            "Open a recorded trace (`.jsonl`, one event per line, written by every run here and by "
            "`python -m videoseg run --trace`): it drives the same view as a live run."
        )
        with gr.Row(equal_height=False):
            trace = gr.File(label="Trace (.jsonl)", file_types=[".jsonl"])
            video = gr.Video(
                label="Its video (optional; bundled examples are found by themselves)",
                sources=["upload"],
                height=200,
            )
            with gr.Column():
                pace = gr.Slider(
                    0,
                    60,
                    value=0,
                    step=5,
                    label="Presentation pace (reasoning tokens/s; 0 = as recorded data arrives)",
                    info="Slows the display only, so a class can follow each stage.",
                )
                with gr.Row():
                    replay_btn = gr.Button("Replay", variant="primary", elem_id="replay-button")
                    stop_btn = gr.Button("Stop", variant="stop", elem_id="replay-stop")
                last_btn = gr.Button("Replay my last run")
        bundled = _bundled_traces()
        if bundled:
            gr.Examples(
                examples=[[str(p)] for p in bundled],
                inputs=[trace],
                label="Recorded traces",
                cache_examples=False,
            )
        view = build_run_view()
        diagnosis = diagnosis_view.build_diagnosis_panel()
        shows_diagnosis = {
            "fn": diagnosis_view.shown_replay,
            "outputs": [diagnosis["plot"], diagnosis["table"], diagnosis["image"]],
            "api_visibility": "private",
            "show_progress": "hidden",
        }
    wire_stop(ctx, stop_btn, view, "replay", "Replay")

    # API parameter names are these functions' own; a None default makes one optional for a client.
    def replay(
        trace: Any,
        video: Any = None,
        pace: float = 0.0,
        clicked: float | None = None,
        request: gr.Request | None = None,
    ) -> Iterator[list[Any]]:
        for values in replay_stream(ctx, trace, video, request, pace, clicked):
            yield to_updates(values)

    replayed = stamped(
        replay_btn.click,
        replay,
        [trace, video, pace],
        view["status"],
        "replay",
        outputs=ordered(view),
        api_name="replay",
        concurrency_limit=2,
        show_progress="minimal",
    )
    replayed.then(**shows_diagnosis)
    if last_run is not None:

        def replay_last(
            record: dict | None, pace_value: float, clicked_value: float | None, request: gr.Request
        ) -> Iterator[list[Any]]:
            if not record:
                yield to_updates(
                    message_outputs("No run yet in this session: run something in the Run tab first.")
                )
                return
            yield from replay(record["trace"], record["video"], pace_value, clicked_value, request)

        stamped(
            last_btn.click,
            replay_last,
            [last_run, pace],
            view["status"],
            "replay",
            outputs=ordered(view),
            api_visibility="private",
        ).then(**shows_diagnosis)

    with gr.Tab("Rank failures"):
        gr.Markdown(
            "Score recorded predictions against ground truth, worst expression first, and see which "
            "stage went wrong. Leave the zip empty to use the bundled examples and their traces. "
            "Zip layout: a folder with `expressions.json` + `Annotations/%05d.png`, and traces (`*.jsonl`) "
            "or `pred/<expression id>/%05d.png`. A benchmark result (`results.json` of "
            "`python -m videoseg benchmark`, or a zip of its `--out` folder) shows its score table and "
            "its expressions ranked worst first."
        )
        with gr.Row():
            archive = gr.File(
                label="Predictions + ground truth (zip, optional), or a benchmark result",
                file_types=[".zip", ".json"],
            )
            inspect_btn = gr.Button("Inspect", variant="primary", elem_id="inspect-button")
        status = gr.Markdown("")
        ranking = gr.Dataframe(
            headers=RANK_HEADERS,
            label="Expressions ranked by J&F (worst first)",
            interactive=False,
            wrap=True,
        )
        selector = gr.Dropdown(label="Expression", choices=[], interactive=True)
        details = gr.Markdown("")
        with gr.Row(equal_height=False):
            curves = gr.Plot(label="Per-frame J&F (dotted: worst frames)")
            worst = gr.Gallery(label="Worst frames", columns=2, height=320)
        records = gr.State([])

    def do_inspect(predictions_zip: Any = None, request: gr.Request | None = None) -> list[Any]:
        values, recs = inspect_run(ctx, predictions_zip, request)
        return [*values, recs if recs else gr.skip()]

    inspect_btn.click(
        do_inspect,
        inputs=[archive],
        outputs=[status, ranking, selector, details, curves, worst, records],
        api_name="inspect",
        concurrency_limit=1,
    )
    selector.input(
        lambda label, recs: select_case(ctx, label, recs),
        inputs=[selector, records],
        outputs=[details, curves, worst],
        api_visibility="private",
    )
    return {
        "trace": trace,
        "video": video,
        "view": view,
        "replay": replay_btn,
        "stop": stop_btn,
        "archive": archive,
        "ranking": ranking,
    }


__all__ = ["build_inspect_tab", "case_details", "inspect_run", "replay_stream"]
