"""Pieces the explorer's tabs share: the run view's components and the event-driving loop.

The Run tab and the Inspect tab's trace replay show a run with the same components
(:func:`build_run_view`) fed by the same loop (:func:`drive`), which is what makes a replayed trace
look exactly like the live run that recorded it.
"""

from __future__ import annotations

import inspect
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from videoseg.core import events as ev
from videoseg.ui.examples import Example
from videoseg.ui.live import OUTPUT_NAMES, SKIP, STAGE_HEADERS, STAGES, LiveView, empty_outputs
from videoseg.ui.session import SessionStore, UploadCaps, hide_paths
from videoseg.ui.text import html_text, md


@dataclass
class AppContext:
    """What every tab needs: the session store, the upload caps and the bundled examples; and the
    sessions' Stop requests (session -> what was stopped ("run", "replay", "comparison",
    "re-propagation") -> monotonic time of the last click), so that one tab's Stop does not end
    another tab's work (the Replay's Stop does not end a run of the Run tab, and vice versa)."""

    store: SessionStore
    caps: UploadCaps
    examples: list[Example]
    stops: dict[str, dict[str, float]] = field(default_factory=dict)

    def request_stop(self, session: str | None, what: str = "run") -> None:
        self.stops.setdefault(session or "", {})[what] = time.monotonic()

    def stop_requested(self, session: str | None, since: float, what: str = "run") -> bool:
        """Whether Stop was pressed for ``what`` in ``session`` after ``since`` (its monotonic start)."""
        return self.stops.get(session or "", {}).get(what, float("-inf")) >= since

    def end_session(self, session: str | None) -> None:
        """Forget a session whose browser tab closed: its files and its Stop requests."""
        self.store.drop(session)
        self.stops.pop(session or "", None)


def session_hash(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None) if request is not None else None


def build_run_view(label: str = "", status: gr.Markdown | None = None) -> dict[str, gr.components.Component]:
    """The components that show one run, keyed by :data:`~videoseg.ui.live.OUTPUT_NAMES`.

    ``status``: a status placed by the caller (the Run tab puts it under its Run button); else the
    view starts with its own."""
    c: dict[str, gr.components.Component] = {}
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=420):
            c["status"] = status if status is not None else gr.Markdown("", elem_classes=["vs-status"])
            c["timeline"] = gr.Plot(label="Stage 1 · HTFS timeline (interval answers, zoom, target frame)")
        with gr.Column(scale=2, min_width=320):
            c["stages"] = gr.Dataframe(
                headers=STAGE_HEADERS,
                label="Per stage: backend, time (s), tokens, frames",
                interactive=False,
                wrap=False,
                value=empty_outputs()["stages"],
                column_widths=["21%", "22%", "15%", "14%", "14%", "14%"],
            )
            c["downloads"] = gr.File(
                label="Downloads: masks (PNG zip), overlay mp4, cues JSON, trace",
                file_count="multiple",
                interactive=False,
            )
    c["gallery"] = gr.Gallery(
        label="Sampled frames (★ target, ◆ reference, grey: key segment)",
        columns=10,
        height=170,
        object_fit="contain",
        allow_preview=True,
    )
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            c["reasoning"] = gr.Markdown(
                "", label="Stage 2 · reasoning", elem_classes=["vs-reasoning"], container=True, min_height=120
            )
        with gr.Column(scale=1, min_width=260):
            c["cues_image"] = gr.Image(
                label="Stage 2 · cues on the target frame (box, + centre, − negative)",
                type="filepath",
                interactive=False,
                height=260,
            )
            c["cues_legend"] = gr.HTML("")
        with gr.Column(scale=1, min_width=260):
            c["keyframe_image"] = gr.Image(
                label="Stage 3a · keyframe mask", type="filepath", interactive=False, height=260
            )
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=380):
            c["strip"] = gr.Image(
                label="Stage 3b · propagation filling in from the keyframe (grey: not yet)",
                type="filepath",
                interactive=False,
                height=300,
            )
        with gr.Column(scale=2, min_width=300):
            c["video"] = gr.Video(label="Result: overlay video", interactive=False, height=300)
    with gr.Accordion("Run details (machine-readable progress)", open=False):
        c["progress"] = gr.JSON(label="progress")
    assert set(c) == set(OUTPUT_NAMES)
    return c


