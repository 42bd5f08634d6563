"""Teachers beyond kdcore's zoo (pretrained weights, Hugging Face, timm) and the soft targets they leave for the
student."""
