"""Text models: registered by name, logits of shape (batch, classes), blind to the batch's padding."""

import pytest
import torch

from kdcore.models import MODELS, build_model, count_parameters
from kdcore.models.text import TEXT_MODELS
from pipelines.config.schema import ConfigError, load_config

IDS = torch.tensor(
    [
        [5, 6, 7, 8, 0, 0, 0, 0],
        [3, 0, 0, 0, 0, 0, 0, 0],
        [2, 3, 4, 5, 6, 7, 8, 9],
    ]
)


@pytest.mark.parametrize("arch", TEXT_MODELS)
def test_shapes_padding_invariance_and_gradients(arch):
    torch.manual_seed(0)
    model = build_model(arch, (8,), 3, vocab_size=12)
    assert arch in MODELS and count_parameters(model) > 0
    model.eval()
    logits = model(IDS)
    assert logits.shape == (3, 3) and logits.dtype == torch.float32
    # The same text alone, with no extra padding or much more, scores the same.
    assert torch.allclose(model(IDS[1:2, :1]), logits[1:2], atol=1e-5)
    assert torch.allclose(model(torch.nn.functional.pad(IDS[:1], (0, 4))), logits[:1], atol=1e-5)
    model.train()
    model(IDS).logsumexp(1).sum().backward()
    assert all(p.grad is not None for p in model.parameters())  # every weight is trained


def test_teachers_are_larger_than_students_at_default_widths():
    size = {a: count_parameters(build_model(a, (256,), 2, vocab_size=20_000)) for a in TEXT_MODELS}
    assert min(size["bilstm"], size["transformer"]) > max(size["fasttext"], size["textcnn"], size["lstm"])


def test_text_model_needs_a_vocabulary_and_config_checks_the_pairing():
    with pytest.raises(ValueError, match="model 'bilstm' reads token ids: train it on a text dataset"):
        build_model("bilstm", (1, 8, 8), 10)
    with pytest.raises(
        ConfigError, match="teacher.arch=cnn_medium does not fit data.dataset=imdb; choose a text model"
    ):
        load_config("digits", ["data.dataset=imdb"])
    with pytest.raises(
        ConfigError, match="student.arch=fasttext does not fit data.dataset=digits; choose an image model"
    ):
        load_config("digits", ["student.arch=fasttext"])
    cfg = load_config("imdb", ["data.text.max_len=64", "data.strict=false"])
    assert cfg.data.loader_options()["text"].max_len == 64 and cfg.data.loader_options()["text"].strict is False
