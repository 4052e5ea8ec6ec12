"""SAM2 keyframe segmentation (paper step 3a): the reasoner's cues -> the target-frame mask.

Each target is prompted on its own with whatever cues survive the cue ablation (paper Table 6): its box,
its positive centre point (label 1) and its negative points (label 0). SAM2 is asked for three
candidate masks (multimask output) and the one with the highest predicted IoU is kept; its score is
that IoU. Masks come back at the frame's original resolution as (H, W) bool.

Two backends share :func:`sam2_prompt` (cues -> points / labels / box in original-frame pixels):

- :class:`Sam2Segmenter`: transformers ``Sam2Model`` + ``Sam2Processor``
  (``facebook/sam2.1-hiera-{tiny,small,base-plus,large}`` or a local ``save_pretrained`` folder); the
  processor rescales the prompts into the model's 1024 x 1024 input space.
- :class:`OfficialSam2Segmenter`: the official ``sam2`` package's ``SAM2ImagePredictor``, loaded with
  ``SAM2ImagePredictor.from_pretrained(hub_id)`` for the four hub ids, or from a local official
  checkpoint: a ``.pt`` file (config from a ``.yaml`` of the same name beside it, else inferred from the
  file name, e.g. ``sam2.1_hiera_large.pt``), or a folder holding one ``.yaml`` and one ``.pt``. On the
  CPU it runs under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (its fp32 CPU path is fragile).

A target with neither a box nor a positive point (e.g. negatives only) has nothing to segment: it gets
an empty mask and score 0.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from videoseg.core.config import PipelineConfig
from videoseg.core.cues import TargetCues
from videoseg.core.interfaces import BackendDescription
from videoseg.runtime.loading import (
    ModelLoadError,
    cached_model,
    dtype_name,
    hub_offline,
    resolve_device,
    resolve_dtype,
)


@dataclass
class Sam2Prompt:
    """SAM2 prompts for one target, in original-frame pixels.

    points: [[x, y], ...] (positive point first, then negatives); labels: 1 positive / 0 negative,
    one per point; box: [x1, y1, x2, y2] or None.
    """

    points: list[list[float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    box: list[float] | None = None


def sam2_prompt(cues: TargetCues) -> Sam2Prompt | None:
    """Cues -> SAM2 prompt; None when there is neither a box nor a positive point to segment from."""
    if cues.box is None and cues.point is None:
        return None
    points: list[list[float]] = []
    labels: list[int] = []
    # Seg-Zero answers two positive points per object; every one reaches SAM2 with label 1.
    for pos in cues.positive_points:
        points.append([float(pos[0]), float(pos[1])])
        labels.append(1)
    for neg in cues.negatives:
        points.append([float(neg[0]), float(neg[1])])
        labels.append(0)
    box = None if cues.box is None else [float(v) for v in cues.box]
    return Sam2Prompt(points=points, labels=labels, box=box)


def best_mask(masks: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, float]:
    """Of (C, H, W) candidate masks and their (C,) predicted IoUs, the best as ((H, W) bool, score in [0, 1])."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(scores) != len(masks) or len(scores) == 0:
        raise ValueError(f"{len(masks)} masks but {len(scores)} scores")
    best = int(np.argmax(scores))
    return np.asarray(masks[best]).astype(bool), float(np.clip(scores[best], 0.0, 1.0))


