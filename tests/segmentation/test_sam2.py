"""SAM2 keyframe segmentation (paper step 3a): prompts, coordinate spaces, best-mask choice, resolution.

Tiny random SAM2 models (transformers and official package) take 256 x 256 inputs, so a prompt at
(x, y) on a W x H frame must reach the model at (x * 256 / W, y * 256 / H).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from tests.support.tiny_models import (  # noqa: F401  (fixtures)
    tiny_official_sam2_dir,
    tiny_sam2_dir,
    torch_single_thread,
)
from videoseg.core.config import PipelineConfig
from videoseg.core.cues import TargetCues
from videoseg.runtime import loading as models
from videoseg.segmentation.sam2 import (
    OfficialSam2Segmenter,
    Sam2Prompt,
    Sam2Segmenter,
    best_mask,
    official_config_name,
    sam2_prompt,
)

H, W = 90, 120
SX, SY = 256 / W, 256 / H


@pytest.mark.parametrize(
    ("cues", "expected"),
    [
        # all three cues: positive point first (label 1), then the negatives (label 0)
        (
            TargetCues(box=[10, 20, 60, 70], point=[30, 40], negatives=[[5, 6], [100, 80]]),
            Sam2Prompt(points=[[30, 40], [5, 6], [100, 80]], labels=[1, 0, 0], box=[10, 20, 60, 70]),
        ),
        (TargetCues(box=[10, 20, 60, 70]), Sam2Prompt(points=[], labels=[], box=[10, 20, 60, 70])),
        (TargetCues(point=[30, 40]), Sam2Prompt(points=[[30, 40]], labels=[1], box=None)),
        (
            TargetCues(box=[60, 70, 10, 20], negatives=[[1, 2]]),  # corners normalised by TargetCues
            Sam2Prompt(points=[[1, 2]], labels=[0], box=[10, 20, 60, 70]),
        ),
        (TargetCues(negatives=[[1, 2]]), None),  # negatives alone: nothing to segment
        (TargetCues(), None),
    ],
)
def test_sam2_prompt_table(cues, expected):
    assert sam2_prompt(cues) == expected


@pytest.mark.parametrize(
    ("scores", "best", "score"),
    [([0.2, 0.9, 0.5], 1, 0.9), ([0.7, 0.1, 0.3], 0, 0.7), ([0.1, 0.2, 1.3], 2, 1.0), ([-0.2], 0, 0.0)],
)
def test_best_mask_keeps_the_highest_score(scores, best, score):
    masks = np.zeros((len(scores), 4, 5), dtype=np.float32)
    for i in range(len(scores)):
        masks[i, i % 4, i] = 1
    mask, got = best_mask(masks, np.array(scores))
    assert mask.dtype == bool and np.array_equal(mask, masks[best] > 0)
    assert got == pytest.approx(score)


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("sam2.1_hiera_large.pt", "configs/sam2.1/sam2.1_hiera_l.yaml"),
        ("sam2.1_hiera_base_plus.pt", "configs/sam2.1/sam2.1_hiera_b+.yaml"),
        ("sam2.1_hiera_small.pt", "configs/sam2.1/sam2.1_hiera_s.yaml"),
        ("sam2.1_hiera_tiny.pt", "configs/sam2.1/sam2.1_hiera_t.yaml"),
        ("sam2_hiera_l.pt", "configs/sam2/sam2_hiera_l.yaml"),
        ("/ckpt/sam2_hiera_b+.pt", "configs/sam2/sam2_hiera_b+.yaml"),
    ],
)
def test_official_config_from_checkpoint_name(name, config):
    assert official_config_name(name) == config


def test_official_config_unknown_name_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot tell the SAM2 size"):
        official_config_name("weights.pt")


def _frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- transformers Sam2Model


@pytest.fixture(scope="module")
def segmenter(tiny_sam2_dir):  # noqa: F811
    return Sam2Segmenter(PipelineConfig(segmenter="sam2", sam2_model=str(tiny_sam2_dir), device="cpu"))


@pytest.fixture
def model_calls(segmenter):
    """Capture the keyword inputs and the outputs of every Sam2Model call."""
    calls: list[dict] = []

    def pre(module, args, kwargs):
        calls.append({"inputs": dict(kwargs)})

    def post(module, args, kwargs, output):
        calls[-1]["output"] = output

    handles = [
        segmenter.model.register_forward_pre_hook(pre, with_kwargs=True),
        segmenter.model.register_forward_hook(post, with_kwargs=True),
    ]
    yield calls
    for h in handles:
        h.remove()


def test_prompts_reach_the_model_in_its_input_space(segmenter, model_calls):
    cues = TargetCues(box=[10, 20, 60, 70], point=[30, 40], negatives=[[5, 6]])
    mask, score = segmenter.segment(_frame(), cues)
    (call,) = model_calls
    inputs = call["inputs"]
    assert inputs["multimask_output"] is True
    expected_points = torch.tensor([[[[30 * SX, 40 * SY], [5 * SX, 6 * SY]]]])
    assert torch.allclose(inputs["input_points"], expected_points, atol=1e-4)
    assert inputs["input_labels"].tolist() == [[[1, 0]]]
    expected_box = torch.tensor([[[10 * SX, 20 * SY, 60 * SX, 70 * SY]]])
    assert torch.allclose(inputs["input_boxes"], expected_box, atol=1e-4)
    assert tuple(inputs["pixel_values"].shape) == (1, 3, 256, 256)
    assert mask.shape == (H, W) and mask.dtype == bool
    assert 0.0 <= score <= 1.0


def test_the_best_scoring_candidate_is_returned_at_original_resolution(segmenter, model_calls):
    mask, score = segmenter.segment(_frame(1), TargetCues(point=[60, 45]))
    out = model_calls[0]["output"]
    scores = out.iou_scores[0, 0]
    assert scores.shape == (3,)  # multimask: three candidates
    best = int(torch.argmax(scores))
    candidates = segmenter.processor.post_process_masks(out.pred_masks, torch.tensor([[H, W]]))[0][0]
    assert np.array_equal(mask, candidates[best].numpy())
    assert score == pytest.approx(float(scores[best].clamp(0, 1)))


@pytest.mark.parametrize(
    ("cues", "has_points", "has_box"),
    [
        (TargetCues(box=[10, 20, 60, 70]), False, True),
        (TargetCues(point=[30, 40]), True, False),
        (TargetCues(point=[30, 40], negatives=[[1, 1]]), True, False),
    ],
)
def test_only_present_cues_are_sent(segmenter, model_calls, cues, has_points, has_box):
    segmenter.segment(_frame(), cues)
    inputs = model_calls[0]["inputs"]
    assert (inputs.get("input_points") is not None) is has_points
    assert (inputs.get("input_boxes") is not None) is has_box


def test_no_positive_cue_gives_an_empty_mask_without_running_the_model(segmenter, model_calls):
    mask, score = segmenter.segment(_frame(), TargetCues(negatives=[[5, 5]]))
    assert not model_calls
    assert mask.shape == (H, W) and not mask.any() and score == 0.0


def test_bad_frame_is_a_clear_error(segmenter):
    with pytest.raises(ValueError, match="uint8 RGB"):
        segmenter.segment(np.zeros((H, W), dtype=np.uint8), TargetCues(point=[1, 1]))


# --------------------------------------------------------------------------- official sam2 package


@pytest.fixture(scope="module")
def official(tiny_official_sam2_dir):  # noqa: F811
    config = PipelineConfig(segmenter="sam2-official", sam2_model=str(tiny_official_sam2_dir), device="cpu")
    return OfficialSam2Segmenter(config)


def test_official_prompts_reach_the_model_in_its_input_space(official, monkeypatch):
    seen = {}
    original_predict = official.predictor._predict

    def spy(point_coords, point_labels, boxes, mask_input, multimask_output, **kw):
        seen.update(coords=point_coords, labels=point_labels, boxes=boxes, multimask=multimask_output)
        seen["autocast"] = torch.is_autocast_enabled("cpu")
        result = original_predict(point_coords, point_labels, boxes, mask_input, multimask_output, **kw)
        seen["scores"] = result[1]
        return result

    monkeypatch.setattr(official.predictor, "_predict", spy)
    cues = TargetCues(box=[10, 20, 60, 70], point=[30, 40], negatives=[[5, 6]])
    mask, score = official.segment(_frame(), cues)
    expected = torch.tensor([[[30 * SX, 40 * SY], [5 * SX, 6 * SY]]])
    assert torch.allclose(seen["coords"].float(), expected, atol=1e-3)
    assert seen["labels"].tolist() == [[1, 0]]
    box = torch.tensor([[[10 * SX, 20 * SY], [60 * SX, 70 * SY]]])
    assert torch.allclose(seen["boxes"].float(), box, atol=1e-3)
    assert seen["multimask"] is True and seen["autocast"] is True  # bf16 autocast on the CPU
    assert mask.shape == (H, W) and mask.dtype == bool
    scores = seen["scores"].float().reshape(-1)
    assert score == pytest.approx(float(scores.max().clamp(0, 1)), abs=1e-6)


def _tiny_files(folder):
    return next(folder.glob("*.yaml")), next(folder.glob("*.pt"))


def test_official_package_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sam2.sam2_image_predictor", None)
    with pytest.raises(models.ModelLoadError, match="pip install"):
        OfficialSam2Segmenter(
            PipelineConfig(sam2_model="facebook/not-cached-missing-package-test", device="cpu")
        )


@pytest.mark.parametrize("path", ["/no/such/sam2", "./missing-sam2", "~/missing-sam2-checkpoint"])
def test_a_missing_local_folder_is_named_as_such(path: str) -> None:
    def load() -> None:
        raise AssertionError("nothing is loaded for a folder that does not exist")

    with pytest.raises(models.ModelLoadError, match="no such local folder"):
        models.cached_model("sam2-image", path, torch.device("cpu"), torch.float32, load)


def test_every_positive_point_reaches_the_prompt() -> None:
    # Seg-Zero answers points_1 and points_2 for one object: both are positive clicks for SAM2.
    cues = TargetCues(box=[10, 10, 50, 40], point=[20, 20], extra_points=[[40, 30]], negatives=[[5, 5]])
    prompt = sam2_prompt(cues)
    assert prompt is not None
    assert prompt.points == [[20.0, 20.0], [40.0, 30.0], [5.0, 5.0]]
    assert prompt.labels == [1, 1, 0]
