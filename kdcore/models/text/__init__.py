"""Text models (token ids in, logits out), registered by name in kdcore.models.MODELS."""

from kdcore.models.registry import models_of
from kdcore.models.text import bag, cnn, recurrent, transformer  # noqa: F401  (registers them)

TEXT_MODELS = models_of("text")
