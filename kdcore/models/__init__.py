"""Models by name. Each family registers its models on import: images here, text models in `text/`."""

from kdcore.models.registry import MODELS, build_model, count_parameters, model_from_checkpoint, register_model
from kdcore.plugins import import_modules

import_modules(__name__, __path__)  # each model file registers its models: a new file here is a new model

__all__ = ["MODELS", "build_model", "count_parameters", "model_from_checkpoint", "register_model"]
