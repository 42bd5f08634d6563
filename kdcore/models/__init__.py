from kdcore.models.registry import MODELS, build_model, count_parameters, register_model

# Each family registers its models by name on import.
from kdcore.models import small, resnet_cifar, wrn, mobilenetv2, torchvision_models  # noqa: F401,E402
import kdcore.text.models  # noqa: F401,E402  (registers the text models)

__all__ = ["MODELS", "build_model", "count_parameters", "register_model"]
