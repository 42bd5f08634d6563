"""Text classification: tokeniser and vocabulary, text dataset loaders, and text models."""
