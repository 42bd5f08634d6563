"""Text models (token ids in, logits out), registered by name in kdcore.models.MODELS."""

from kdcore.models.registry import models_of
from kdcore.plugins import import_modules

import_modules(__name__, __path__)  # each text model file registers its models

TEXT_MODELS = models_of("text")  # kdflow's tokenizer's ids in; `hf` reads its own tokenizer's ids
