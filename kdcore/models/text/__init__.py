"""Text models (token ids in, logits out), registered by name in kdcore.models.MODELS."""

from kdcore.models.text import bag, cnn, recurrent, transformer  # noqa: F401  (registers them)

TEXT_MODELS = ("bilstm", "transformer", "fasttext", "textcnn", "lstm")
