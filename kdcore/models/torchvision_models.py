"""torchvision's ImageNet models, untrained (weights=None), for `imagefolder` data at 224 px.

The number of classes and of input channels come from the data; a grey (1-channel) input gets a
first convolution of the right shape instead of a copied RGB one.
"""

from __future__ import annotations

import torch.nn as nn

from kdcore.models.registry import register_model


def first_conv_for(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    if conv.in_channels == in_channels:
        return conv
    return nn.Conv2d(
        in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=conv.bias is not None
    )


def torchvision_resnet(name: str):
    def build(input_shape, num_classes) -> nn.Module:
        import torchvision.models as tvm

        model = getattr(tvm, name)(weights=None, num_classes=num_classes)
        model.conv1 = first_conv_for(model.conv1, input_shape[0])
        return model

    return build


register_model("resnet18", "torchvision ResNet-18 (ImageNet-size), first conv fitted to the channels")(
    torchvision_resnet("resnet18")
)
register_model("resnet34", "torchvision ResNet-34 (ImageNet-size), first conv fitted to the channels")(
    torchvision_resnet("resnet34")
)


@register_model("mobilenet_v3_small", "torchvision MobileNetV3-Small, `width_multiplier`")
def mobilenet_v3_small(input_shape, num_classes, width_multiplier: float = 1.0) -> nn.Module:
    import torchvision.models as tvm

    model = tvm.mobilenet_v3_small(weights=None, num_classes=num_classes, width_mult=width_multiplier)
    model.features[0][0] = first_conv_for(model.features[0][0], input_shape[0])
    return model
