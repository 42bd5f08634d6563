from kdcore.models.registry import MODELS, build_model, count_parameters, register_model
from kdcore.models import small  # noqa: F401,E402  (registers the built-in models)
import kdcore.text.models  # noqa: F401,E402  (registers the text models)

__all__ = ["MODELS", "build_model", "count_parameters", "register_model"]
