"""Models by name. Each family registers its models on import: images here, text models in `text/`."""

from kdcore.models import mobilenetv2, resnet_cifar, small, text, timm_models, torchvision_models, wrn  # noqa: F401
from kdcore.models.registry import MODELS, build_model, count_parameters, register_model

__all__ = ["MODELS", "build_model", "count_parameters", "register_model"]