def _check_frame(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
    return np.ascontiguousarray(frame)


# --------------------------------------------------------------------------- transformers backend


def _load_transformers_sam2(model_id: str, device: torch.device, dtype: torch.dtype) -> tuple[Any, Any]:
    from transformers import Sam2Model, Sam2Processor

    local = hub_offline(model_id)
    model = Sam2Model.from_pretrained(model_id, dtype=dtype, local_files_only=local).to(device).eval()
    processor = Sam2Processor.from_pretrained(model_id, local_files_only=local)
    return model, processor


class Sam2Segmenter:
    """SAM2 through transformers (``Sam2Model`` + ``Sam2Processor``); see the module docstring."""

    def __init__(self, config: PipelineConfig) -> None:
        self.model_id = config.sam2_model
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, self.device)
        self.model, self.processor = cached_model(
            "sam2-image",
            self.model_id,
            self.device,
            self.dtype,
            lambda: _load_transformers_sam2(self.model_id, self.device, self.dtype),
        )
        self.info = BackendDescription(
            name="sam2",
            weights_free=False,
            description=f"SAM2 (transformers) {self.model_id} on {self.device} ({dtype_name(self.dtype)})",
            model_id=self.model_id,
        )

    @torch.inference_mode()
    def segment(self, frame: np.ndarray, cues: TargetCues) -> tuple[np.ndarray, float]:
        """frame (H, W, 3) uint8 RGB, cues in its pixels -> ((H, W) bool mask, predicted IoU)."""
        frame = _check_frame(frame)
        prompt = sam2_prompt(cues)
        if prompt is None:
            return np.zeros(frame.shape[:2], dtype=bool), 0.0
        kwargs: dict[str, Any] = {"images": frame, "return_tensors": "pt"}
        if prompt.points:
            # Nesting: image -> object -> point -> (x, y); labels: image -> object -> point.
            kwargs["input_points"] = [[prompt.points]]
            kwargs["input_labels"] = [[prompt.labels]]
        if prompt.box is not None:
            kwargs["input_boxes"] = [[prompt.box]]  # image -> box -> (x1, y1, x2, y2)
        inputs = self.processor(**kwargs).to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        outputs = self.model(**inputs, multimask_output=True)
        masks = self.processor.post_process_masks(
            outputs.pred_masks.float().cpu(), inputs["original_sizes"].cpu(), binarize=True
        )[0]  # (objects=1, C, H, W) bool at original resolution
        scores = outputs.iou_scores[0, 0].float().cpu().numpy()
        return best_mask(masks[0].numpy(), scores)


# --------------------------------------------------------------------------- official sam2 package

OFFICIAL_INSTALL_HINT = (
    "the official SAM2 package is not installed; install it with "
    "`SAM2_BUILD_CUDA=0 pip install --no-deps --no-build-isolation sam2==1.1.0 hydra-core iopath`"
)

# Checkpoint file name pieces -> the packaged config (sam2.1 or sam2 generation, then the size).
_OFFICIAL_SIZES = {"hiera_t": "t", "hiera_tiny": "t", "hiera_s": "s", "hiera_small": "s"}
_OFFICIAL_SIZES |= {"hiera_b+": "b+", "hiera_base_plus": "b+", "hiera_l": "l", "hiera_large": "l"}


def official_config_name(checkpoint: str | Path) -> str:
    """The packaged hydra config of an official checkpoint file name (``sam2.1_hiera_large.pt`` ->
    ``configs/sam2.1/sam2.1_hiera_l.yaml``)."""
    name = Path(checkpoint).name.lower()
    generation = "sam2.1" if name.startswith("sam2.1") else "sam2"
    for key, size in sorted(_OFFICIAL_SIZES.items(), key=lambda kv: -len(kv[0])):
        if re.search(re.escape(key) + r"(?![a-z])", name):
            return f"configs/{generation}/{generation}_hiera_{size}.yaml"
    raise ValueError(
        f"cannot tell the SAM2 size from {Path(checkpoint).name!r}; put a .yaml config of the same name beside it"
    )


def _official_files(path: Path) -> tuple[Path | None, Path]:
    """(yaml config or None for a packaged one, checkpoint) of a local official model path."""
    if path.is_dir():
        yamls, ckpts = sorted(path.glob("*.yaml")), sorted(path.glob("*.pt"))
        if len(yamls) != 1 or len(ckpts) != 1:
            raise ValueError(f"{path} must hold exactly one .yaml config and one .pt checkpoint")
        return yamls[0], ckpts[0]
    sibling = path.with_suffix(".yaml")
    return (sibling if sibling.exists() else None), path


