"""XMem's building blocks (paper step 3b: mask propagation with an Atkinson-Shiffrin memory).

Naming follows the XMem paper and the official checkpoint:

- ``x`` features depend on the image only: ``(B, C, H, W)``.
- ``g`` features depend on the image *and* one object's mask; they carry an object axis:
  ``(B, num_objects, C, H, W)``. Every ``g`` module treats the object axis as extra batch entries,
  so it is permutation-equivariant over objects.
- a trailing number is the stride: ``f16`` is at 1/16 of the (padded) input.

Module and attribute names are those of the official ``XMem.pth`` state dict (``key_encoder.res2``,
``decoder.hidden_update.transform``, the CBAM gates ``ChannelGate`` / ``SpatialGate`` ...), which is
why a few of them are not snake_case.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videoseg.propagation.xmem.resnet import ResNetTrunk

# ----------------------------------------------------------------------------- object-axis helpers


def _resize_objects(g: Tensor, scale: float, mode: str, align_corners: bool | None) -> Tensor:
    batch, objects = g.shape[:2]
    out = F.interpolate(g.flatten(0, 1), scale_factor=scale, mode=mode, align_corners=align_corners)
    return out.view(batch, objects, *out.shape[1:])


def upsample_objects(g: Tensor, scale: float = 2) -> Tensor:
    """Bilinear (align_corners=False) upsampling of ``(B, N, C, H, W)``."""
    return _resize_objects(g, scale, "bilinear", False)


def downsample_objects(g: Tensor, scale: float = 0.5) -> Tensor:
    """Area (average-pool) downsampling of ``(B, N, C, H, W)``."""
    return _resize_objects(g, scale, "area", None)


def expand_to_objects(x: Tensor, num_objects: int) -> Tensor:
    """``(B, C, H, W)`` -> ``(B, num_objects, C, H, W)`` as a broadcast view (no copy)."""
    return x.unsqueeze(1).expand(-1, num_objects, -1, -1, -1)


class ObjectConv2d(nn.Conv2d):
    """A Conv2d applied to every object of ``(B, N, C, H, W)`` (official name: GConv2D)."""

    def forward(self, g: Tensor) -> Tensor:
        batch, objects = g.shape[:2]
        out = super().forward(g.flatten(0, 1))
        return out.view(batch, objects, *out.shape[1:])


def _split_weight(conv: nn.Conv2d, cx: int) -> tuple[Tensor, Tensor]:
    """Contiguous copies of a conv weight's first ``cx`` input channels and of the rest, cached
    until the weight changes (a slice would be copied by every convolution call otherwise)."""
    weight = conv.weight
    try:
        version = weight._version
    except RuntimeError:
        # Weights created under inference_mode carry no version counter, so an in-place reload
        # (load_state_dict) would go unnoticed: split afresh (a copy, small next to the conv).
        return weight[:, :cx].contiguous(), weight[:, cx:].contiguous()
    stamp = (weight.data_ptr(), version, weight.dtype, weight.device, cx)
    cache = conv.__dict__.get("_split_cache")
    if cache is None or cache[0] != stamp:
        parts = (weight[:, :cx].contiguous(), weight[:, cx:].contiguous())
        conv.__dict__["_split_cache"] = cache = (stamp, parts)
    return cache[1]


class ObjectResBlock(nn.Module):
    """Pre-activation residual block over objects; a 3x3 conv shortcut when the width changes."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.downsample = None if in_dim == out_dim else ObjectConv2d(in_dim, out_dim, 3, padding=1)
        self.conv1 = ObjectConv2d(in_dim, out_dim, 3, padding=1)
        self.conv2 = ObjectConv2d(out_dim, out_dim, 3, padding=1)

    def forward(self, g: Tensor) -> Tensor:
        out = self.conv2(F.relu(self.conv1(F.relu(g))))
        shortcut = g if self.downsample is None else self.downsample(g)
        return out + shortcut

    def forward_shared(self, x: Tensor, g: Tensor) -> Tensor:
        """Same result as ``forward(cat([x expanded to N objects, g], dim=2))`` with the image part
        of the first convolution and of the shortcut computed once instead of once per object.

        A convolution over concatenated channels is the sum of the convolutions over each part, and
        ``relu`` acts per channel, so ``conv(relu(cat[x, g])) = conv_x(relu(x)) + conv_g(relu(g))``.
        Only the summation order changes (float rounding, ~1e-7 relative).
        """
        cx = x.shape[1]
        batch, objects = g.shape[:2]

        def split_conv(conv: nn.Conv2d, xin: Tensor, gin: Tensor) -> Tensor:
            w_x, w_g = _split_weight(conv, cx)
            shared = F.conv2d(xin, w_x, conv.bias, conv.stride, conv.padding)
            per_object = F.conv2d(gin.flatten(0, 1), w_g, None, conv.stride, conv.padding)
            per_object = per_object.view(batch, objects, *per_object.shape[1:])
            return per_object + shared.unsqueeze(1)

        out = self.conv2(F.relu(split_conv(self.conv1, F.relu(x), F.relu(g))))
        if self.downsample is None:
            shortcut = torch.cat([expand_to_objects(x, objects), g], 2)
        else:
            shortcut = split_conv(self.downsample, x, g)
        return out + shortcut


