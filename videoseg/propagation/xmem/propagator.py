"""XMem as the pipeline's propagator (paper step 3b: keyframe mask -> masks on every frame).

The paper runs XMem twice from the SAM2 keyframe mask: once on the frames after the keyframe and
once, with a fresh memory, on the reversed frames before it. Each pass is prepared like the official
``eval.py``: RGB scaled to [0, 1] and ImageNet-normalised, the shorter side resized to
``config.xmem_size`` (bilinear, antialiased as torchvision's ``Resize`` does on tensors; the mask with
nearest neighbour), the probabilities upsampled back to the original size (bilinear) and turned into
one label per pixel by argmax. On CUDA the network runs under fp16 autocast like the official
evaluation. Frames are streamed with ``video.iter_frames`` so memory stays bounded on long videos.

Objects whose keyframe mask is empty are not tracked and stay empty on every frame; overlapping
keyframe masks are made exclusive first (a pixel belongs to the last object that claims it), since
XMem takes one label per pixel.
"""

from __future__ import annotations

import os
import tempfile
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from videoseg.core.config import PipelineConfig
from videoseg.core.cues import TargetCues
from videoseg.core.interfaces import BackendDescription, VideoSource
from videoseg.propagation.stage import check_start
from videoseg.propagation.xmem.inference import InferenceCore, long_term_count_usage
from videoseg.propagation.xmem.network import XMEM_URL, XMem, XMemCheckpointError, load_xmem
from videoseg.runtime.loading import cached_model, resolve_device

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resized_shape(height: int, width: int, shorter_side: int) -> tuple[int, int]:
    """(height, width) with the shorter side scaled to ``shorter_side`` (torchvision's rounding:
    the longer side is truncated); unchanged when ``shorter_side`` <= 0."""
    if shorter_side <= 0:
        return height, width
    if width <= height:
        return int(shorter_side * height / width), shorter_side
    return shorter_side, int(shorter_side * width / height)


