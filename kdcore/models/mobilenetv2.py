"""MobileNetV2 (Sandler et al. 2018) for 32x32 inputs: stride 1 in the stem and the second stage, so the
final feature map is 4x4 instead of 1x1 (as in the CIFAR versions used by CRD and mdistiller)."""

from __future__ import annotations

import torch.nn as nn

from kdcore.models.registry import register_model

# (expansion t, channels c, blocks n, first stride s); the 32x32 version uses s=1 where ImageNet uses 2.
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def scaled(channels: float, multiplier: float) -> int:
    return max(8, int(channels * multiplier + 4) // 8 * 8)  # multiples of 8, as in the paper's code


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> list[nn.Module]:
    layers = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
    return layers + [nn.ReLU6(inplace=True)] if act else layers


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int):
        super().__init__()
        hidden = c_in * expansion
        layers = conv_bn(c_in, hidden, 1) if expansion != 1 else []
        layers += conv_bn(hidden, hidden, 3, stride, groups=hidden) + conv_bn(hidden, c_out, 1, act=False)
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


class MobileNetV2(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, width_multiplier: float):
        super().__init__()
        c = scaled(32, width_multiplier)
        layers: list[nn.Module] = conv_bn(in_channels, c, 3, 1)
        for t, channels, n, s in SETTINGS:
            out = scaled(channels, width_multiplier)
            for i in range(n):
                layers.append(InvertedResidual(c, out, s if i == 0 else 1, t))
                c = out
        last = scaled(1280, max(1.0, width_multiplier))
        layers += conv_bn(c, last, 1)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(last, num_classes)
        )

    def forward(self, x):
        return self.classifier(self.features(x))


@register_model("mobilenetv2", "MobileNetV2 for 32x32 inputs (Sandler et al. 2018), `width_multiplier`")
def mobilenetv2(input_shape, num_classes, width_multiplier: float = 1.0) -> nn.Module:
    return MobileNetV2(input_shape[0], num_classes, width_multiplier)