# ----------------------------------------------------------------------------- CBAM attention


class _Conv(nn.Module):
    """A bare conv in a wrapper, so its parameters are named ``spatial.conv.*`` as in the checkpoint."""

    def __init__(self, in_planes: int, out_planes: int, kernel_size: int, padding: int):
        super().__init__()
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size, stride=1, padding=padding, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class ChannelGate(nn.Module):
    """CBAM channel attention: a shared MLP over the global average- and max-pooled features."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels, channels // reduction),
            nn.ReLU(),
            nn.Linear(channels // reduction, channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        # Pool over the whole map with the kernel = map size, as the official code does.
        size = (x.shape[2], x.shape[3])
        attention = self.mlp(F.avg_pool2d(x, size, stride=size))
        attention = attention + self.mlp(F.max_pool2d(x, size, stride=size))
        return x * torch.sigmoid(attention)[:, :, None, None]


class SpatialGate(nn.Module):
    """CBAM spatial attention: a 7x7 conv over the channel-wise max and mean."""

    def __init__(self):
        super().__init__()
        self.spatial = _Conv(2, 1, 7, padding=3)

    def forward(self, x: Tensor) -> Tensor:
        pooled = torch.cat([x.max(dim=1, keepdim=True)[0], x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class CBAM(nn.Module):
    """Channel then spatial attention (Woo et al. 2018) on ``(B, C, H, W)``."""

    def __init__(self, channels: int):
        super().__init__()
        self.ChannelGate = ChannelGate(channels)
        self.SpatialGate = SpatialGate()

    def forward(self, x: Tensor) -> Tensor:
        return self.SpatialGate(self.ChannelGate(x))


# ----------------------------------------------------------------------------- fusion and GRUs


class FeatureFusionBlock(nn.Module):
    """Fuse image features ``x (B, x_dim, h, w)`` into every object's ``g (B, N, g_dim, h, w)``."""

    def __init__(self, x_dim: int, g_dim: int, mid_dim: int, out_dim: int):
        super().__init__()
        self.block1 = ObjectResBlock(x_dim + g_dim, mid_dim)
        self.attention = CBAM(mid_dim)
        self.block2 = ObjectResBlock(mid_dim, out_dim)
        # Compute the image half of block1 once for all objects (see ObjectResBlock.forward_shared).
        self.share_image_conv = True

    def forward(self, x: Tensor, g: Tensor) -> Tensor:
        batch, objects = g.shape[:2]
        if self.share_image_conv and objects > 1:
            g = self.block1.forward_shared(x, g)
        else:
            g = self.block1(torch.cat([expand_to_objects(x, objects), g], 2))
        r = self.attention(g.flatten(0, 1)).view(batch, objects, *g.shape[2:])
        return self.block2(g + r)