def prepare_frame(frame: np.ndarray, shorter_side: int, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, h, w) float32 ImageNet-normalised, shorter side resized."""
    image = torch.from_numpy(np.ascontiguousarray(frame)).to(device).permute(2, 0, 1).float().div(255)
    mean = torch.tensor(IMAGENET_MEAN, device=device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=device)[:, None, None]
    image = image.sub_(mean).div_(std)
    size = resized_shape(image.shape[1], image.shape[2], shorter_side)
    if size != tuple(image.shape[1:]):
        image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]
    return image


def exclusive_labels(masks: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """(K, H, W) bool -> (H, W) int label map (1-based, later objects win overlaps) and the indices
    of the objects that still own at least one pixel, in label order."""
    label_map = np.zeros(masks.shape[1:], dtype=np.int32)
    for k in range(masks.shape[0]):
        label_map[masks[k]] = k + 1
    present = [k for k in range(masks.shape[0]) if (label_map == k + 1).any()]
    compact = np.zeros_like(label_map)
    for j, k in enumerate(present):
        compact[label_map == k + 1] = j + 1
    return compact, present


DEFAULT_CHECKPOINT = "XMem.pth"


def xmem_cache_path() -> Path:
    """Where the official checkpoint is kept once downloaded (``$VIDEOSEG_CACHE`` or ~/.cache/videoseg)."""
    root = os.environ.get("VIDEOSEG_CACHE") or "~/.cache/videoseg"
    return Path(root).expanduser() / DEFAULT_CHECKPOINT


def download_checkpoint(url: str, dest: Path, timeout_s: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically (a partial download never looks like a checkpoint)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout_s) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def resolve_checkpoint(setting: str) -> Path:
    """The checkpoint file for the ``xmem_checkpoint`` setting.

    An existing path wins. The default name (``XMem.pth``, not found in the working directory) is
    looked up in :func:`xmem_cache_path` and, unless ``VIDEOSEG_XMEM_DOWNLOAD=0``, downloaded there
    from the official release once, so ``--preset paper`` runs with one command. Anything else that
    does not exist raises :class:`XMemCheckpointError` naming the download address.
    """
    path = Path(setting).expanduser()
    if path.is_file():
        return path
    if setting == DEFAULT_CHECKPOINT:
        cached = xmem_cache_path()
        if cached.is_file():
            return cached
        if os.environ.get("VIDEOSEG_XMEM_DOWNLOAD", "1") != "0":
            try:
                return download_checkpoint(XMEM_URL, cached)
            except OSError as exc:
                raise XMemCheckpointError(
                    f"XMem checkpoint not found at {str(path)!r} or {str(cached)!r}, and downloading it "
                    f"from {XMEM_URL} failed ({exc}). Download it by hand and pass --xmem PATH."
                ) from exc
    raise XMemCheckpointError(
        f"XMem checkpoint not found at {str(path)!r} (setting xmem_checkpoint / --xmem). Download the "
        f"official weights from {XMEM_URL}"
    )


class XMemPropagator:
    """:class:`~videoseg.core.interfaces.Propagator` backed by our XMem and the official ``XMem.pth``."""

    def __init__(self, config: PipelineConfig):
        self.config = config
        self.info = BackendDescription(
            name="xmem",
            weights_free=False,
            description=(
                "XMem (Cheng & Schwing, ECCV 2022): working + long-term memory propagation, run forward "
                "and backward from the keyframe (official XMem.pth weights)"
            ),
            model_id=config.xmem_checkpoint,
        )

    # ------------------------------------------------------------------ setup

    def _core_config(self, num_frames: int) -> dict[str, Any]:
        cfg = self.config
        core = {
            "top_k": cfg.xmem_top_k,
            "mem_every": cfg.xmem_mem_every,
            "deep_update_every": -1,
            "enable_long_term": True,
            "max_mid_term_frames": cfg.xmem_max_mid_term_frames,
            "min_mid_term_frames": cfg.xmem_min_mid_term_frames,
            "max_long_term_elements": cfg.xmem_max_long_term_elements,
            "num_prototypes": cfg.xmem_num_prototypes,
        }
        core["enable_long_term_count_usage"] = long_term_count_usage(core, num_frames)
        return core

    def _autocast_dtype(self, device: torch.device) -> torch.dtype | None:
        if device.type != "cuda":
            return None  # the official evaluation's autocast is CUDA-only; the CPU runs fp32
        return {"float32": None, "fp32": None, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}.get(
            (self.config.dtype or "auto").lower(), torch.float16
        )

    def check_ready(self) -> None:
        """Fail fast (before a run does any work) when the checkpoint is missing and cannot be fetched."""
        resolve_checkpoint(self.config.xmem_checkpoint)

    def load_network(self, device: torch.device | None = None) -> XMem:
        """The cached network for ``config.xmem_checkpoint`` on ``device``.

        Raises :class:`XMemCheckpointError` (a FileNotFoundError) when the checkpoint is missing.
        """
        device = device or resolve_device(self.config.device)
        path = resolve_checkpoint(self.config.xmem_checkpoint)
        return cached_model(
            "xmem", str(path.resolve()), device, torch.float32, lambda: load_xmem(path, map_location=device)
        )

    # ------------------------------------------------------------------ propagation

    def propagate(
        self,
        video: VideoSource,
        start: int,
        masks: np.ndarray,
        direction: str,
        cues: Sequence[TargetCues] | None = None,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Carry the masks (K, H, W) bool of frame ``start`` one way (the paper runs XMem once on the
        frames after the keyframe and once on the reversed frames before it). Cues are not used."""
        num_frames = len(video)
        masks = np.asarray(masks).astype(bool)
        check_start(video, start, masks, direction)
        label_map, present = exclusive_labels(masks)
        order = range(start + 1, num_frames) if direction == "forward" else range(start - 1, -1, -1)
        if not present:
            # Nothing to track: every frame is empty, and the network (and its weights) is not needed.
            for idx in order:
                yield idx, np.zeros_like(masks)
            return
        if not order:
            return
        if direction == "forward":
            frames, length = video.iter_frames(start, num_frames), num_frames - start
        else:
            frames, length = video.iter_frames(0, start + 1, reverse=True), start + 1
        device = resolve_device(self.config.device)
        network = self.load_network(device)
        yield from self._run_pass(
            network, device, frames, length, start, direction, label_map, present, masks.shape[0]
        )

    def _run_pass(
        self,
        network: XMem,
        device: torch.device,
        frames: Iterator[tuple[int, np.ndarray]],
        length: int,
        keyframe: int,
        direction: str,
        label_map: np.ndarray,
        present: list[int],
        num_objects: int,
    ) -> Iterator[tuple[int, np.ndarray]]:
        core = InferenceCore(network, self._core_config(length))
        core.set_all_labels(range(1, len(present) + 1))
        autocast = self._autocast_dtype(device)
        shorter = int(self.config.xmem_size)
        height, width = label_map.shape

        for t, (frame_idx, frame) in enumerate(frames):
            with (
                torch.inference_mode(),
                torch.autocast(device.type, dtype=autocast or torch.float32, enabled=autocast is not None),
            ):
                image = prepare_frame(frame, shorter, device)
                if t == 0:
                    if frame_idx != keyframe:
                        raise RuntimeError(
                            f"{direction} pass started at frame {frame_idx}, not keyframe {keyframe}"
                        )
                    labels = torch.from_numpy(label_map).to(device)
                    one_hot = torch.stack([labels == j + 1 for j in range(len(present))]).float()
                    if one_hot.shape[-2:] != image.shape[-2:]:
                        one_hot = F.interpolate(one_hot[None], size=image.shape[-2:], mode="nearest")[0]
                    core.step(image, one_hot, end=(length == 1))
                    continue
                prob = core.step(image, end=(t == length - 1))
                if prob.shape[-2:] != (height, width):
                    prob = F.interpolate(
                        prob[:, None], size=(height, width), mode="bilinear", align_corners=False
                    )[:, 0]
                labels = torch.argmax(prob, dim=0).cpu().numpy()
            out = np.zeros((num_objects, height, width), dtype=bool)
            for j, k in enumerate(present):
                out[k] = labels == j + 1
            yield frame_idx, out
