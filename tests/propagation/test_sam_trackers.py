"""EdgeTAM and the SAM 3 tracker as propagators (paper step 3b, beyond the paper) on tiny random models.

Both load through the real ``from_pretrained`` path (runtime.backends -> TrackerPropagator ->
transformers) from checkpoints built offline (tests/support/tiny_trackers.py). What is tested is the
one-direction contract: each frame of the direction exactly once, in order, (K, H, W) bool at original
resolution; empty targets stay empty; bounded reads; pruning the session changes no output; the
cue prompt reaches the model; and the gated SAM 3 weights are refused before a run, with the reason.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.tiny_models import torch_single_thread  # noqa: F401  (fixture)
from tests.support.tiny_trackers import tiny_edgetam_dir, tiny_sam3_dir  # noqa: F401  (fixtures)
from videoseg.core.config import PipelineConfig, preset
from videoseg.core.cues import TargetCues
from videoseg.io.video import ArrayVideo
from videoseg.propagation.edgetam import EdgeTamPropagator
from videoseg.propagation.sam3_tracker import Sam3TrackerPropagator
from videoseg.propagation.sam_tracker import READ_CHUNK, cue_prompt, frame_order
from videoseg.runtime import backends, weights

H, W = 48, 64


def _video(n: int, seed: int = 0) -> ArrayVideo:
    frames = np.random.default_rng(seed).integers(0, 256, (n, H, W, 3), dtype=np.uint8)
    return ArrayVideo(frames, fps=10.0)


def _masks(k: int = 2) -> np.ndarray:
    masks = np.zeros((k, H, W), dtype=bool)
    masks[0, 10:30, 12:40] = True
    if k > 1:
        masks[1, 5:15, 45:60] = True
    return masks


@pytest.fixture(scope="module", params=["edgetam", "sam3-tracker"])
def config(request, tiny_edgetam_dir, tiny_sam3_dir):  # noqa: F811
    return PipelineConfig(
        propagator=request.param,
        edgetam_model=str(tiny_edgetam_dir),
        sam3_model=str(tiny_sam3_dir),
        device="cpu",
    )


@pytest.fixture(scope="module")
def propagator(config):
    # Through the backend registry, as the pipeline builds it.
    return backends.make_propagator(config)


def test_registry_builds_the_named_tracker(propagator, config):
    expected = {"edgetam": EdgeTamPropagator, "sam3-tracker": Sam3TrackerPropagator}[config.propagator]
    assert type(propagator) is expected
    assert propagator.info.name == config.propagator and not propagator.info.weights_free
    model_class = {"edgetam": "EdgeTamVideoModel", "sam3-tracker": "Sam3TrackerVideoModel"}[config.propagator]
    assert type(propagator.model).__name__ == model_class  # the checkpoint really went through it


@pytest.mark.parametrize(
    ("n", "start", "direction"),
    [
        (6, 2, "forward"),
        (6, 2, "backward"),
        (4, 0, "forward"),
        (4, 3, "backward"),
        (4, 3, "forward"),
        (4, 0, "backward"),
    ],
)
def test_each_frame_of_the_direction_once_in_order(propagator, n, start, direction):
    out = list(propagator.propagate(_video(n), start, _masks(), direction))
    assert [idx for idx, _ in out] == list(frame_order(start, n, direction))
    for _, masks in out:
        assert masks.shape == (2, H, W) and masks.dtype == bool


def test_an_empty_target_stays_empty_beside_a_tracked_one(propagator):
    masks = _masks()
    masks[1] = False
    out = list(propagator.propagate(_video(5), 1, masks, "forward"))
    assert all(not m[1].any() for _, m in out)


def test_all_empty_start_runs_no_model(propagator):
    calls = []
    hook = propagator.model.register_forward_hook(lambda *a: calls.append(1))
    try:
        out = list(propagator.propagate(_video(4), 1, np.zeros((1, H, W), dtype=bool), "backward"))
    finally:
        hook.remove()
    assert [idx for idx, _ in out] == [0] and not out[0][1].any() and not calls


def test_bad_arguments_are_named(propagator):
    with pytest.raises(ValueError, match="direction"):
        list(propagator.propagate(_video(3), 0, _masks(), "sideways"))
    with pytest.raises(ValueError, match="keyframe 5 is outside"):
        list(propagator.propagate(_video(3), 5, _masks(), "forward"))
    with pytest.raises(ValueError, match=r"\(K, 48, 64\)"):
        list(propagator.propagate(_video(3), 0, np.zeros((1, 10, 10), bool), "forward"))


class CountingVideo(ArrayVideo):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reads: list[int] = []

    def frames(self, indices):
        self.reads.append(len(indices))
        return super().frames(indices)


def test_frames_are_read_in_bounded_chunks(propagator):
    frames = np.random.default_rng(1).integers(0, 256, (READ_CHUNK + 2, H, W, 3), dtype=np.uint8)
    video = CountingVideo(frames, fps=10.0)
    list(propagator.propagate(video, 0, _masks(), "forward"))
    assert max(video.reads) <= READ_CHUNK and sum(video.reads) == len(frames)


@pytest.mark.slow
def test_pruning_the_session_changes_no_output(config):
    """The tiny models remember 2 frames (num_maskmem 3) and 3 object pointers: 9 frames reach past both."""
    cls = type(backends.make_propagator(config))
    bounded, unbounded = cls(config), cls(config, memory_window=None)
    video = _video(9, seed=3)
    a = list(bounded.propagate(video, 0, _masks(), "forward"))
    b = list(unbounded.propagate(video, 0, _masks(), "forward"))
    assert [i for i, _ in a] == [i for i, _ in b]
    for (_, x), (_, y) in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_pruning_keeps_the_session_small(config, monkeypatch):
    """What the session stores stays within the memory reach however long the video."""
    propagator = backends.make_propagator(config)
    sizes: list[tuple[int, int]] = []
    forget = propagator._forget

    def spy(session, step):
        forget(session, step)
        outputs = max(len(p["non_cond_frame_outputs"]) for p in session.output_dict_per_obj.values())
        sizes.append((len(session.processed_frames or {}), outputs))

    monkeypatch.setattr(propagator, "_forget", spy)
    list(propagator.propagate(_video(10), 0, _masks(1), "forward"))
    assert max(p for p, _ in sizes) <= 1
    assert max(o for _, o in sizes) <= propagator.memory_window + 1


# ------------------------------------------------------------------------------ prompting with cues


@pytest.mark.parametrize(
    ("cues", "expected"),
    [
        (None, None),
        (TargetCues(), None),  # no cue at all
        (TargetCues(negatives=[[1, 2]]), None),  # negatives alone name no object
        (TargetCues(point=[5, 6]), {"points": [[5.0, 6.0]], "labels": [1], "box": None}),
        (
            TargetCues(box=[1, 2, 9, 8], point=[5, 6], negatives=[[0, 0], [3, 3]]),
            {
                "points": [[5.0, 6.0], [0.0, 0.0], [3.0, 3.0]],
                "labels": [1, 0, 0],
                "box": [1.0, 2.0, 9.0, 8.0],
            },
        ),
        (TargetCues(box=[1, 2, 9, 8]), {"points": [], "labels": [], "box": [1.0, 2.0, 9.0, 8.0]}),
    ],
)
def test_cue_prompt_labels_positive_1_negative_0(cues, expected):
    assert cue_prompt(cues) == expected


def test_cue_prompting_reaches_the_processor(config, monkeypatch):
    propagator = backends.make_propagator(config.replace(tracker_prompt="cues"))
    calls: list[dict] = []
    add = propagator.processor.add_inputs_to_inference_session

    def spy(session, **kwargs):
        calls.append(kwargs)
        return add(session, **kwargs)

    monkeypatch.setattr(propagator.processor, "add_inputs_to_inference_session", spy)
    cues = [
        TargetCues(box=[12, 10, 40, 30], point=[26, 20], negatives=[[2, 2]]),
        TargetCues(box=[45, 5, 60, 15], point=[52, 10]),
    ]
    out = list(propagator.propagate(_video(3), 0, _masks(), "forward", cues=cues))
    assert [i for i, _ in out] == [1, 2]
    assert len(calls) == 1 and "input_masks" not in calls[0]
    assert calls[0]["input_boxes"] == [[[12.0, 10.0, 40.0, 30.0], [45.0, 5.0, 60.0, 15.0]]]
    assert calls[0]["input_labels"] == [[[1, 0], [1]]]
    # One target without cues: the processors take one prompt kind for all, so the masks are used.
    calls.clear()
    list(propagator.propagate(_video(3), 0, _masks(), "forward", cues=[cues[0], TargetCues()]))
    assert len(calls) == 1 and "input_masks" in calls[0] and len(calls[0]["input_masks"]) == 2


def test_mask_prompting_ignores_the_cues(propagator, monkeypatch):
    calls: list[dict] = []
    add = propagator.processor.add_inputs_to_inference_session
    monkeypatch.setattr(
        propagator.processor,
        "add_inputs_to_inference_session",
        lambda s, **kw: calls.append(kw) or add(s, **kw),
    )
    list(propagator.propagate(_video(2), 0, _masks(1), "forward", cues=[TargetCues(point=[20, 20])]))
    assert "input_masks" in calls[0]


# ------------------------------------------------------------------------------ gated weights


@pytest.fixture
def nothing_local(monkeypatch):
    """No checkpoint on this machine, so every requirement is judged by where it would come from."""
    return lambda model_id: (False, f"hub download ({model_id})")


def test_sam3_without_a_token_is_refused_before_the_run_with_the_reason(monkeypatch, nothing_local):
    from videoseg.runtime import loading

    monkeypatch.setattr(loading, "hub_reachable", lambda: True)
    monkeypatch.setattr(weights, "_hub_token", lambda: None)
    for name in ("paper-sam3-tracker", "sam3-text"):
        missing = weights.unavailable(preset(name), locate_fn=nothing_local)
        assert [r.model_id for r in missing if "sam3" in r.model_id] == ["facebook/sam3"], name
        text = weights.listing(missing)
        assert "gated on the hub (SAM License)" in text and "huggingface.co/facebook/sam3" in text
        assert "HF_TOKEN" in text
    refusal = weights.command_line_refusal("sam3-text", preset("sam3-text"), with_options=True)
    assert refusal is not None and refusal.startswith("error:") and "gated" in refusal


def test_sam3_with_an_unauthorised_token_is_refused(monkeypatch, nothing_local):
    from huggingface_hub.errors import GatedRepoError

    from videoseg.runtime import loading

    monkeypatch.setattr(loading, "hub_reachable", lambda: True)
    monkeypatch.setattr(weights, "_hub_token", lambda: "hf_not_accepted")
    monkeypatch.setattr(weights, "_AUTHORISED", {})

    def refuse(repo_id, token=None, **kwargs):
        error = GatedRepoError.__new__(GatedRepoError)  # the hub's answer, without an HTTP response
        Exception.__init__(error, f"Access to model {repo_id} is restricted")
        raise error

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "auth_check", refuse)
    missing = weights.unavailable(preset("sam3-text"), locate_fn=nothing_local)
    assert "not authorised" in weights.listing(missing)


def test_sam3_with_an_authorised_token_may_download(monkeypatch, nothing_local):
    import huggingface_hub

    from videoseg.runtime import loading

    monkeypatch.setattr(loading, "hub_reachable", lambda: True)
    monkeypatch.setattr(weights, "_hub_token", lambda: "hf_accepted")
    monkeypatch.setattr(weights, "_AUTHORISED", {})
    monkeypatch.setattr(huggingface_hub, "auth_check", lambda repo_id, token=None, **kw: None)
    assert weights.unavailable(preset("sam3-text"), locate_fn=nothing_local) == []


def test_edgetam_is_not_gated(monkeypatch, nothing_local):
    from videoseg.runtime import loading

    monkeypatch.setattr(loading, "hub_reachable", lambda: True)
    monkeypatch.setattr(weights, "_hub_token", lambda: None)
    assert weights.unavailable(preset("paper-edgetam"), roles=("propagator",), locate_fn=nothing_local) == []


def test_a_local_copy_of_sam3_needs_no_token(monkeypatch, tiny_sam3_dir):  # noqa: F811
    monkeypatch.setattr(weights, "_hub_token", lambda: None)
    assert weights.unavailable(preset("sam3-text", sam3_model=str(tiny_sam3_dir))) == []


def test_presets_name_the_trackers():
    assert preset("paper-edgetam").propagator == "edgetam"
    assert preset("paper-sam3-tracker").propagator == "sam3-tracker"
    assert preset("shapes-edgetam").edgetam_model == "yonigozlan/EdgeTAM-hf"
    with pytest.raises(ValueError, match="tracker_prompt"):
        PipelineConfig(tracker_prompt="scribble")


# ------------------------------------------------------------------------------ end to end


@pytest.mark.slow
@pytest.mark.parametrize("name", ["edgetam", "sam3-tracker"])
def test_a_whole_run_on_a_bundled_clip_with_the_tracker(name, tiny_edgetam_dir, tiny_sam3_dir):  # noqa: F811
    """shapes reasoner + GrabCut + the tracker on a bundled 71-frame clip, through pipeline.run."""
    from pathlib import Path

    from videoseg.core.state import RunState
    from videoseg.pipeline import run

    video = Path(__file__).resolve().parents[2] / "examples" / "shapes" / "turn" / "video.mp4"
    config = preset("shapes-edgetam", propagator=name, device="cpu")
    config = config.replace(edgetam_model=str(tiny_edgetam_dir), sam3_model=str(tiny_sam3_dir))
    state = RunState.from_events(run(video, "the circle that turns right", config))
    assert state.status == "finished", [e.message for e in state.errors]
    assert state.backends["propagator"].name == name and state.num_targets == 1
    assert sorted(state.masks) == list(range(71))
    directions = {state.directions[i] for i in range(71)} - {"keyframe"}
    assert directions <= {"forward", "backward"} and len(directions) >= 1
