"""XMem's per-video inference loop (paper step 3b: propagate keyframe masks frame by frame).

:class:`InferenceCore` is one video's processor: feed it frames in order with :meth:`step`; give a
mask on the first frame (and on any later frame that introduces new objects), and it returns the
probability of background and of every object for each frame. It follows the official
``InferenceCore`` decision by decision: which frames become memory frames (every ``mem_every``-th
and every frame with a mask), when the sensory memory gets a deep update (with each memory frame
when ``deep_update_every`` < 0), that the last frame (``end=True``) updates nothing, and how a mask
that introduces new objects is merged with the prediction for the old ones.

Frames are padded to multiples of 16 (centred zero padding) and the output is cropped back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from videoseg.propagation.xmem.memory import MemoryManager
from videoseg.propagation.xmem.network import XMem, aggregate

# The official eval.py defaults (enable_long_term_count_usage is computed per video there; counting
# is harmless when the long-term memory never fills up, so it defaults to on here).
DEFAULT_CONFIG: dict[str, Any] = {
    "top_k": 30,
    "mem_every": 5,
    "deep_update_every": -1,
    "enable_long_term": True,
    "enable_long_term_count_usage": True,
    "max_mid_term_frames": 10,
    "min_mid_term_frames": 5,
    "max_long_term_elements": 10000,
    "num_prototypes": 128,
    "benchmark": False,
    # ours: apply the top-k affinity sparsely on the CPU (same numbers up to float rounding)
    "fast_readout": True,
}


def resolve_config(config: Mapping[str, Any] | None, hidden_dim: int) -> dict[str, Any]:
    """The official config keys with eval.py defaults filled in, validated; adds ``hidden_dim``.

    ``disable_long_term`` (the eval.py flag) is accepted as the negation of ``enable_long_term``.
    """
    given = dict(config or {})
    if "disable_long_term" in given and "enable_long_term" not in given:
        given["enable_long_term"] = not given["disable_long_term"]
    cfg = {**DEFAULT_CONFIG, **given, "hidden_dim": hidden_dim}

    if int(cfg["mem_every"]) < 1:
        raise ValueError(f"mem_every must be >= 1, got {cfg['mem_every']}")
    if cfg["top_k"] is not None and int(cfg["top_k"]) < 1:
        raise ValueError(f"top_k must be >= 1 (or None for a full softmax), got {cfg['top_k']}")
    if int(cfg["deep_update_every"]) == 0:
        raise ValueError("deep_update_every must be -1 (with every memory frame) or >= 1")
    if cfg["enable_long_term"]:
        lo, hi = int(cfg["min_mid_term_frames"]), int(cfg["max_mid_term_frames"])
        if lo < 2 or hi <= lo:
            # With 1 the official slicing consolidates nothing and fails; with hi <= lo nothing is
            # left to consolidate.
            raise ValueError(f"need 2 <= min_mid_term_frames < max_mid_term_frames, got {lo} and {hi}")
        if int(cfg["num_prototypes"]) < 1:
            raise ValueError(f"num_prototypes must be >= 1, got {cfg['num_prototypes']}")
        if int(cfg["max_long_term_elements"]) <= int(cfg["num_prototypes"]):
            raise ValueError("max_long_term_elements must exceed num_prototypes")
    return cfg


def long_term_count_usage(config: Mapping[str, Any], num_frames: int) -> bool:
    """The official per-video rule: count long-term usage only when the video is long enough for
    the long-term memory to possibly fill up (``num_frames`` is the length of the pass)."""
    cfg = {**DEFAULT_CONFIG, **dict(config)}
    if not cfg["enable_long_term"]:
        return False
    per_consolidation = int(cfg["max_mid_term_frames"]) - int(cfg["min_mid_term_frames"])
    if per_consolidation <= 0:
        return False  # an invalid config: resolve_config rejects it with a clear message
    return num_frames / per_consolidation * int(cfg["num_prototypes"]) >= int(cfg["max_long_term_elements"])


def pad_divide_by(image: Tensor, divisor: int) -> tuple[Tensor, tuple[int, int, int, int]]:
    """Zero-pad the last two dims up to multiples of ``divisor``, centred (the extra pixel of an odd
    padding goes to the bottom / right). Returns the padded tensor and (left, right, top, bottom)."""
    h, w = image.shape[-2:]
    pad_h = (divisor - h % divisor) % divisor
    pad_w = (divisor - w % divisor) % divisor
    top, left = pad_h // 2, pad_w // 2
    pad = (left, pad_w - left, top, pad_h - top)
    return F.pad(image, pad), pad


def unpad(image: Tensor, pad: tuple[int, int, int, int]) -> Tensor:
    """Undo :func:`pad_divide_by` on (C, H, W) or (B, C, H, W)."""
    if image.dim() not in (3, 4):
        raise ValueError(f"unpad needs a 3-D or 4-D tensor, got shape {tuple(image.shape)}")
    left, right, top, bottom = pad
    h, w = image.shape[-2:]
    return image[..., top : h - bottom, left : w - right]


class InferenceCore:
    """Propagate object masks through one video with XMem (official semantics).

    Usage::

        core = InferenceCore(net, config)
        core.set_all_labels([1, 2])
        prob = core.step(image0, masks0)            # (3, H, W), (2, H, W) -> (3, H, W)
        for image in later_frames:
            prob = core.step(image)                  # background, object 1, object 2

    ``config`` uses the official eval.py keys (see :data:`DEFAULT_CONFIG`); missing keys take the
    eval.py defaults.
    """

    def __init__(self, network: XMem, config: Mapping[str, Any] | None = None):
        self.network = network
        self.config = resolve_config(config, network.hidden_dim)
        self._apply_config()
        self.all_labels: list[int] | None = None
        self.clear_memory()

    def _apply_config(self) -> None:
        self.mem_every = int(self.config["mem_every"])
        self.deep_update_every = int(self.config["deep_update_every"])
        self.enable_long_term = bool(self.config["enable_long_term"])
        # deep_update_every < 0: deep-update the sensory memory together with every memory frame
        self.deep_update_sync = self.deep_update_every < 0

    def clear_memory(self) -> None:
        """Forget everything (start a new video); the labels set so far are kept."""
        self.curr_ti = -1
        self.last_mem_ti = 0
        self.last_deep_update_ti = -self.deep_update_every
        self.memory = MemoryManager(self.config)

    def update_config(self, config: Mapping[str, Any]) -> None:
        """Change settings between frames (not enable_long_term / enable_long_term_count_usage)."""
        self.config = resolve_config({**self.config, **dict(config)}, self.network.hidden_dim)
        self._apply_config()
        self.memory.update_config(self.config)

    def set_all_labels(self, all_labels: Iterable[int]) -> None:
        """The 1-based labels of every object given so far, in increasing order (e.g. [1, 2, 3])."""
        self.all_labels = [int(label) for label in all_labels]

    @torch.inference_mode()
    def step(
        self,
        image: Tensor,
        mask: Tensor | None = None,
        valid_labels: Iterable[int] | None = None,
        end: bool = False,
    ) -> Tensor:
        """Process the next frame.

        image: (3, H, W) float, ImageNet-normalised. mask: (K, H, W) one-hot (or soft) masks of all
        K = len(all_labels) objects given so far, or None. valid_labels: the labels ``mask`` really
        annotates on this frame (None: all); the others keep this frame's prediction. end: the last
        frame of the video (nothing is memorised).

        Returns prob (1 + K, H, W): background first, then the objects, summing to 1 per pixel.
        """
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"image must be (3, H, W), got shape {tuple(image.shape)}")
        if mask is not None:
            if self.all_labels is None or not self.all_labels:
                raise ValueError("call set_all_labels(...) with at least one label before giving a mask")
            if (
                mask.dim() != 3
                or mask.shape[0] != len(self.all_labels)
                or mask.shape[-2:] != image.shape[-2:]
            ):
                raise ValueError(
                    f"mask must be ({len(self.all_labels)}, {image.shape[1]}, {image.shape[2]}) "
                    f"(one channel per label so far), got {tuple(mask.shape)}"
                )
        elif self.curr_ti < 0:
            raise ValueError("the first frame given to XMem needs a mask")
        valid = None if valid_labels is None else [int(v) for v in valid_labels]

        self.curr_ti += 1
        image, self.pad = pad_divide_by(image, 16)
        image = image.unsqueeze(0)

        is_mem_frame = ((self.curr_ti - self.last_mem_ti >= self.mem_every) or (mask is not None)) and not end
        need_segment = self.curr_ti > 0 and (valid is None or len(self.all_labels) != len(valid))
        is_deep_update = (
            (self.deep_update_sync and is_mem_frame)
            or (
                not self.deep_update_sync
                and self.curr_ti - self.last_deep_update_ti >= self.deep_update_every
            )
        ) and not end
        is_normal_update = (not self.deep_update_sync or not is_deep_update) and not end

        key, shrinkage, selection, f16, f8, f4 = self.network.encode_key(
            image, need_ek=(self.enable_long_term or need_segment), need_sk=is_mem_frame
        )

        pred_prob_with_bg: Tensor | None = None
        pred_prob_no_bg: Tensor | None = None
        if need_segment:
            memory_readout = self.memory.match_memory(key, selection).unsqueeze(0)
            hidden, _, pred = self.network.segment(
                (f16, f8, f4),
                memory_readout,
                self.memory.get_hidden(),
                h_out=is_normal_update,
                strip_bg=False,
            )
            pred_prob_with_bg = pred[0]
            pred_prob_no_bg = pred_prob_with_bg[1:]
            if is_normal_update:
                self.memory.set_hidden(hidden)

        if mask is not None:
            mask, _ = pad_divide_by(mask, 16)
            if pred_prob_no_bg is not None:
                # Pixels claimed by the given mask are taken from the prediction of every object.
                pred_prob_no_bg = pred_prob_no_bg.clone()
                pred_prob_no_bg[:, mask.sum(0) > 0.5] = 0
                mask = mask.type_as(pred_prob_no_bg).clone()
                if valid is not None:
                    # Objects not annotated on this frame keep their prediction (labels are 1-based).
                    keep = [i for i in range(pred_prob_no_bg.shape[0]) if (i + 1) not in valid]
                    mask[keep] = pred_prob_no_bg[keep]
            _, pred_prob_with_bg = aggregate(mask, dim=0)
            self.memory.create_hidden_state(len(self.all_labels), key)

        if is_mem_frame:
            value, hidden = self.network.encode_value(
                image,
                f16,
                self.memory.get_hidden(),
                pred_prob_with_bg[1:].unsqueeze(0),
                is_deep_update=is_deep_update,
            )
            self.memory.add_memory(
                key, shrinkage, value, self.all_labels, selection=selection if self.enable_long_term else None
            )
            self.last_mem_ti = self.curr_ti
            if is_deep_update:
                self.memory.set_hidden(hidden)
                self.last_deep_update_ti = self.curr_ti

        return unpad(pred_prob_with_bg, self.pad)
