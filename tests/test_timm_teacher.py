"""teacher.arch=timm: a timm model from a folder written by timm's save_for_hf (or timm:<name> from HF_HOME), its
head reset for the data's classes, its preprocessing from the weights' pretrained_cfg, fine-tuned and distilled
through the real pipeline; the one-sentence errors.

No network here: the "pretrained" model is a randomly initialised timm resnet18 saved with save_for_hf.
"""

from __future__ import annotations

import pytest
import torch

timm = pytest.importorskip("timm")

from pipelines.cache.checkpoint import load_model, read_spec  # noqa: E402
from pipelines.config.schema import ConfigError, load_config  # noqa: E402
from pipelines.teachers.pretrained import check_pretrained  # noqa: E402
from tests.test_pretrained import image_folder  # noqa: E402

# What the saved weights say they were trained on: distinctive, so the test sees it was read.
PRETRAINED_CFG = {"input_size": (3, 32, 32), "crop_pct": 0.875, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}


def saved_timm(folder):
    from timm.models import save_for_hf

    torch.manual_seed(1)
    model = timm.create_model("resnet18", pretrained=False, pretrained_cfg_overlay=PRETRAINED_CFG)  # 1,000 classes
    save_for_hf(model, folder)
    return model.state_dict()


def config(root, *overrides):
    return load_config(
        "imagefolder_pretrained",
        [f"data.root={root}", "data.download=false", "data.val_fraction=0.25", "data.test_fraction=0.25", *overrides],
    )


def test_a_timm_folder_is_fine_tuned_and_distilled_through_the_pipeline(tmp_path, kdflow):
    saved = saved_timm(tmp_path / "timm-resnet18")
    root = image_folder(tmp_path / "images")
    proc, summary = kdflow(
        "run", "--preset", "imagefolder_pretrained",
        *("--set", f"data.root={root}", "--set", "data.download=false", "--set", "data.image_size=16"),
        *("--set", "data.val_fraction=0.25", "--set", "data.test_fraction=0.25"),
        *("--set", "teacher.arch=timm", "--set", f"teacher.pretrained=timm:{tmp_path / 'timm-resnet18'}"),
        *("--set", "teacher.train.epochs=2", "--set", "teacher.train.batch_size=8"),
        *("--set", "teacher.train.freeze_backbone_epochs=0", "--set", "student.arch=resnet8"),
        *("--set", "student.train.epochs=2", "--set", "tune.n_trials=1", "--set", "tune.epochs=1"),
        *("--set", "evaluate.timing_seconds=0.2"),
        *("--set", "distill.teacher_views=2", "--set", "runtime.device=cpu"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert summary["models"]["teacher"]["arch"] == "timm" and summary["models"]["student"]["arch"] == "resnet8"

    [checkpoint] = (tmp_path / "mlruns" / "cache" / "teacher").glob("*.pt")
    spec = read_spec(checkpoint)
    assert spec["num_classes"] == 3 and spec["input_shape"] == [3, 16, 16]  # the data's (student's) images
    assert spec["options"]["timm_arch"] == "resnet18"
    adapter = spec["options"]["input_adapter"]
    assert (adapter["resize"], adapter["crop"]) == (36, 32)  # floor(32 / 0.875), from the weights' pretrained_cfg
    assert adapter["mean"] == [0.5, 0.5, 0.5] and adapter["std"] == [0.25, 0.25, 0.25]
    teacher = load_model(checkpoint)  # rebuilt by timm from the recorded name, the adapter from the checkpoint
    assert teacher.get_classifier().weight.shape == (3, 512)  # the 1,000-class head was reset
    assert teacher(torch.zeros(1, 3, 16, 16)).shape == (1, 3)
    tuned = teacher.state_dict()["layer1.0.conv1.weight"]
    assert not torch.equal(tuned, saved["layer1.0.conv1.weight"])  # the backbone learned (whichever epoch was kept)
    assert torch.allclose(tuned, saved["layer1.0.conv1.weight"], atol=0.1)  # from the given weights


def test_bad_timm_inputs_are_one_sentence(tmp_path):
    root = image_folder(tmp_path / "images", per_class=2, size=8)
    with pytest.raises(ConfigError, match=r"unknown timm model 'resnet181' \(close: .*resnet18"):
        config(root, "teacher.arch=timm", "teacher.pretrained=timm:resnet181")
    with pytest.raises(ConfigError, match="teacher.pretrained=timm:resnet18 is a timm model; set teacher.arch=timm"):
        config(root, "teacher.pretrained=timm:resnet18")
    with pytest.raises(ConfigError, match="teacher.arch=timm needs teacher.pretrained"):
        config(root, "teacher.arch=timm", "teacher.pretrained=null")
    with pytest.raises(ConfigError, match="student.arch=timm: a timm model is a teacher only"):
        config(root, "student.arch=timm")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="empty is not a timm folder .*save_for_hf"):
        check_pretrained(config(root, "teacher.arch=timm", f"teacher.pretrained={tmp_path / 'empty'}"))
    # offline: weights not in HF_HOME are named, with where they go, before any work
    with pytest.raises(ConfigError, match=r"timm:resnet18.a1_in1k: its weights are not in the Hugging Face cache "):
        check_pretrained(config(root, "teacher.arch=timm", "teacher.pretrained=timm:resnet18.a1_in1k"))


def test_vit_b_16_takes_torchvision_weights_with_their_preprocessing(tmp_path):
    """Only the name and the weights' metadata: fine-tuning ViT-B/16 at 224 px is too slow for a CPU test."""
    from kdcore.models.pretrained import named_weights, preprocessing_of

    cfg = config(image_folder(tmp_path / "images", per_class=2, size=8), "teacher.arch=vit_b_16")
    assert cfg.teacher.pretrained == "IMAGENET1K_V1"
    pre = preprocessing_of(named_weights("vit_b_16", "IMAGENET1K_V1"))
    assert (pre.resize, pre.crop) == (256, 224) and pre.mean == (0.485, 0.456, 0.406)