def _gru_update(values: Tensor, h: Tensor, hidden_dim: int) -> Tensor:
    # XMem's GRU variant: the candidate is gated by the update gate and the old state by
    # forget * (1 - update), exactly as the released model was trained.
    forget_gate = torch.sigmoid(values[:, :, :hidden_dim])
    update_gate = torch.sigmoid(values[:, :, hidden_dim : hidden_dim * 2])
    new_value = torch.tanh(values[:, :, hidden_dim * 2 :])
    return forget_gate * h * (1 - update_gate) + update_gate * new_value


class HiddenUpdater(nn.Module):
    """Decoder-side GRU: update the sensory memory from multi-scale decoder features (every frame)."""

    def __init__(self, g_dims: tuple[int, int, int], mid_dim: int, hidden_dim: int):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.g16_conv = ObjectConv2d(g_dims[0], mid_dim, kernel_size=1)
        self.g8_conv = ObjectConv2d(g_dims[1], mid_dim, kernel_size=1)
        self.g4_conv = ObjectConv2d(g_dims[2], mid_dim, kernel_size=1)
        self.transform = ObjectConv2d(mid_dim + hidden_dim, hidden_dim * 3, kernel_size=3, padding=1)
        nn.init.xavier_normal_(self.transform.weight)

    def forward(self, g: tuple[Tensor, Tensor, Tensor], h: Tensor) -> Tensor:
        g16, g8, g4 = g
        merged = (
            self.g16_conv(g16)
            + self.g8_conv(downsample_objects(g8, 1 / 2))
            + self.g4_conv(downsample_objects(g4, 1 / 4))
        )
        return _gru_update(self.transform(torch.cat([merged, h], 2)), h, self.hidden_dim)


class HiddenReinforcer(nn.Module):
    """Value-encoder-side GRU: refresh the sensory memory from a memory frame's value (deep update)."""

    def __init__(self, g_dim: int, hidden_dim: int):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.transform = ObjectConv2d(g_dim + hidden_dim, hidden_dim * 3, kernel_size=3, padding=1)
        nn.init.xavier_normal_(self.transform.weight)

    def forward(self, g: Tensor, h: Tensor) -> Tensor:
        return _gru_update(self.transform(torch.cat([g, h], 2)), h, self.hidden_dim)


# ----------------------------------------------------------------------------- encoders


class KeyEncoder(nn.Module):
    """ResNet-50 stages 1-3 on the image: ``(B, 3, H, W)`` -> f16 (1024), f8 (512), f4 (256)."""

    def __init__(self):
        super().__init__()
        trunk = ResNetTrunk(50)
        self.conv1, self.bn1, self.relu, self.maxpool = trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool
        self.res2 = trunk.layer1
        self.layer2 = trunk.layer2
        self.layer3 = trunk.layer3

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(image))))
        f4 = self.res2(x)
        f8 = self.layer2(f4)
        f16 = self.layer3(f8)
        return f16, f8, f4


class KeyProjection(nn.Module):
    """f16 -> key (key_dim), shrinkage (1 channel, >= 1) and selection (key_dim, in (0, 1))."""

    def __init__(self, in_dim: int, key_dim: int):
        super().__init__()
        self.key_proj = nn.Conv2d(in_dim, key_dim, kernel_size=3, padding=1)
        self.d_proj = nn.Conv2d(in_dim, 1, kernel_size=3, padding=1)
        self.e_proj = nn.Conv2d(in_dim, key_dim, kernel_size=3, padding=1)
        nn.init.orthogonal_(self.key_proj.weight.data)
        nn.init.zeros_(self.key_proj.bias.data)

    def forward(self, x: Tensor, need_s: bool, need_e: bool) -> tuple[Tensor, Tensor | None, Tensor | None]:
        shrinkage = self.d_proj(x) ** 2 + 1 if need_s else None
        selection = torch.sigmoid(self.e_proj(x)) if need_e else None
        return self.key_proj(x), shrinkage, selection


