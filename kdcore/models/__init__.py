import kdcore.text.models  # noqa: F401,E402  (registers the text models)

# Each family registers its models by name on import.
from kdcore.models import mobilenetv2, resnet_cifar, small, torchvision_models, wrn  # noqa: F401,E402
from kdcore.models.registry import MODELS, build_model, count_parameters, register_model

__all__ = ["MODELS", "build_model", "count_parameters", "register_model"]
