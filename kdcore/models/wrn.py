"""Wide ResNets (Zagoruyko & Komodakis 2016): depth 6n+4, stages of 16k/32k/64k channels, pre-activation blocks."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from kdcore.models.registry import register_model


class WideBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = None if stride == 1 and c_in == c_out else nn.Conv2d(c_in, c_out, 1, stride, bias=False)

    def forward(self, x):
        pre = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(pre))))
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, depth: int, widen: int):
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"wide ResNet depth must be 6n+4 and at least 10 (10, 16, 28, 40, ...); got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.stem = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        layers, c = [], widths[0]
        for i, width in enumerate(widths[1:]):
            for j in range(n):
                layers.append(WideBlock(c, width, stride=2 if i > 0 and j == 0 else 1))
                c = width
        self.stages = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.fc(self.head(self.stages(self.stem(x))))


def wide_resnet(default_depth: int, default_widen: int):
    """`width` is the widen factor k, `depth` is 6n+4."""

    def build(input_shape, num_classes, width: int = default_widen, depth: int = default_depth) -> nn.Module:
        return WideResNet(input_shape[0], num_classes, depth, width)

    return build


DEPTHS = range(10, 4097, 6)  # 6n+4, n >= 1: what a size search may suggest

register_model("wrn_16_2", "Wide ResNet 16-2 (Zagoruyko and Komodakis 2016), CIFAR-size", depths=DEPTHS)(
    wide_resnet(16, 2)
)
register_model("wrn_40_2", "Wide ResNet 40-2, CIFAR-size; the CRD teacher for wrn_16_2", depths=DEPTHS)(
    wide_resnet(40, 2)
)
