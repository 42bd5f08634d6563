"""Text models (token ids in, logits out), registered by name in kdcore.models.MODELS."""

from kdcore.models.registry import models_of
from kdcore.models.text import bag, cnn, hf, recurrent, transformer  # noqa: F401  (registers them)

TEXT_MODELS = models_of("text")  # kdflow's tokenizer's ids in; `hf` reads its own tokenizer's ids
