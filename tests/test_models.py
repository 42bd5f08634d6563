"""Every registered model builds for its input shape and returns (batch, num_classes) logits."""

import pytest
import torch

from kdcore.models import MODELS, build_model, count_parameters
from kdcore.models.registry import models_of
from kdcore.models.torchvision_models import PRETRAINABLE
from pipelines.config.schema import ConfigError, load_config

IMAGENET = PRETRAINABLE  # torchvision's ImageNet models


def shapes(name):
    if name in IMAGENET:
        return [(3, 224, 224), (1, 64, 64)]
    return [(3, 32, 32), (1, 28, 28)]


@pytest.mark.parametrize("name", models_of("image"))  # text models: test_text_models.py
def test_output_shape_for_each_input_shape(name):
    for shape in shapes(name):
        model = build_model(name, shape, num_classes=7).eval()
        with torch.no_grad():
            out = model(torch.randn(1, *shape))
        assert out.shape == (1, 7), (name, shape)


def test_families_are_registered_with_their_published_sizes():
    expected = {
        "resnet8x4": 1_233_540,
        "resnet32x4": 7_433_860,
        "resnet56": 861_620,
        "resnet20": 278_324,
        "wrn_40_2": 2_255_156,
        "wrn_16_2": 703_284,
    }  # CIFAR-100 heads, as in CRD's table
    for name, params in expected.items():
        assert count_parameters(build_model(name, (3, 32, 32), 100)) == params
    assert {
        "mlp",
        "cnn_small",
        "cnn_medium",
        "resnet8",
        "resnet110",
        "mobilenetv2",
        "resnet18",
        "resnet34",
        "mobilenet_v3_small",
    } <= set(MODELS)


def test_width_depth_and_multiplier_come_from_the_config():
    cfg = load_config(
        "digits",
        [
            "student.arch=resnet20",
            "student.depth=8",
            "student.width=8",
            "teacher.arch=mobilenetv2",
            "teacher.width=",
            "teacher.width_multiplier=0.5",
        ],
    )
    deep = build_model("resnet20", (3, 32, 32), 10)
    shallow = build_model(cfg.student.arch, (3, 32, 32), 10, **cfg.student.options())
    assert count_parameters(shallow) < count_parameters(deep)
    assert count_parameters(build_model("mobilenetv2", (3, 32, 32), 10, **cfg.teacher.options())) < count_parameters(
        build_model("mobilenetv2", (3, 32, 32), 10)
    )
    assert count_parameters(build_model("mlp", (1, 28, 28), 10, width=64)) == 50_890  # the table's MLP


def test_mlp_input_dropout_drops_pixels_in_training_only():
    cfg = load_config("fashion_mnist", ["student.input_dropout=0.5"])
    model = build_model("mlp", (1, 28, 28), 10, **cfg.student.options())
    assert count_parameters(model) == 50_890  # dropout adds no parameters
    x = torch.randn(4, 1, 28, 28)
    torch.manual_seed(0)
    first, second = model.train()(x), model(x)
    assert not torch.equal(first, second)  # each training pass drops other pixels
    with torch.no_grad():
        assert torch.equal(model.eval()(x), model(x))
        dropout = [m for m in model if isinstance(m, torch.nn.Dropout)]
        assert [m.p for m in dropout] == [0.5] and model[1] is dropout[0]  # on the input, before the hidden layer
    assert not any(isinstance(m, torch.nn.Dropout) for m in build_model("mlp", (1, 28, 28), 10))


def test_an_option_the_model_does_not_have_is_a_config_error():
    with pytest.raises(ConfigError, match="student: Value error, model cnn_small has no depth option"):
        load_config("digits", ["student.arch=cnn_small", "student.depth=3"])
    with pytest.raises(ConfigError, match="model cnn_small has no input_dropout option"):
        load_config("digits", ["student.arch=cnn_small", "student.input_dropout=0.1"])
    with pytest.raises(ValueError, match="depth must be 6n\\+2"):
        build_model("resnet20", (3, 32, 32), 10, depth=21)