def _build_official(config_yaml: Path, checkpoint: Path, device: torch.device) -> Any:
    """Instantiate an official SAM2 model from a standalone hydra yaml and load its checkpoint."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(config_yaml)
    # The same post-processing build_sam2 applies: fall back to multimask when one mask is unstable.
    extra = {"dynamic_multimask_via_stability": True}
    extra |= {"dynamic_multimask_stability_delta": 0.05, "dynamic_multimask_stability_thresh": 0.98}
    cfg.model.sam_mask_decoder_extra_args = extra
    OmegaConf.resolve(cfg)
    model = instantiate(cfg.model, _recursive_=True)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(state.get("model", state), strict=True)
    return model.to(device).eval()


def _load_official(model_id: str, device: torch.device) -> Any:
    try:
        from sam2.build_sam import build_sam2
        from sam2.sam2_image_predictor import SAM2ImagePredictor
    except ImportError as exc:
        raise ModelLoadError(OFFICIAL_INSTALL_HINT) from exc
    path = Path(model_id)
    if path.exists():
        config_yaml, checkpoint = _official_files(path)
        if config_yaml is not None:
            model = _build_official(config_yaml, checkpoint, device)
        else:
            model = build_sam2(official_config_name(checkpoint), str(checkpoint), device=str(device))
        predictor = SAM2ImagePredictor(model)
    else:
        # What SAM2ImagePredictor.from_pretrained does, with the download under our control: the
        # package's own id -> (config, file) table, and the local cache only when the hub is unreachable.
        from huggingface_hub import hf_hub_download
        from sam2.build_sam import HF_MODEL_ID_TO_FILENAMES

        if model_id not in HF_MODEL_ID_TO_FILENAMES:
            known = ", ".join(sorted(HF_MODEL_ID_TO_FILENAMES))
            raise ModelLoadError(
                f"the official sam2 package has no hub id {model_id!r} (it knows {known}); "
                "give one of those or a local folder with the checkpoint"
            )
        config_name, filename = HF_MODEL_ID_TO_FILENAMES[model_id]
        checkpoint = hf_hub_download(model_id, filename, local_files_only=hub_offline(model_id))
        predictor = SAM2ImagePredictor(build_sam2(config_name, checkpoint, device=str(device)))
    # The predictor assumes 1024 px input for its feature-map sizes; derive them from the model.
    size = int(predictor.model.image_size)
    predictor._bb_feat_sizes = [(size // 4, size // 4), (size // 8, size // 8), (size // 16, size // 16)]
    return predictor


class OfficialSam2Segmenter:
    """SAM2 through the official ``sam2`` package (``SAM2ImagePredictor``); see the module docstring."""

    def __init__(self, config: PipelineConfig) -> None:
        self.model_id = config.sam2_model
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, self.device)
        # CPU: bf16 autocast always (see module docstring); CUDA: autocast unless float32 was asked for.
        self.autocast_dtype = torch.bfloat16 if self.device.type == "cpu" else self.dtype
        self.predictor = cached_model(
            "sam2-official",
            self.model_id,
            self.device,
            torch.float32,
            lambda: _load_official(self.model_id, self.device),
        )
        self.info = BackendDescription(
            name="sam2-official",
            weights_free=False,
            description=f"SAM2 (official sam2 package) {self.model_id} on {self.device}",
            model_id=self.model_id,
        )

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    @torch.inference_mode()
    def segment(self, frame: np.ndarray, cues: TargetCues) -> tuple[np.ndarray, float]:
        """frame (H, W, 3) uint8 RGB, cues in its pixels -> ((H, W) bool mask, predicted IoU)."""
        frame = _check_frame(frame)
        prompt = sam2_prompt(cues)
        if prompt is None:
            return np.zeros(frame.shape[:2], dtype=bool), 0.0
        with self._autocast():
            self.predictor.set_image(frame)
            masks, scores, _ = self.predictor.predict(
                point_coords=np.array(prompt.points, dtype=np.float32) if prompt.points else None,
                point_labels=np.array(prompt.labels, dtype=np.int32) if prompt.points else None,
                box=np.array(prompt.box, dtype=np.float32) if prompt.box is not None else None,
                multimask_output=True,
            )
        return best_mask(masks > 0, scores)


__all__ = [
    "OfficialSam2Segmenter",
    "Sam2Prompt",
    "Sam2Segmenter",
    "best_mask",
    "official_config_name",
    "sam2_prompt",
]