class ValueEncoder(nn.Module):
    """ResNet-18 over (image, object mask, other objects' masks) + fusion with f16 -> value, hidden."""

    def __init__(self, value_dim: int, hidden_dim: int, single_object: bool = False):
        super().__init__()
        self.single_object = single_object
        trunk = ResNetTrunk(18, extra_dim=1 if single_object else 2)
        self.conv1, self.bn1, self.relu, self.maxpool = trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool
        self.layer1 = trunk.layer1
        self.layer2 = trunk.layer2
        self.layer3 = trunk.layer3
        self.fuser = FeatureFusionBlock(1024, 256, value_dim, value_dim)
        self.hidden_reinforce = HiddenReinforcer(value_dim, hidden_dim) if hidden_dim > 0 else None

    def forward(
        self,
        image: Tensor,
        image_feat_f16: Tensor,
        h: Tensor | None,
        masks: Tensor,
        others: Tensor,
        is_deep_update: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        """image (B, 3, H, W), masks / others (B, N, H, W), h (B, N, hidden, H/16, W/16)."""
        g = masks.unsqueeze(2) if self.single_object else torch.stack([masks, others], 2)
        batch, objects = g.shape[:2]
        g = torch.cat([expand_to_objects(image, objects), g], 2).flatten(0, 1)
        # The official value encoder pools before the ReLU (they commute; kept for fidelity).
        g = self.relu(self.maxpool(self.bn1(self.conv1(g))))
        g = self.layer3(self.layer2(self.layer1(g)))
        g = self.fuser(image_feat_f16, g.view(batch, objects, *g.shape[1:]))
        if is_deep_update and self.hidden_reinforce is not None:
            h = self.hidden_reinforce(g, h)
        return g, h


# ----------------------------------------------------------------------------- decoder


class UpsampleBlock(nn.Module):
    """Upsample object features x2 and add a projected skip connection of the image features."""

    def __init__(self, skip_dim: int, up_dim: int, out_dim: int, scale_factor: int = 2):
        super().__init__()
        self.skip_conv = nn.Conv2d(skip_dim, up_dim, kernel_size=3, padding=1)
        self.out_conv = ObjectResBlock(up_dim, out_dim)
        self.scale_factor = scale_factor

    def forward(self, skip: Tensor, up_g: Tensor) -> Tensor:
        skip = self.skip_conv(skip)
        g = upsample_objects(up_g, self.scale_factor)
        g = expand_to_objects(skip, g.shape[1]) + g
        return self.out_conv(g)


class Decoder(nn.Module):
    """Memory readout + sensory memory + image features -> per-object logits (and a new hidden)."""

    def __init__(self, value_dim: int, hidden_dim: int):
        super().__init__()
        self.fuser = FeatureFusionBlock(1024, value_dim + hidden_dim, 512, 512)
        self.hidden_update = HiddenUpdater((512, 256, 256 + 1), 256, hidden_dim) if hidden_dim > 0 else None
        self.up_16_8 = UpsampleBlock(512, 512, 256)
        self.up_8_4 = UpsampleBlock(256, 256, 256)
        self.pred = nn.Conv2d(256, 1, kernel_size=3, padding=1, stride=1)

    def forward(
        self,
        f16: Tensor,
        f8: Tensor,
        f4: Tensor,
        hidden_state: Tensor | None,
        memory_readout: Tensor,
        h_out: bool = True,
    ) -> tuple[Tensor | None, Tensor]:
        """memory_readout (B, N, value_dim, h, w) -> (hidden or None, logits (B, N, 16h, 16w))."""
        batch, objects = memory_readout.shape[:2]
        if self.hidden_update is not None:
            g16 = self.fuser(f16, torch.cat([memory_readout, hidden_state], 2))
        else:
            g16 = self.fuser(f16, memory_readout)
        g8 = self.up_16_8(f8, g16)
        g4 = self.up_8_4(f4, g8)
        logits = self.pred(F.relu(g4.flatten(0, 1)))

        if h_out and self.hidden_update is not None:
            g4 = torch.cat([g4, logits.view(batch, objects, 1, *logits.shape[-2:])], 2)
            hidden_state = self.hidden_update((g16, g8, g4), hidden_state)
        else:
            hidden_state = None

        logits = F.interpolate(logits, scale_factor=4, mode="bilinear", align_corners=False)
        return hidden_state, logits.view(batch, objects, *logits.shape[-2:])
