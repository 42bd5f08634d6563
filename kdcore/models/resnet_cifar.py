"""CIFAR ResNets (He et al. 2016, section 4.2): depth 6n+2, three stages of basic blocks.

Names and widths follow the KD literature (CRD, mdistiller): resnet8/20/32/56/110 with stages of
16/32/64 channels, and the x4 variants with stages of 64/128/256 after a 32-channel stem.
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from kdcore.models.registry import register_model


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:  # projection shortcut (option B)
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, depth: int, stem: int, widths: tuple[int, int, int]):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 and at least 8 (8, 20, 32, 56, 110, ...); got {depth}")
        blocks_per_stage = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True)
        )
        layers, c = [], stem
        for i, width in enumerate(widths):
            for j in range(blocks_per_stage):
                layers.append(BasicBlock(c, width, stride=2 if i > 0 and j == 0 else 1))
                c = width
        self.stages = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)  # any input size, not only 32x32
        self.fc = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.fc(self.pool(self.stages(self.stem(x))).flatten(1))


def cifar_resnet(default_depth: int, default_width: int, wide_stem: bool):
    """Factory for one registered name; `width` is the first stage's channels, `depth` is 6n+2."""

    def build(input_shape, num_classes, width: int = default_width, depth: int = default_depth) -> nn.Module:
        stem = width // 2 if wide_stem else width
        return CifarResNet(input_shape[0], num_classes, depth, stem, (width, width * 2, width * 4))

    return build


DEPTHS = range(8, 4097, 6)  # 6n+2, n >= 1: what a size search may suggest

for _name, _depth in (("resnet8", 8), ("resnet20", 20), ("resnet32", 32), ("resnet56", 56), ("resnet110", 110)):
    register_model(_name, f"CIFAR ResNet-{_depth} (He et al. 2016), 16-32-64 channels", depths=DEPTHS)(
        cifar_resnet(_depth, 16, wide_stem=False)
    )
register_model("resnet8x4", "CIFAR ResNet-8 at 4x width (64-128-256): the CRD student", depths=DEPTHS)(
    cifar_resnet(8, 64, wide_stem=True)
)
register_model("resnet32x4", "CIFAR ResNet-32 at 4x width (64-128-256): the CRD teacher", depths=DEPTHS)(
    cifar_resnet(32, 64, wide_stem=True)
)
