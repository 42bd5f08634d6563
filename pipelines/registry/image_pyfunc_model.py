"""The MLflow model of an image classifier: raw images in, class names and probabilities out (models-from-code).

MLflow runs this file when the model is loaded; it needs only kdcore (shipped with the model as code) and
two artifacts: our weights_only checkpoint and the preprocessing JSON (the training-time resize, channels,
stored levels and train-split mean/std, plus the class names).
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
from mlflow.pyfunc import PythonModel

BATCH = 256


class ImageClassifier(PythonModel):
    def load_context(self, context) -> None:
        import torch

        from kdcore.data.image_input import ImagePreprocessing
        from kdcore.models import model_from_checkpoint

        meta = json.loads(Path(context.artifacts["preprocessing"]).read_text())
        self.preprocessing = ImagePreprocessing.from_state_dict(meta["preprocessing"])
        self.classes = list(meta["classes"])
        blob = torch.load(context.artifacts["checkpoint"], map_location="cpu", weights_only=True)
        self.model = model_from_checkpoint(blob)

    def predict(self, context, model_input, params=None):
        """`image` column (PNG/JPEG bytes, base64 text or 8-bit arrays) or an (N, ...) uint8 batch -> one row each:
        `class`, `probability` and `prob_<class>` for every class."""
        import pandas as pd
        import torch

        from kdcore.class_probabilities import class_probabilities
        from kdcore.data.image_input import image_cells

        images, logits = image_cells(model_input), []
        with torch.no_grad():
            for start in range(0, len(images), BATCH):
                logits.append(self.model(self.preprocessing.model_inputs(images[start : start + BATCH])))
        return pd.DataFrame(class_probabilities(torch.cat(logits), self.classes))


mlflow.models.set_model(ImageClassifier())
