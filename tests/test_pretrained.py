"""teacher.pretrained: torchvision weights by name (from TORCH_HOME) or from a saved state dict, head replaced,
fine-tuned and distilled through the real pipeline; the weights' own preprocessing; the one-sentence errors.

No network here: the "pretrained" weights are randomly initialised torchvision models saved with
torch.save(model.state_dict()), under torchvision's own file name in a TORCH_HOME made for the test when a
named weight is tested (torchvision checks the hash in the file name only when it downloads).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.models as tvm
from PIL import Image

from kdcore.data import DataBundle, Split
from kdcore.data.view import InputView
from kdcore.distill import LabelsOnly
from kdcore.models.input_adapter import InputAdapter
from kdcore.models.pretrained import cache_file
from kdcore.train import TrainSettings, fit
from pipelines.cache.checkpoint import load_model, read_spec
from pipelines.config.schema import ConfigError, load_config
from pipelines.teachers.pretrained import check_pretrained, pretrained_teacher

COLOURS = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}


def image_folder(root, per_class=8, size=32):
    rng = np.random.default_rng(0)
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(np.array(rgb) + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def saved_state(path, arch="resnet18"):
    torch.manual_seed(1)
    model = getattr(tvm, arch)(weights=None)  # 1,000 ImageNet classes, like the real file
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model.state_dict()


def config(root, *overrides):
    return load_config(
        "imagefolder_pretrained",
        [f"data.root={root}", "data.download=false", "data.val_fraction=0.25", "data.test_fraction=0.25", *overrides],
    )


def tiny_bundle(size=16, channels=3):
    x = torch.randint(0, 256, (6, channels, size, size), dtype=torch.uint8)
    split = Split(x, torch.tensor([0, 1, 2, 0, 1, 2]))
    view = InputView(mean=(0.5,) * channels, std=(0.25,) * channels, scale=1 / 255)
    return DataBundle(split, split, split, 3, (channels, size, size), "tiny", ["a", "b", "c"], view=view)


def test_named_weights_come_from_torch_home_with_their_own_preprocessing(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    weights = tvm.ResNet18_Weights.IMAGENET1K_V1
    saved = saved_state(cache_file(weights))
    assert cache_file(weights) == tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cfg = config(image_folder(tmp_path / "images"), "teacher.pretrained=ResNet18_Weights.IMAGENET1K_V1")
    assert "sees 224 px (resize 256" in check_pretrained(cfg)

    model, options = pretrained_teacher(cfg.teacher, tiny_bundle(), download=False)
    adapter = InputAdapter.from_state_dict(options["input_adapter"])
    t = weights.transforms()  # the weights' metadata, not our constants
    assert (adapter.resize, adapter.crop) == (t.resize_size[0], t.crop_size[0])
    assert adapter.mean == tuple(t.mean) and adapter.std == tuple(t.std)
    assert (adapter.data_mean, adapter.data_std) == ((0.5,) * 3, (0.25,) * 3)  # the student's normalisation, undone
    state = model.state_dict()
    assert torch.equal(state["layer4.1.conv2.weight"], saved["layer4.1.conv2.weight"])  # the backbone is loaded
    assert state["fc.weight"].shape == (3, 512)  # a new head for the data's 3 classes
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 3)  # takes the data's 16 px inputs


def test_the_adapter_equals_the_weights_transforms_on_the_same_pixels():
    """Stored 32 px image -> student normalisation -> adapter == torchvision's preset on the [0, 1] image."""
    pixels = torch.rand(2, 3, 32, 32)
    data_mean, data_std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    student_input = (pixels - torch.tensor(data_mean).view(1, 3, 1, 1)) / torch.tensor(data_std).view(1, 3, 1, 1)
    t = tvm.ResNet18_Weights.IMAGENET1K_V1.transforms()
    adapter = InputAdapter(data_mean, data_std, t.resize_size[0], t.crop_size[0], tuple(t.mean), tuple(t.std))
    assert torch.allclose(adapter(student_input), t(pixels), atol=1e-4)
    grey = InputAdapter((0.5,), (0.25,), 40, 32)(torch.zeros(1, 1, 16, 16))  # grey -> RGB at the weights' size
    assert grey.shape == (1, 3, 32, 32)


def test_a_local_state_dict_without_metadata_gets_imagenet_preprocessing_and_teacher_image_size(tmp_path):
    path = tmp_path / "weights" / "resnet18.pth"
    saved_state(path)
    cfg = config(image_folder(tmp_path / "images"), f"teacher.pretrained={path}", "teacher.image_size=32")
    model, options = pretrained_teacher(cfg.teacher, tiny_bundle(), download=False)
    adapter = options["input_adapter"]
    assert (adapter["resize"], adapter["crop"]) == (37, 32)  # ImageNet's 256/224 ratio at the asked 32 px
    assert adapter["mean"] == [0.485, 0.456, 0.406]


