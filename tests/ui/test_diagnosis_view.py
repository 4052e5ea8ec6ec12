"""The per-propagator diagnosis panel of the Compare tab on two real weights-free runs.

Two presets run through the pipeline on a bundled shapes clip; the panel's values (drift figure, table
with frames/s and peak memory, worst frames side by side) are computed as Compare computes them and
read back per session, as the follow-up step shows them.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from videoseg.core.state import RunState
from videoseg.io.video import open_video
from videoseg.pipeline import run
from videoseg.ui import diagnosis_view
from videoseg.viz.curves import DIAGNOSIS_HEADERS


@pytest.fixture(scope="module")
def runs():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "shapes" / "turn" / "video.mp4"
    names = ["shapes", "shapes-first-frame"]
    states = [RunState.from_events(run(path, "the circle that turns right", preset=n)) for n in names]
    video = open_video(path)
    yield names, states, video
    video.close()


def test_compare_diagnosis_is_kept_per_session_and_shown(runs):
    names, states, video = runs
    diagnosis_view.remember("session-a", names, states, video)
    figure, rows, image = diagnosis_view.shown(SimpleNamespace(session_hash="session-a"))
    assert [r[0] for r in rows] == names and len(rows[0]) == len(DIAGNOSIS_HEADERS)
    assert all(r[1] is not None and r[1] > 0 for r in rows)  # frames/s from the propagation stage
    assert all(r[2] is not None and r[2] > 0 for r in rows)  # peak memory (resident, on the CPU)
    assert {t.name for t in figure.data} >= set(names)
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    assert diagnosis_view.shown(SimpleNamespace(session_hash="another")) == [None, [], None]
    # a new comparison that stops clears it: no stale panel
    diagnosis_view.remember("session-a", [], [], video)
    assert diagnosis_view.shown(SimpleNamespace(session_hash="session-a")) == [None, [], None]


def test_worst_frame_panel_uses_the_ground_truth_when_known(runs):
    names, states, video = runs
    gt = np.zeros((len(video), video.size[1], video.size[0]), dtype=bool)  # nothing there: any mask is wrong
    diagnoses = diagnosis_view.diagnoses_of(names, states, gt)
    assert all(d.worst_reason.startswith("lowest J&F") for d in diagnoses.values())
    assert all(d.worst_frame == int(np.argmin(d.jf)) for d in diagnoses.values())


def test_runs_that_did_not_finish_are_left_out(runs):
    video = runs[2]
    assert diagnosis_view.diagnoses_of(["x"], [RunState()]) == {}
    diagnosis_view.remember("session-b", ["x"], [RunState()], video)
    assert diagnosis_view.shown(SimpleNamespace(session_hash="session-b")) == [None, [], None]


def test_compare_offers_method_and_propagator_rows_on_the_bundled_clips(tmp_path):
    from videoseg.ui.examples import available_examples, compare_rows

    rows, labels = compare_rows(available_examples(tmp_path))
    pairs = {(r[2], r[3]): label for r, label in zip(rows, labels)}
    assert pairs[("paper", "sam3-text")].startswith("VideoSeg-R1 vs SAM 3 text")
    assert pairs[("shapes-xmem", "shapes-sam2-video")].startswith("XMem vs SAM 2.1")
    assert pairs[("shapes-sam2-video", "shapes-edgetam")].startswith("SAM 2.1 vs EdgeTAM")
    # the propagator rows differ only in the propagator, on the occlusion clip
    xmem = next(r for r in rows if r[2] == "shapes-xmem")
    assert "occlusion" in xmem[0] and "hidden behind" in xmem[1]


def test_a_replayed_trace_gets_its_diagnosis_in_inspect(tmp_path):
    from videoseg.ui.common import AppContext
    from videoseg.ui.examples import TRACES_DIR, available_examples
    from videoseg.ui.session import SessionStore, UploadCaps
    from videoseg.ui.tabs.inspect import replay_stream

    ctx = AppContext(
        store=SessionStore(tmp_path / "store"), caps=UploadCaps(), examples=available_examples(tmp_path)
    )
    trace = sorted(TRACES_DIR.glob("*.jsonl"))[0]
    request = SimpleNamespace(session_hash="inspect-session")
    list(replay_stream(ctx, str(trace), None, request))
    figure, rows, image = diagnosis_view.shown_replay(request)
    assert len(rows) == 1 and rows[0][4] is not None  # one run, its worst frame
    assert figure is not None and image.ndim == 3
    # the Compare slot of the same session is separate
    assert diagnosis_view.shown(request) == [None, [], None]
