"""ResNet trunks for XMem's key and value encoders (paper step 3b: mask propagation).

XMem encodes every frame with the first three stages of a ResNet-50 (the *key encoder*, stride 16,
1024 channels) and every memory frame, together with each object's mask, with the first three stages
of a ResNet-18 (the *value encoder*). The value encoder's first convolution takes ``3 + extra_dim``
input channels: the RGB image plus the object's mask and the union of the other objects' masks.

The layout (module names, stride on the 3x3 convolution of a bottleneck, a 1x1 convolution + batch
norm as the projection shortcut) is the classic torchvision one, so the parameter names line up with
the official ``XMem.pth``. Nothing is downloaded: weights come from the XMem checkpoint; the random
initialisation below only matters for tests that run on random weights.
"""

from __future__ import annotations

import math
from typing import ClassVar

from torch import Tensor, nn


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += shortcut
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1 convolutions with a residual connection (ResNet-50)."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += shortcut
        return self.relu(out)


class ResNetTrunk(nn.Module):
    """Stem + stages 1-3 of a ResNet (output stride 16); stage 4 is never used by XMem.

    ``depth`` is 18 or 50. The stem convolution takes ``3 + extra_dim`` channels.
    """

    _LAYOUT: ClassVar[dict[int, tuple[type[nn.Module], tuple[int, int, int]]]] = {
        18: (BasicBlock, (2, 2, 2)),
        50: (Bottleneck, (3, 4, 6)),
    }

    def __init__(self, depth: int, extra_dim: int = 0):
        super().__init__()
        if depth not in self._LAYOUT:
            raise ValueError(f"ResNet depth must be 18 or 50, got {depth}")
        block, counts = self._LAYOUT[depth]
        self.conv1 = nn.Conv2d(3 + extra_dim, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self._in_planes = 64
        self.layer1 = self._stage(block, 64, counts[0], stride=1)
        self.layer2 = self._stage(block, 128, counts[1], stride=2)
        self.layer3 = self._stage(block, 256, counts[2], stride=2)
        self.out_channels = self._in_planes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _stage(self, block: type[nn.Module], planes: int, count: int, stride: int) -> nn.Sequential:
        out_planes = planes * block.expansion
        downsample = None
        if stride != 1 or self._in_planes != out_planes:
            downsample = nn.Sequential(
                nn.Conv2d(self._in_planes, out_planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_planes),
            )
        blocks = [block(self._in_planes, planes, stride, downsample)]
        self._in_planes = out_planes
        blocks += [block(out_planes, planes) for _ in range(1, count)]
        return nn.Sequential(*blocks)
