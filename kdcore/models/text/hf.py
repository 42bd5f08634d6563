"""A Hugging Face sequence classifier as a kdflow model: ids of its own tokenizer in, logits out.

Registered as `hf` (teachers only, with teacher.pretrained): it is rebuilt from the config JSON its checkpoint
records and its state dict, like every kdflow model. transformers is imported only when one is built, so kdcore
stays importable without the optional `.[hf]` extra.
"""

from __future__ import annotations

import json

import torch
import torch.nn as nn

from kdcore.models.registry import register_model


class HFClassifier(nn.Module):
    """`AutoModelForSequenceClassification` on right-padded ids: the padding is masked out of attention."""

    def __init__(self, model: nn.Module, pad_id: int):
        super().__init__()
        self.model = model
        self.pad_id = pad_id

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids, attention_mask=(ids != self.pad_id).long()).logits


@register_model(
    "hf",
    "a Hugging Face AutoModelForSequenceClassification with its own tokenizer (teacher.pretrained: id or folder)",
    modality="hf_text",
)
def hf_classifier(input_shape, num_classes: int, hf_config: str, pad_id: int = 0) -> HFClassifier:
    """The architecture `hf_config` (a config's JSON) describes, untrained, with `num_classes` outputs."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    fields = json.loads(hf_config)
    config = AutoConfig.for_model(fields.pop("model_type"), **fields)
    if config.num_labels != num_classes:
        config.num_labels = num_classes
    return HFClassifier(AutoModelForSequenceClassification.from_config(config), pad_id)
