"""torchvision's ImageNet models, built untrained (weights=None), for `imagefolder` data at 224 px.

The number of classes and of input channels come from the data; a grey (1-channel) input gets a
first convolution of the right shape instead of a copied RGB one. These are the models that can start from
pretrained weights (`PRETRAINABLE`, teacher.pretrained; kdcore/models/pretrained.py loads them).
"""

from __future__ import annotations

import torch.nn as nn

from kdcore.models.registry import register_model

PRETRAINABLE: set[str] = set()  # registered names that are torchvision's own, so its weights fit them


def torchvision_model(name: str, description: str):
    PRETRAINABLE.add(name)
    return register_model(name, description)


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


torchvision_model("resnet18", "torchvision ResNet-18 (ImageNet-size), first conv fitted to the channels")(
    torchvision_resnet("resnet18")
)
torchvision_model("resnet34", "torchvision ResNet-34 (ImageNet-size), first conv fitted to the channels")(
    torchvision_resnet("resnet34")
)


@torchvision_model("mobilenet_v3_small", "torchvision MobileNetV3-Small, `width_multiplier`")
def mobilenet_v3_small(input_shape, num_classes, width_multiplier: float = 1.0) -> nn.Module:
    import torchvision.models as tvm

    model = tvm.mobilenet_v3_small(weights=None, num_classes=num_classes, width_mult=width_multiplier)
    model.features[0][0] = first_conv_for(model.features[0][0], input_shape[0])
    return model


def torchvision_features_model(name: str):
    """Models whose first convolution is features[0][0] (EfficientNet, ConvNeXt)."""

    def build(input_shape, num_classes) -> nn.Module:
        import torchvision.models as tvm

        model = getattr(tvm, name)(weights=None, num_classes=num_classes)
        model.features[0][0] = first_conv_for(model.features[0][0], input_shape[0])
        return model

    return build


torchvision_model("efficientnet_b0", "torchvision EfficientNet-B0 (ImageNet-size)")(
    torchvision_features_model("efficientnet_b0")
)
torchvision_model("convnext_tiny", "torchvision ConvNeXt-Tiny (ImageNet-size)")(
    torchvision_features_model("convnext_tiny")
)


@torchvision_model("vit_b_16", "torchvision ViT-B/16 (ImageNet-size; its weights fit 224 px only)")
def vit_b_16(input_shape, num_classes) -> nn.Module:
    import torchvision.models as tvm

    # The position embeddings are sized for the input: other sizes than 224 train from scratch only.
    model = tvm.vit_b_16(weights=None, num_classes=num_classes, image_size=input_shape[-1])
    model.conv_proj = first_conv_for(model.conv_proj, input_shape[0])
    return model