def ordered(view: dict[str, gr.components.Component]) -> list[gr.components.Component]:
    return [view[name] for name in OUTPUT_NAMES]


def to_updates(values: dict[str, Any], names: Iterable[str] = OUTPUT_NAMES) -> list[Any]:
    """Output values in order, with unchanged ones as ``gr.skip()``."""
    return [gr.skip() if values.get(n, SKIP) is SKIP else values[n] for n in names]


def message_outputs(message: str, stage: str = "error") -> dict[str, Any]:
    """Only the status and progress outputs, showing ``message``; everything else is left as it is."""
    values: dict[str, Any] = {n: SKIP for n in OUTPUT_NAMES}
    values["status"] = f"### ❌ {md(message, code_spans=True)}"
    values["progress"] = {"stage": stage, "status": "error", "error": message, "stages_seen": []}
    return values


def pace_delay(event: ev.Event, tokens_per_s: float, propagation_s: float = 4.0) -> float:
    """Seconds to wait after ``event`` so that a presenter can follow a run that is too fast to watch.

    Only the display is slowed (replays, weights-free runs): reasoning tokens come at ``tokens_per_s``,
    and the propagation fills in over about ``propagation_s`` seconds (at most 30 frames a second).
    ``tokens_per_s <= 0`` means no pacing.
    """
    if not isinstance(tokens_per_s, (int, float)) or not 0 < tokens_per_s < float("inf"):
        return 0.0  # also NaN, which an API caller can send and time.sleep refuses
    if isinstance(event, ev.ReasoningToken):
        return 1.0 / tokens_per_s
    if isinstance(event, ev.PropagatedMask) and event.total > 0:
        return min(1.0 / 30.0, propagation_s / event.total)
    return 0.0


_END = object()


@dataclass
class _Failed:
    error: Exception


