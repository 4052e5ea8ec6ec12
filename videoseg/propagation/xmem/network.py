"""The XMem network and checkpoint loading (paper step 3b: propagate the keyframe mask).

:class:`XMem` has the parameter names and shapes of the official release, so the official
``XMem.pth`` loads with ``strict=True``. Its four calls are the four things the inference core asks of
the network: encode a frame's key, encode a memory frame's value, and decode a memory readout into
per-object probabilities (``forward(mode, ...)`` dispatches on the same mode names as the official
class).

Dimensions (key / value / hidden) are read from a checkpoint's tensors the way the official code
does (:func:`dims_from_state_dict`), so checkpoints trained with other widths load as well.
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videoseg.propagation.xmem.modules import Decoder, KeyEncoder, KeyProjection, ValueEncoder

XMEM_URL = "https://github.com/hkchengrex/XMem/releases/download/v1.0/XMem.pth"

# Widths of the released checkpoint.
DEFAULT_DIMS: dict[str, Any] = {"key_dim": 64, "value_dim": 512, "hidden_dim": 64, "single_object": False}


class XMemCheckpointError(FileNotFoundError):
    """The XMem checkpoint file is missing; the message says where to download it."""


def aggregate(prob: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """Soft aggregation (STM) of per-object probabilities into a distribution with background.

    prob: per-object foreground probabilities, objects along ``dim``. Returns ``(logits, prob)`` with
    one more entry along ``dim`` (background first, = prod(1 - p)), normalised by a softmax.
    """
    with_bg = torch.cat([torch.prod(1 - prob, dim=dim, keepdim=True), prob], dim).clamp(1e-7, 1 - 1e-7)
    logits = torch.log(with_bg / (1 - with_bg))
    return logits, F.softmax(logits, dim=dim)


def dims_from_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Any]:
    """key_dim, value_dim, hidden_dim (0 = no sensory memory) and single_object of a checkpoint.

    The widths are read from the same tensors the official code reads them from. A value encoder
    whose first convolution takes 4 channels is a single-object checkpoint; it still loads into the
    multi-object network (see :meth:`XMem.load_weights`), so ``single_object`` is only a hint.
    """
    try:
        key_dim = state_dict["key_proj.key_proj.weight"].shape[0]
        value_dim = state_dict["value_encoder.fuser.block2.conv2.weight"].shape[0]
    except KeyError as exc:
        raise ValueError(f"not an XMem checkpoint: tensor {exc.args[0]!r} is missing") from exc
    transform = state_dict.get("decoder.hidden_update.transform.weight")
    hidden_dim = 0 if transform is None else transform.shape[0] // 3
    conv1 = state_dict.get("value_encoder.conv1.weight")
    single_object = conv1 is not None and conv1.shape[1] == 4
    return {
        "key_dim": int(key_dim),
        "value_dim": int(value_dim),
        "hidden_dim": int(hidden_dim),
        "single_object": single_object,
    }


def fold_batch_norms(module: nn.Module) -> None:
    """Fold every eval-mode batch norm into the convolution right before it, in place.

    In the ResNet trunks every ``bnX`` follows ``convX`` of the same block (and ``downsample`` is
    ``[conv, bn]``), so ``bn(conv(x)) = conv'(x)`` with ``W' = W * g / sqrt(v + eps)`` and
    ``b' = beta + (b - m) * g / sqrt(v + eps)``: one pass over the activations instead of two. The
    batch norm becomes an identity. The same numbers up to float rounding (measured below 1e-5
    relative on the features)."""
    for parent in list(module.modules()):
        pairs: list[tuple[str, str]] = []
        if isinstance(parent, nn.Sequential):
            names = list(parent._modules)
            pairs = [
                (a, b)
                for a, b in itertools.pairwise(names)
                if isinstance(parent._modules[a], nn.Conv2d)
                and isinstance(parent._modules[b], nn.BatchNorm2d)
            ]
        else:
            for name, child in list(parent._modules.items()):
                conv = "conv" + name[2:] if name.startswith("bn") else None
                if isinstance(child, nn.BatchNorm2d) and isinstance(
                    parent._modules.get(conv or ""), nn.Conv2d
                ):
                    pairs.append((conv, name))  # type: ignore[arg-type]
        for conv_name, bn_name in pairs:
            conv, bn = parent._modules[conv_name], parent._modules[bn_name]
            assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
            with torch.no_grad():
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                conv.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
                conv.bias = nn.Parameter(bn.bias + (bias - bn.running_mean) * scale, requires_grad=False)
            parent._modules[bn_name] = nn.Identity()


class XMem(nn.Module):
    """XMem (Cheng & Schwing, ECCV 2022) with the official checkpoint layout.

    config keys: ``key_dim`` (64), ``value_dim`` (512), ``hidden_dim`` (64; <= 0 disables the
    sensory memory), ``single_object`` (False). Defaults are those of the released ``XMem.pth``.
    """

    def __init__(self, config: Mapping[str, Any] | None = None):
        super().__init__()
        cfg = {**DEFAULT_DIMS, **dict(config or {})}
        self.key_dim = int(cfg["key_dim"])
        self.value_dim = int(cfg["value_dim"])
        self.hidden_dim = max(0, int(cfg["hidden_dim"]))
        self.single_object = bool(cfg["single_object"])
        if self.key_dim < 1 or self.value_dim < 1:
            raise ValueError(f"key_dim and value_dim must be positive, got {self.key_dim}, {self.value_dim}")

        self.key_encoder = KeyEncoder()
        self.value_encoder = ValueEncoder(self.value_dim, self.hidden_dim, self.single_object)
        self.key_proj = KeyProjection(1024, self.key_dim)
        self.decoder = Decoder(self.value_dim, self.hidden_dim)

    @property
    def dims(self) -> dict[str, Any]:
        return {
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "hidden_dim": self.hidden_dim,
            "single_object": self.single_object,
        }

    def set_folded_batch_norms(self, enabled: bool) -> None:
        """In eval mode, run the encoders with their batch norms folded into the convolutions
        (:func:`fold_batch_norms`, on a copy built on first use and rebuilt when the weights change:
        the state dict and training are untouched).

        Off by default: folding changes the float rounding of every feature (~1e-5 relative), and
        XMem's discrete memory decisions (top-k selection, which long-term elements are dropped)
        can amplify that into visibly different masks (bench/compare_xmem_official.py measured a
        0.1 probability difference with random weights); the default path keeps the official
        convolution arithmetic. The speed gain was not measurable above the noise of a shared
        2-core machine (see the README's XMem section)."""
        self._fold = enabled

    def _encoder(self, name: str) -> nn.Module:
        """The key or value encoder to run: the folded copy in eval mode, else the module itself."""
        module: nn.Module = getattr(self, name)
        if self.training or not getattr(self, "_fold", False):
            return module
        # Rebuilt when any weight is replaced or changed in place (load_state_dict, .to(), ...):
        # the storage pointer and the in-place version counter of every tensor say so.
        stamp = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in module.state_dict().values())
        cache = self.__dict__.setdefault("_folded", {})  # not a submodule: no state dict entries
        lock = self.__dict__.setdefault("_folded_lock", threading.Lock())
        with lock:  # a cached network is shared by concurrent runs
            if name not in cache or cache[name][0] != stamp:
                folded = copy.deepcopy(module)
                for child in ("fuser", "hidden_reinforce"):  # no batch norms: share, don't copy
                    if hasattr(folded, child):
                        setattr(folded, child, getattr(module, child))
                fold_batch_norms(folded)
                cache[name] = (stamp, folded)
            return cache[name][1]

    def set_shared_image_conv(self, enabled: bool) -> None:
        """Compute the image part of the fusion blocks once for all objects (see modules.py)."""
        self.value_encoder.fuser.share_image_conv = enabled
        self.decoder.fuser.share_image_conv = enabled

    # ------------------------------------------------------------------ the four network calls

    def encode_key(
        self, frame: Tensor, need_sk: bool = True, need_ek: bool = True
    ) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor, Tensor, Tensor]:
        """frame (B, 3, H, W) or (B, T, 3, H, W), H and W multiples of 16.

        Returns key (B, key_dim, H/16, W/16), shrinkage (B, 1, ...) or None, selection
        (B, key_dim, ...) or None, and the image features f16 (1024 ch), f8 (512), f4 (256).
        For 5-D input, key/shrinkage/selection are (B, C, T, h, w) and features (B, T, C, h, w).
        """
        if frame.dim() == 5:
            batch, frames = frame.shape[:2]
            frame = frame.flatten(0, 1)
        elif frame.dim() == 4:
            batch = frames = None
        else:
            raise ValueError(f"encode_key needs a 4-D or 5-D frame tensor, got shape {tuple(frame.shape)}")

        f16, f8, f4 = self._encoder("key_encoder")(frame)
        key, shrinkage, selection = self.key_proj(f16, need_sk, need_ek)

        if batch is not None:

            def per_time(t: Tensor | None) -> Tensor | None:
                if t is None:
                    return None
                return t.view(batch, frames, *t.shape[-3:]).transpose(1, 2).contiguous()

            key, shrinkage, selection = per_time(key), per_time(shrinkage), per_time(selection)
            f16 = f16.view(batch, frames, *f16.shape[-3:])
            f8 = f8.view(batch, frames, *f8.shape[-3:])
            f4 = f4.view(batch, frames, *f4.shape[-3:])
        return key, shrinkage, selection, f16, f8, f4

    def encode_value(
        self,
        frame: Tensor,
        image_feat_f16: Tensor,
        h16: Tensor | None,
        masks: Tensor,
        is_deep_update: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        """frame (B, 3, H, W), masks (B, N, H, W) probabilities, h16 (B, N, hidden, H/16, W/16).

        Returns the value (B, N, value_dim, H/16, W/16) and the (deep-updated) hidden state.
        """
        num_objects = masks.shape[1]
        if num_objects != 1:
            # For each object, the sum of all the *other* objects' masks (summed in index order).
            others = torch.cat(
                [
                    masks[:, [j for j in range(num_objects) if j != i]].sum(dim=1, keepdim=True)
                    for i in range(num_objects)
                ],
                1,
            )
        else:
            others = torch.zeros_like(masks)
        return self._encoder("value_encoder")(frame, image_feat_f16, h16, masks, others, is_deep_update)

    def segment(
        self,
        multi_scale_features: tuple[Tensor, Tensor, Tensor],
        memory_readout: Tensor,
        hidden_state: Tensor | None,
        selector: Tensor | None = None,
        h_out: bool = True,
        strip_bg: bool = True,
    ) -> tuple[Tensor | None, Tensor, Tensor]:
        """Decode (B, N, value_dim, h, w) readouts -> (hidden, logits (B, N+1, H, W), prob).

        ``prob`` has the background first unless ``strip_bg``; ``selector`` (B, N, 1, 1) zeroes
        objects out before the soft aggregation.
        """
        hidden_state, logits = self.decoder(*multi_scale_features, hidden_state, memory_readout, h_out=h_out)
        prob = torch.sigmoid(logits)
        if selector is not None:
            prob = prob * selector
        logits, prob = aggregate(prob, dim=1)
        if strip_bg:
            prob = prob[:, 1:]
        return hidden_state, logits, prob

    def forward(self, mode: str, *args: Any, **kwargs: Any) -> Any:
        calls = {"encode_key": self.encode_key, "encode_value": self.encode_value, "segment": self.segment}
        if mode not in calls:
            raise ValueError(f"unknown XMem mode {mode!r}; known: {', '.join(calls)}")
        return calls[mode](*args, **kwargs)

    # ------------------------------------------------------------------ weights

    def load_weights(self, state_dict: Mapping[str, Tensor], strict: bool = True) -> None:
        """Load a state dict; a single-object checkpoint (4-channel value encoder input) gets a zero
        "other objects" channel when this network is multi-object, as the official evaluation does.
        """
        state = dict(state_dict)
        conv1 = state.get("value_encoder.conv1.weight")
        if conv1 is not None and conv1.shape[1] == 4 and not self.single_object:
            pad = torch.zeros(conv1.shape[0], 1, *conv1.shape[2:], dtype=conv1.dtype, device=conv1.device)
            state["value_encoder.conv1.weight"] = torch.cat([conv1, pad], 1)
        self.load_state_dict(state, strict=strict)

    @classmethod
    def from_state_dict(
        cls, state_dict: Mapping[str, Tensor], config: Mapping[str, Any] | None = None
    ) -> XMem:
        """A network whose widths are read from ``state_dict`` (overriding ``config``), loaded strictly."""
        dims = dims_from_state_dict(state_dict)
        cfg = {**dict(config or {}), **dims}
        cfg["single_object"] = bool((config or {}).get("single_object", False))
        net = cls(cfg)
        net.load_weights(state_dict)
        return net


def load_xmem(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    config: Mapping[str, Any] | None = None,
) -> XMem:
    """Load an XMem checkpoint (e.g. the official ``XMem.pth``) into an eval-mode :class:`XMem`.

    Raises :class:`XMemCheckpointError` (a FileNotFoundError) naming the download URL when the file
    is missing, and ValueError when the file is not an XMem state dict.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise XMemCheckpointError(
            f"XMem checkpoint not found at {str(path)!r}. Download the official weights from {XMEM_URL} "
            "and point the xmem_checkpoint setting at the file."
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle / zip errors, or objects that weights_only refuses
        raise ValueError(f"could not read XMem checkpoint {str(path)!r}: {exc}") from exc
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{str(path)!r} is not an XMem state dict (expected a dict of tensors)")
    try:
        net = XMem.from_state_dict(state, config)
    except RuntimeError as exc:  # missing / unexpected keys or shape mismatches
        raise ValueError(f"{str(path)!r} does not match the XMem architecture: {exc}") from exc
    return net.to(map_location).eval()
