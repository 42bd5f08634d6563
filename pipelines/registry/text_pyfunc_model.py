"""The MLflow model of a text classifier: raw strings in, class names and probabilities out (models-from-code).

MLflow runs this file when the model is loaded; it needs only kdcore (shipped with the model as
code) and the two artifacts: our weights_only checkpoint and the tokenizer JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
from mlflow.pyfunc import PythonModel

BATCH = 256


class TextClassifier(PythonModel):
    def load_context(self, context) -> None:
        import torch

        from kdcore.models import model_from_checkpoint
        from kdcore.text.tokenizer import Tokenizer

        vocab = json.loads(Path(context.artifacts["tokenizer"]).read_text())
        self.tokenizer, self.classes = Tokenizer.from_state_dict(vocab), list(vocab["classes"])
        blob = torch.load(context.artifacts["checkpoint"], map_location="cpu", weights_only=True)
        self.model = model_from_checkpoint(blob)

    def predict(self, context, model_input, params=None):
        """Texts (a list, or a DataFrame's first column) -> one row each: `class`, `probability`, `prob_<class>`."""
        import pandas as pd
        import torch

        from kdcore.class_probabilities import class_probabilities

        if isinstance(model_input, pd.DataFrame):
            model_input = model_input.iloc[:, 0]
        texts, logits = [str(t) for t in model_input], []
        with torch.no_grad():
            for start in range(0, len(texts), BATCH):
                ids, _ = self.tokenizer.encode(texts[start : start + BATCH])
                logits.append(self.model(ids))
        return pd.DataFrame(class_probabilities(torch.cat(logits), self.classes))


mlflow.models.set_model(TextClassifier())
