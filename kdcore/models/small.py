"""Small models for small images: an MLP and two plain CNNs."""

from __future__ import annotations

import torch.nn as nn

from kdcore.models.registry import register_model


@register_model("mlp", "fully connected: flatten -> `depth` hidden ReLU layers of `width` -> classifier")
def mlp(input_shape, num_classes, width: int = 64, depth: int = 1, input_dropout: float = 0.0, **_) -> nn.Module:
    c, h, w = input_shape
    layers: list[nn.Module] = [nn.Flatten()]
    if input_dropout > 0:  # drops pixels: a small MLP memorises its training images without it
        layers.append(nn.Dropout(input_dropout))
    features = c * h * w
    for _ in range(depth):
        layers += [nn.Linear(features, width), nn.ReLU(inplace=True)]
        features = width
    layers.append(nn.Linear(features, num_classes))
    net = nn.Sequential(*layers)
    net.distill_stages = [str(i) for i, m in enumerate(layers) if isinstance(m, nn.ReLU)]  # hidden activations
    return net


class ConvNet(nn.Module):
    """Conv-BN-ReLU blocks, each stage ending in a 2x2 max-pool, then a linear classifier."""

    def __init__(self, input_shape, num_classes, widths: list[int], hidden: int):
        super().__init__()
        c, h, w = input_shape
        blocks: list[nn.Module] = []
        stage_ends: list[int] = []
        for width in widths:
            blocks += [
                nn.Conv2d(c, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            if min(h, w) >= 4:  # keep at least 2x2 after pooling on tiny inputs
                blocks.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c = width
            stage_ends.append(len(blocks) - 1)
        self.features = nn.Sequential(*blocks)
        self.distill_stages = [f"features.{i}" for i in stage_ends]  # read by feature KD methods
        self.pool = nn.AdaptiveAvgPool2d(1) if hidden == 0 else nn.Identity()
        flat = c if hidden == 0 else c * h * w
        head: list[nn.Module] = [nn.Flatten()]
        if hidden:
            head += [nn.Linear(flat, hidden), nn.ReLU(inplace=True), nn.Dropout(0.2)]
            flat = hidden
        head.append(nn.Linear(flat, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


@register_model("cnn_small", "two conv blocks of `width` and 2x`width` channels -> classifier; a tiny student")
def cnn_small(input_shape, num_classes, width: int = 16, **_) -> nn.Module:
    return ConvNet(input_shape, num_classes, [width, width * 2], hidden=0)


@register_model("cnn_medium", "three conv blocks (`width` x1, x2, x4) and a hidden layer; the default teacher")
def cnn_medium(input_shape, num_classes, width: int = 32, **_) -> nn.Module:
    return ConvNet(input_shape, num_classes, [width, width * 2, width * 4], hidden=width * 4)