def read_ahead(events: Iterable[ev.Event], cancel: threading.Event) -> Iterator[ev.Event]:
    """``events``, pulled by a thread of their own as fast as they come and handed over in order.

    For a paced display: a pipeline is a generator, so a consumer that sleeps between events
    would suspend it, and the run's own stage timings (events, trace, stage table) would count the
    display's waits. Read ahead, the run takes its real time while the display follows at its pace.
    An exception from ``events`` is raised here, at its place in the stream. Leaving early sets
    ``cancel`` (the pipeline stops at its next check) and waits for the reader, so that whatever the
    pipeline uses (an open video) may be closed afterwards.
    """
    handed: queue.SimpleQueue[Any] = queue.SimpleQueue()
    abandoned = threading.Event()

    def pull() -> None:
        iterator = iter(events)
        try:
            for event in iterator:
                handed.put(event)
                if abandoned.is_set():
                    break
        except Exception as exc:
            handed.put(_Failed(exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
            handed.put(_END)

    reader = threading.Thread(target=pull, name="videoseg-read-ahead", daemon=True)
    reader.start()
    try:
        while (item := handed.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        abandoned.set()
        cancel.set()
        reader.join()


def drive(view: LiveView, events: Iterable[ev.Event], pace: float = 0.0) -> Iterator[dict[str, Any]]:
    """Feed events to ``view``; yield its outputs whenever an update is due, and always at the end.

    ``pace``: reasoning tokens per second to show (0: as fast as the events come; see
    :func:`pace_delay`). An exception from the event source (which the pipeline promises not to
    raise) still ends as a visible error message instead of a traceback.
    """
    iterator = iter(events)
    try:
        while True:
            try:
                event = next(iterator)
            except StopIteration:
                break
            except Exception as exc:
                view.apply(ev.RunError(for_stage=view.stage, message=f"{type(exc).__name__}: {exc}"))
                break
            try:
                values = view.outputs() if view.apply(event) else None
            except Exception as exc:
                # Events that do not fit together (a hand-edited trace, one from another version:
                # masks of another size than the recorded video...) cannot be drawn; say so instead
                # of letting Gradio show a bare "Error". What was already shown stays.
                yield _unshowable(view, event, exc)
                return
            if values is not None:
                yield values
            delay = pace_delay(event, pace)
            if delay > 0:
                time.sleep(delay)
        if not view.finished:
            # a source that stopped without RunFinished / RunError (e.g. a truncated trace)
            view.ended = True
            view.messages.append("⚠️ The event stream ended before the run finished (truncated trace?).")
            view.dirty.update(("status", "video", "downloads", "strip"))
        if view.dirty:
            try:
                values = view.outputs()
            except Exception as exc:
                values = _unshowable(view, None, exc)
            yield values
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
        view.close()


def _unshowable(view: LiveView, event: ev.Event | None, exc: Exception) -> dict[str, Any]:
    view.dirty.clear()
    where = f" at its {event.type} event" if event is not None else ""
    return message_outputs(
        f"This run cannot be shown{where}: {type(exc).__name__}: {hide_paths(str(exc), view.out_dir)}. "
        "Its events do not fit together (a trace edited by hand, or recorded for another video?)."
    )


def clear_values() -> dict[str, Any]:
    return empty_outputs()


def until_stopped(
    events: Iterable[ev.Event],
    stopped: Callable[[], bool],
    cancel: threading.Event,
    view: LiveView,
    note: str = "",
) -> Iterator[ev.Event]:
    """``events`` until Stop (``stopped()`` turns true): then ``cancel`` is set and the stream ends
    with the pipeline's own "cancelled" error, and ``note`` (see :func:`stopped_note`) is added to
    the view's messages, so that its final status also says how to start again.

    A run (or a replay) ends itself (status, stage table and trace say "cancelled") rather than being
    killed by Gradio's ``cancels``, which would leave its last "⏳ Running" update on screen. The
    check runs around every event, so real-model runs (whose pipeline cannot see ``cancel`` from a
    GPU worker) and paced replays stop at their next event too; an event that arrives after Stop is
    not shown."""

    def cancelled() -> ev.RunError | None:
        if not stopped() or view.finished:
            return None
        cancel.set()
        if note:
            view.messages.append(note)
        # stopped before any stage began: it is the sampler (stage 1) that did not run
        return ev.RunError.cancel(view.stage if view.stage in STAGES else STAGES[0])

    iterator = iter(events)
    try:
        for event in iterator:
            error = cancelled()
            if error is None:
                yield event
                error = cancelled()  # Stop pressed while the event was shown (or paced)
            if error is not None:
                yield error
                return
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


def stopped_message(what: str = "run", button: str = "Run") -> str:
    return (
        f"### ⏹ Cancelled\n\nYou stopped this {what}; what it had shown so far stays below. "
        f"Press {button} to start it again."
    )


def stopped_note(what: str = "run", button: str = "Run") -> str:
    """The line a stopped stream's own final status ends with (:func:`until_stopped`'s ``note``)."""
    return f"You stopped this {what}; press {button} to start it again."


def stop_values(
    status: str | None, stages: Any, what: str = "run", button: str = "Run"
) -> tuple[Any, Any, Any]:
    """(status, progress, stage table) at once after Stop, before the run's own "cancelled" update
    (a model step can take a while): a run in progress is marked stopped, its running stage too; a
    finished run, an error message or an empty page are left as they are."""
    if not status or "⏳" not in status.split("\n", 1)[0]:
        return gr.skip(), gr.skip(), gr.skip()
    progress = {"stage": "stopped", "status": "cancelled", "error": None, "stages_seen": []}
    table = stages.replace("running", "stopped") if hasattr(stages, "replace") else gr.skip()
    return stopped_message(what, button), progress, table


def wire_stop(
    ctx: AppContext,
    button: gr.Button,
    view: dict[str, gr.components.Component],
    what: str = "run",
    again: str = "Run",
) -> None:
    """Make ``button`` stop this session's ``what`` (see :func:`until_stopped`) and mark the view
    stopped at once.

    ``view``: a run view (:func:`build_run_view`: status, progress and stage table are marked), or
    only ``{"status": ...}`` for a tab that shows its work in one status (Compare, Interactive).

    No Gradio ``cancels``: killing the generator would leave its last "⏳ Running" update on screen
    (or one computed just before the kill arriving after this click's status). The stream sees the
    request after its next event and ends itself as cancelled; this click answers at once."""

    def stop(status_value: str, stages_value: Any, request: gr.Request) -> tuple[Any, Any, Any]:
        ctx.request_stop(session_hash(request), what)
        return stop_values(status_value, stages_value, what, again)

    def stop_status(status_value: str, request: gr.Request) -> Any:
        return stop(status_value, None, request)[0]

    if "stages" in view:
        handler, inputs = stop, [view["status"], view["stages"]]
        outputs = [view["status"], view["progress"], view["stages"]]
    else:
        handler, inputs, outputs = stop_status, [view["status"]], [view["status"]]
    button.click(
        handler,
        inputs=inputs,
        outputs=outputs,
        api_visibility="private",
        concurrency_limit=None,  # never waits behind runs; queue=False would flag the outputs "Error"
    )


def click_time() -> float:
    """When the button was clicked (its first, unqueued step): see :func:`started_at`."""
    return time.monotonic()


def started_at(clicked: Any) -> float:
    """From when a Stop counts for this work: the click that asked for it, when known, else now.

    A run waits in Gradio's queue behind other runs; a Stop pressed while it waits must keep it
    from running, so the click is stamped by a first step that never queues and the run reads it."""
    now = time.monotonic()
    return float(clicked) if isinstance(clicked, (int, float)) and 0 <= clicked <= now else now


def waiting_status(what: str = "run") -> str:
    """The status shown from the click until the work starts: it may wait in the queue, and the
    ⏳ lets its Stop (:func:`stop_values`) acknowledge a Stop pressed meanwhile."""
    return f"### ⏳ Starting the {what}… (on a busy server it waits for a free slot; Stop cancels it)"


def stamped(
    trigger: Callable[..., Any],
    fn: Callable[..., Any],
    inputs: list[Any],
    status: gr.components.Component,
    what: str = "run",
    **options: Any,
) -> Any:
    """Wire ``trigger`` (e.g. ``button.click``) to ``fn(*inputs, clicked, request)``: a first step
    that never queues stamps the click (:func:`click_time`) and shows :func:`waiting_status` in
    ``status``, then ``fn`` runs, queued, with ``options``. ``fn`` passes ``clicked`` to
    :func:`started_at`, so a Stop pressed while it waited in the queue stops it (and is
    acknowledged at once). The stamp is a ``gr.State``, which API callers do not send (they get None)."""
    clicked = gr.State(None)
    first = trigger(
        lambda: (click_time(), waiting_status(what)),
        outputs=[clicked, status],
        api_visibility="private",
        concurrency_limit=None,
        show_progress="hidden",
    )
    work = first.then(fn, inputs=[*inputs, clicked], **options)
    # Whatever makes the work fail before it can say so itself (an input Gradio cannot read, a
    # server error), the waiting status must not stay: it would spin "Starting…" forever.
    work.failure(
        lambda: failed_status(what),
        outputs=[status],
        api_visibility="private",
        concurrency_limit=None,
        show_progress="hidden",
    )
    return work


def failed_status(what: str = "run") -> str:
    """The status after work that failed before it could show its own message (see :func:`stamped`)."""
    return (
        f"### ❌ The {what} could not start: an input could not be read (the message above says which). "
        "Check the inputs and press the button again."
    )


def file_path(value: Any) -> str | None:
    """A path from a Gradio file value (str, dict with "path", or an object with ``.name``)."""
    if value is None:
        return None
    if isinstance(value, (str, Path)):
        return str(value)
    if isinstance(value, dict):
        return value.get("path") or value.get("name")
    return getattr(value, "path", None) or getattr(value, "name", None)


# ---------------------------------------------------------------------------------- API inputs


def guard_inputs(demo: gr.Blocks) -> None:
    """Make an input Gradio itself cannot read (an API caller's frame ``"abc"`` or ``None`` for a
    slider, a list for a dropdown, a file value without a path) end in a message naming the
    parameter, instead of Gradio's generic "the upstream app raised an exception".

    Gradio reads each input (its component's ``preprocess`` and file model) before the handler
    runs, and reports a failure there only as that generic error; only a ``gr.Error`` carries its
    message to the caller. So the demo's one input-reading step is wrapped and its failures are
    re-raised as ``gr.Error``: the handlers' own checks see every value that Gradio could read."""
    original = demo.preprocess_data

    async def preprocess_data(block_fn: Any, inputs: list[Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await original(block_fn, inputs, *args, **kwargs)
        except gr.Error as exc:
            # Gradio's own range check ("Value 1000000.0 is greater than maximum value 3599.")
            # does not say which input; name it when one is out of its range
            name = _out_of_range(block_fn, inputs)
            if name is None:
                raise
            raise gr.Error(
                f"The {name} parameter: {exc.message}", print_exception=False, title="Bad input"
            ) from exc
        except Exception as exc:
            message = input_problem(block_fn, inputs, exc)
            raise gr.Error(html_text(message), print_exception=False, title="Bad input") from exc

    demo.preprocess_data = preprocess_data  # type: ignore[method-assign]


def input_problem(block_fn: Any, inputs: list[Any], exc: Exception) -> str:
    """Which input of ``block_fn`` Gradio could not read, in the words of its API parameter."""
    blocks = list(getattr(block_fn, "inputs", []) or [])
    if not isinstance(inputs, list) or len(inputs) != len(blocks):
        return f"This endpoint takes {len(blocks)} input(s); it was given {_count(inputs)}."
    if "Dotfiles" in str(exc):  # Gradio's rule when the server's folder holds its upload folder
        names = _parameter_names(getattr(block_fn, "fn", None))
        for i, value in enumerate(inputs):
            path = value.get("path") if isinstance(value, dict) else None
            if isinstance(path, str) and Path(path).name.startswith("."):
                name = names[i] if i < len(names) else "file"
                return (
                    f"The {name} file's name starts with a dot ({Path(path).name!r}), which this server "
                    "does not accept; rename it without the leading dot and upload it again."
                )
    index = None
    found = re.search(r"at index (\d+)", str(exc))
    if found and int(found.group(1)) < len(blocks):
        index = int(found.group(1))
    else:  # a file value that is not one (checked by its model before preprocess)
        for i, (block, value) in enumerate(zip(blocks, inputs)):
            model = getattr(block, "data_model", None)
            if model is None or value is None:
                continue
            try:
                model.model_validate(value, context={"validate_meta": True})
            except Exception:
                index = i
                break
    if index is None:
        return "An input could not be read; check the types of the values sent."
    block, value = blocks[index], inputs[index]
    names = _parameter_names(getattr(block_fn, "fn", None))
    name = names[index] if index < len(names) else getattr(block, "label", None) or f"input {index + 1}"
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return f"The {name} parameter cannot be read: it must be {_expected(block)}, not {shown}."


def _out_of_range(block_fn: Any, inputs: list[Any]) -> str | None:
    """The API name of the first number input outside its component's range, or None."""
    names = _parameter_names(getattr(block_fn, "fn", None))
    for i, (block, value) in enumerate(zip(getattr(block_fn, "inputs", []) or [], inputs or [])):
        if not isinstance(block, (gr.Slider, gr.Number)) or not isinstance(value, (int, float)):
            continue
        low, high = getattr(block, "minimum", None), getattr(block, "maximum", None)
        if (low is not None and value < low) or (high is not None and value > high):
            return names[i] if i < len(names) else f"input {i + 1}"
    return None


def _count(inputs: Any) -> str:
    return str(len(inputs)) if isinstance(inputs, list) else type(inputs).__name__


def _parameter_names(fn: Any) -> list[str]:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.name not in ("request", "evt") and p.annotation not in (gr.Request,)]


def _expected(block: Any) -> str:
    if isinstance(block, (gr.Slider, gr.Number)):
        low, high = getattr(block, "minimum", None), getattr(block, "maximum", None)
        if low is not None and high is not None:
            return f"a number from {low:g} to {high:g}"
        return "a number"
    if isinstance(block, gr.Dropdown):
        return "one of its choices, as text"
    if isinstance(block, (gr.Video, gr.File, gr.Image)):
        return "a file (from Python: gradio_client.handle_file(path)) or null"
    if isinstance(block, gr.Checkbox):
        return "true or false"
    if isinstance(block, gr.Textbox):
        return "text"
    return f"a value for a {block.get_block_name()}"


__all__ = [
    "AppContext",
    "build_run_view",
    "clear_values",
    "click_time",
    "drive",
    "failed_status",
    "file_path",
    "guard_inputs",
    "input_problem",
    "message_outputs",
    "ordered",
    "read_ahead",
    "session_hash",
    "stamped",
    "started_at",
    "stop_values",
    "stopped_message",
    "stopped_note",
    "to_updates",
    "until_stopped",
    "waiting_status",
    "wire_stop",
]