def test_missing_named_weights_offline_are_one_sentence_before_any_work(tmp_path, monkeypatch, capsys):
    from flows.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    for name in ("PREFECT_LOGGING_LEVEL", "MLFLOW_LOGGING_LEVEL"):  # `run` sets them by default: undo afterwards
        monkeypatch.setenv(name, "WARNING")
    root = image_folder(tmp_path / "images", per_class=4, size=8)
    code = main(
        ["run", "--preset", "imagefolder_pretrained", "--set", f"data.root={root}", "--set", "data.download=false"]
    )
    message = capsys.readouterr().err.strip()
    assert code != 0
    assert len(message.splitlines()) == 1, message
    assert "resnet18-f37072fd.pth" in message and "data.download=false" in message
    assert str(tmp_path / "empty-torch-home" / "hub" / "checkpoints") in message
    assert "TORCH_HOME/hub/checkpoints" in message
    assert not list(tmp_path.glob("mlruns/*"))  # no data cache, no MLflow run: nothing was started (the store
    # folder itself is made by the reachability check when MLFLOW_TRACKING_URI is unset)


def test_bad_pretrained_inputs_are_one_sentence(tmp_path):
    root = image_folder(tmp_path / "images", per_class=2, size=8)
    with pytest.raises(ConfigError, match=r"unknown weights 'IMAGENET1K_V3' for resnet18; .*close: IMAGENET1K_V1"):
        config(root, "teacher.pretrained=IMAGENET1K_V3")
    with pytest.raises(ConfigError, match="resnet8 has no pretrained weights .* drop teacher.pretrained"):
        config(root, "teacher.arch=resnet8", "teacher.pretrained=IMAGENET1K_V1")
    with pytest.raises(ConfigError, match="student.pretrained: only the teacher starts from pretrained weights"):
        config(root, "student.pretrained=IMAGENET1K_V1")
    other = tmp_path / "mobilenet.pt"
    saved_state(other, "mobilenet_v3_small")
    with pytest.raises(ConfigError, match=r"the weights in .*mobilenet.pt do not fit resnet18 \(\d+ of its tensors"):
        check_pretrained(config(root, f"teacher.pretrained={other}"))
    torch.save({"args": "not weights"}, tmp_path / "junk.pt")
    with pytest.raises(ConfigError, match="holds no state dict of tensors; save it with torch.save"):
        check_pretrained(config(root, f"teacher.pretrained={tmp_path / 'junk.pt'}"))


def test_the_backbone_learns_at_its_factor_and_stays_frozen_for_the_first_epochs():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    data = Split(torch.randn(24, 12), torch.arange(24) % 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    frozen = TrainSettings(epochs=1, batch_size=8, lr=0.05, freeze_backbone_epochs=1, backbone_lr_factor=0.1)
    fit(model, data, None, frozen, LabelsOnly())
    after = model.state_dict()
    assert torch.equal(after["1.weight"], before["1.weight"])  # backbone frozen in epoch 1
    assert not torch.equal(after["3.weight"], before["3.weight"])  # the head learned
    assert all(p.requires_grad for p in model.parameters())  # unfrozen again after fit

    from kdcore.train import make_optimizer, param_groups

    groups, backbone = param_groups(model, LabelsOnly(), frozen)
    lrs = [g["lr"] for g in make_optimizer(groups, frozen).param_groups]
    assert lrs == pytest.approx([0.005, 0.05]) and len(backbone) == 2  # backbone at lr x 0.1, head at lr


def test_a_local_checkpoint_is_fine_tuned_and_distilled_through_the_pipeline(tmp_path, kdflow):
    """resnet18 from a saved state dict, head replaced, fine-tuned 2 epochs at 32 px; student at its own 16 px."""
    weights = tmp_path / "weights" / "resnet18-random.pth"
    saved = saved_state(weights)
    root = image_folder(tmp_path / "images")
    proc, summary = kdflow(
        "run", "--preset", "imagefolder_pretrained",
        *("--set", f"data.root={root}", "--set", "data.download=false", "--set", "data.image_size=16"),
        *("--set", "data.val_fraction=0.25", "--set", "data.test_fraction=0.25"),
        *("--set", f"teacher.pretrained={weights}", "--set", "teacher.image_size=32"),
        *("--set", "teacher.train.epochs=2", "--set", "teacher.train.batch_size=8"),
        *("--set", "teacher.train.freeze_backbone_epochs=1", "--set", "student.arch=resnet8"),
        *("--set", "student.train.epochs=2", "--set", "tune.n_trials=1", "--set", "tune.epochs=1"),
        *("--set", "evaluate.timing_seconds=0.2"),
        *("--set", "runtime.device=cpu"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert summary["models"]["teacher"]["arch"] == "resnet18"
    assert summary["models"]["student"]["arch"] == "resnet8"

    [checkpoint] = (tmp_path / "mlruns" / "cache" / "teacher").glob("*.pt")
    spec = read_spec(checkpoint)
    assert spec["num_classes"] == 3 and spec["input_shape"] == [3, 16, 16]  # the data's (student's) images
    assert (spec["options"]["input_adapter"]["resize"], spec["options"]["input_adapter"]["crop"]) == (37, 32)
    teacher = load_model(checkpoint)  # rebuilds the adapter from the checkpoint alone
    assert teacher(torch.zeros(1, 3, 16, 16)).shape == (1, 3)
    fine_tuned = teacher.state_dict()["layer1.0.conv1.weight"]
    assert not torch.equal(fine_tuned, saved["layer1.0.conv1.weight"])  # the backbone learned in epoch 2
    assert torch.allclose(fine_tuned, saved["layer1.0.conv1.weight"], atol=0.1)  # from the given weights
