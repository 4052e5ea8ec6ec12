"""Per-propagator diagnosis in the explorer (paper step 3b): where each run's masks start to drift.

For the runs of a comparison (or one inspected run): per-frame mask area and IoU with the previous
frame (:func:`videoseg.eval.diagnosis.track_diagnosis`), frames/s and peak memory as the propagation
stage reported them, and each run's worst frame side by side (lowest J&F when the ground truth is
known, else the largest jump). The Compare tab computes it when both runs are done
(:func:`remember`) and shows it in a follow-up step (:func:`shown`), so the ``compare`` endpoint's
outputs stay as they were; the Inspect tab does the same for a replayed trace (:func:`shown_replay`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import gradio as gr
import numpy as np

from videoseg.core.interfaces import VideoSource
from videoseg.core.masks import union_stack
from videoseg.core.state import RunState
from videoseg.eval.diagnosis import TrackDiagnosis, diagnose_run
from videoseg.viz.curves import DIAGNOSIS_HEADERS, diagnosis_rows, drift_figure, side_by_side

MAX_SESSIONS = 64  # diagnoses kept for the follow-up step (one per browser session, newest kept)

# (session, "compare" | "replay") -> (figure, table rows, worst-frames image)
_last: OrderedDict[tuple[str, str], tuple[Any, list[list[Any]], np.ndarray | None]] = OrderedDict()
_lock = threading.Lock()


def diagnoses_of(
    names: Sequence[str], states: Sequence[RunState], gt: np.ndarray | None = None
) -> dict[str, TrackDiagnosis]:
    """Run name -> diagnosis for the runs that finished with masks on every frame."""
    out: dict[str, TrackDiagnosis] = {}
    for name, state in zip(names, states):
        if state.status == "finished" and state.num_frames and len(state.masks) == state.num_frames:
            out[name] = diagnose_run(state, gt)
    return out


def worst_frames_image(
    diagnoses: dict[str, TrackDiagnosis], states: dict[str, RunState], video: VideoSource | None
) -> np.ndarray | None:
    """Each run's worst frame with its masks drawn, side by side, captioned with run and frame
    (on a grey canvas when the video is not at hand, as a replay without its video)."""
    from videoseg.viz.overlay import overlay_masks

    panels = []
    for name, d in diagnoses.items():
        if d.worst_frame is None:
            continue
        state = states[name]
        masks = state.masks[d.worst_frame]
        height, width = masks.shape[1:]
        if video is not None:
            frame = video.frames([d.worst_frame])[0]
        else:
            frame = np.full((height, width, 3), 40, dtype=np.uint8)
        union = union_stack({0: masks}, 1, height, width)
        panels.append((f"{name}: frame {d.worst_frame}", overlay_masks(frame, union)))
    return side_by_side(panels) if panels else None


def remember(
    session: str | None,
    names: Sequence[str],
    states: Sequence[RunState],
    video: VideoSource | None,
    gt: np.ndarray | None = None,
    what: str = "compare",
) -> None:
    """Compute the diagnosis of a comparison (``what`` "compare") or a replay ("replay") and keep it
    for :func:`shown` / :func:`shown_replay` (bounded in sessions)."""
    diagnoses = diagnoses_of(names, states, gt)
    if not diagnoses:
        value: tuple[Any, list[list[Any]], np.ndarray | None] = (None, [], None)
    else:
        by_name = dict(zip(names, states))
        value = (
            drift_figure(diagnoses),
            diagnosis_rows(diagnoses),
            worst_frames_image(diagnoses, by_name, video),
        )
    key = (session or "", what)
    with _lock:
        _last[key] = value
        _last.move_to_end(key)
        while len(_last) > MAX_SESSIONS:
            _last.popitem(last=False)


def shown(request: gr.Request | None = None, what: str = "compare") -> list[Any]:
    """[drift figure, table rows, worst-frames image] of the session's last comparison (or replay)."""
    session = getattr(request, "session_hash", None) if request is not None else None
    with _lock:
        value = _last.get((session or "", what))
    if value is None:
        return [None, [], None]
    return list(value)


def shown_replay(request: gr.Request | None = None) -> list[Any]:
    """:func:`shown` for the Inspect tab's last replay."""
    return shown(request, "replay")


def build_diagnosis_panel(label: str = "Per-propagator diagnosis") -> dict[str, Any]:
    """The components: drift curves, the per-run table and the worst frames side by side."""
    with gr.Accordion(label, open=False):
        gr.Markdown(
            "Mask area and IoU with the previous frame per frame: a sharp drop of the IoU away from the "
            "keyframe (dotted) is where the propagation starts to drift (×). Frames/s and peak memory are "
            "the propagation stage's own (CUDA allocator peak on a GPU, resident memory sampled per frame "
            "on the CPU)."
        )
        plot = gr.Plot(label="Mask area and IoU with the previous frame")
        table = gr.Dataframe(headers=DIAGNOSIS_HEADERS, label="Per run", interactive=False)
        image = gr.Image(label="Worst frame of each run", type="numpy", interactive=False, height=260)
    return {"plot": plot, "table": table, "image": image}


__all__ = ["build_diagnosis_panel", "diagnoses_of", "remember", "shown", "shown_replay", "worst_frames_image"]
