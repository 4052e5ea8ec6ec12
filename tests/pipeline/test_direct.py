"""The sam3-text direct method (beside the paper's pipeline) on a tiny random SAM 3 video model.

Loaded through the real ``from_pretrained`` path from a checkpoint built offline
(tests/support/tiny_trackers.py; detection thresholds 0 so the random detector reports instances).
What is tested: the text SAM 3 gets (the noun-phrase rule, or the query as typed, shown as such), the
events a consumer folds (one target, every frame once and in order, the keyframe at 0, timings), that
pruning the streaming session changes no output, and that a cancel stops the frame loop.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.tiny_models import torch_single_thread  # noqa: F401  (fixture)
from tests.support.tiny_trackers import tiny_sam3_dir  # noqa: F401  (fixture)
from videoseg.core.config import PipelineConfig, preset
from videoseg.core.events import KeyframeMask, PromptShown, PropagatedMask, RunWarning, StageTiming
from videoseg.core.masks import decode_rle
from videoseg.core.state import RunState
from videoseg.io.video import ArrayVideo
from videoseg.pipeline.direct import Sam3Text, concept_phrase, concept_prompt, run_direct

H, W = 48, 64


def _video(n: int, seed: int = 0) -> ArrayVideo:
    frames = np.random.default_rng(seed).integers(0, 256, (n, H, W, 3), dtype=np.uint8)
    return ArrayVideo(frames, fps=10.0)


def _drain(gen):
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            return events, stop.value


@pytest.mark.parametrize(
    ("query", "phrase"),
    [
        ("the man who appears after the car turns left", "man"),  # relative clause
        ("Segment the red square moving right", "red square"),  # instruction + participle
        ("a black dog on the left", "black dog"),  # preposition
        ("which animal is running fastest?", "animal"),  # question word + verb
        ("Please find all the yellow school buses.", "yellow school buses"),
        ("the person holding an umbrella", "person"),
        ("the first car to stop", "first car"),
        ("the big brown dog jumping over the fence", "big brown dog"),
        ("who is the tallest person", "tallest person"),
        ("the cup of coffee", "cup of coffee"),  # "of" stays inside a noun phrase
        ("dog", "dog"),
        ("the", "the"),  # the rule empties it: the text as typed
        ("   moving   ", "moving"),
    ],
)
def test_concept_phrase_rule(query, phrase):
    assert concept_phrase(query) == phrase


def test_concept_prompt_says_where_the_text_came_from():
    text, how = concept_prompt("the red  square that turns", PipelineConfig(method="sam3-text"))
    assert text == "red square" and "noun phrase" in how and "no reasoning" in how
    text, how = concept_prompt(
        "the red  square that turns", PipelineConfig(method="sam3-text", sam3_text="query")
    )
    assert text == "the red square that turns" and how == "the query as typed"


def test_config_checks_the_method_fields():
    with pytest.raises(ValueError, match="method"):
        PipelineConfig(method="sam4")
    with pytest.raises(ValueError, match="sam3_text"):
        PipelineConfig(sam3_text="sentence")
    config = preset("sam3-text")
    assert config.method == "sam3-text" and not config.weights_free


@pytest.fixture(scope="module")
def config(tiny_sam3_dir):  # noqa: F811
    return preset("sam3-text", sam3_model=str(tiny_sam3_dir), device="cpu")


@pytest.fixture(scope="module")
def run_events(config):
    events, result = _drain(run_direct(_video(4), "the red square that turns left", config))
    return events, result


def test_events_fold_into_one_target_on_every_frame(run_events):
    events, result = run_events
    state = RunState.from_events(events)
    assert result.num_targets == 1 and set(result.timings) == {"segmenter", "propagator"}
    assert state.keyframe == 0 and state.num_targets == 1
    assert sorted(state.masks) == [0, 1, 2, 3]
    assert all(state.masks[i].shape == (1, H, W) for i in range(4))
    assert {s: b.name for s, b in state.backends.items()} == {
        "segmenter": "sam3-text",
        "propagator": "sam3-text",
    }
    frames = [(e.frame_idx, e.direction, e.done) for e in events if isinstance(e, PropagatedMask)]
    assert frames == [(0, "keyframe", 1), (1, "forward", 2), (2, "forward", 3), (3, "forward", 4)]
    timing = [e.for_stage for e in events if isinstance(e, StageTiming)]
    assert timing == ["segmenter", "propagator"]


def test_the_concept_text_is_shown_as_such(run_events):
    events, _ = run_events
    prompts = [e for e in events if isinstance(e, PromptShown)]
    assert len(prompts) == 1 and prompts[0].purpose == "concept"
    assert prompts[0].text.startswith("red square\n") and "no reasoning" in prompts[0].text


def test_keyframe_mask_is_the_union_of_frame_0s_instances(run_events):
    events, _ = run_events
    key = next(e for e in events if isinstance(e, KeyframeMask))
    first = next(e for e in events if isinstance(e, PropagatedMask))
    assert key.frame_idx == 0 and key.rle == first.rles[0]
    mask = decode_rle(key.rle)
    assert key.area == int(mask.sum())
    if key.area:  # the random detector found something: its box is the mask's extent
        ys, xs = np.nonzero(mask)
        assert key.cues["box"] == [xs.min(), ys.min(), xs.max(), ys.max()]


class _Nothing:
    """A SAM 3 that finds nothing: the run still covers every frame and warns."""

    model_id, description = "none", "finds nothing"

    class device:  # stands in for a torch.device
        type = "cpu"

    def segment(self, video, text, memory_window=-1):
        for idx in range(len(video)):
            yield idx, np.zeros((0, H, W), bool), np.zeros(0)


def test_no_instance_anywhere_gives_empty_masks_and_a_warning():
    events, _ = _drain(
        run_direct(_video(3), "the unicorn", PipelineConfig(method="sam3-text"), backend=_Nothing())
    )
    state = RunState.from_events(events)
    assert sorted(state.masks) == [0, 1, 2] and not any(state.masks[i].any() for i in range(3))
    warnings = [e.message for e in events if isinstance(e, RunWarning)]
    assert len(warnings) == 1 and "unicorn" in warnings[0]


def test_a_cancel_stops_the_frame_loop():
    class Stop(Exception):
        pass

    seen = []

    def check():
        if len(seen) >= 2:
            raise Stop
        seen.append(1)

    gen = run_direct(_video(6), "dog", PipelineConfig(method="sam3-text"), check=check, backend=_Nothing())
    with pytest.raises(Stop):
        _drain(gen)
    assert len(seen) == 2


@pytest.mark.slow
def test_pruning_the_streaming_session_changes_no_output(config):
    """The tiny tracker remembers 2 frames and 3 object pointers; 8 frames reach past both."""
    sam3 = Sam3Text.load(config)
    video = _video(8, seed=5)
    bounded = list(sam3.segment(video, "square"))
    unbounded = list(sam3.segment(video, "square", memory_window=None))
    assert [i for i, *_ in bounded] == list(range(8))
    for (_, ma, sa), (_, mb, sb) in zip(bounded, unbounded):
        np.testing.assert_array_equal(ma, mb)
        np.testing.assert_allclose(sa, sb)


def test_the_orchestrator_dispatches_the_direct_method(config):
    """pipeline.run with method sam3-text: RunStarted, the direct events, RunFinished with timings."""
    from videoseg.core.events import RunFinished, RunStarted
    from videoseg.pipeline import run

    events = list(run(_video(3), "the red square", config, preset="sam3-text"))
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)
    assert events[0].config["method"] == "sam3-text"
    finished = events[-1]
    assert finished.num_targets == 1 and set(finished.timings) == {"segmenter", "propagator"}
    state = RunState.from_events(events)
    assert state.status == "finished" and sorted(state.masks) == [0, 1, 2]
    assert state.sampler_result is None and state.reasoning is None  # no HTFS, no reasoning


def test_a_cancel_through_the_orchestrator_ends_with_the_cancel_error(config):
    import threading

    from videoseg.pipeline import CANCELLED, run

    cancel = threading.Event()
    events = []
    for event in run(_video(5), "the red square", config, cancel=cancel):
        events.append(event)
        if isinstance(event, PropagatedMask) and event.frame_idx == 1:
            cancel.set()
    assert events[-1].type == "error" and events[-1].message == CANCELLED
    assert max(e.frame_idx for e in events if isinstance(e, PropagatedMask)) == 1


def test_the_command_line_refuses_sam3_text_before_any_work_naming_its_option(monkeypatch, capsys, tmp_path):
    from videoseg.cli.main import main
    from videoseg.runtime import loading, weights

    monkeypatch.setattr(loading, "hub_reachable", lambda: False)
    monkeypatch.setattr(weights, "_hub_token", lambda: None)
    monkeypatch.setattr(weights, "locate", lambda model_id: (False, f"hub download ({model_id})"))
    code = main(["run", "v.mp4", "the dog", "--preset", "sam3-text", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code != 0 and "facebook/sam3" in err and "gated on the hub (SAM License)" in err
    assert "--sam3 PATH" in err and "Traceback" not in err
