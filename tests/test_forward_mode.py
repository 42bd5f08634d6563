"""The speed settings of the training loop (bf16 autocast, channels-last, torch.compile), tested on the CPU.

Speed itself is measured by benchmark scripts, never asserted here; these tests pin what the
settings must not change: training still learns, losses stay float32, layouts give the same predictions.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from kdcore.data.bundle import Split
from kdcore.data.view import InputView
from kdcore.distill import LabelsOnly, build_distiller
from kdcore.evaluate import predict_logits
from kdcore.forward_mode import ForwardMode, forward_mode
from kdcore.models import build_model
from kdcore.soft_targets import SoftTargets
from kdcore.train import TrainSettings, fit

ROOT = Path(__file__).resolve().parents[1]
VIEW = InputView(mean=(0.5,), std=(0.25,), scale=1 / 255)


def blobs(n: int = 256, classes: int = 4, seed: int = 0) -> tuple[Split, Split]:
    """8x8 uint8 'images' whose class sets the brightness of one quadrant: learnable in a couple of epochs."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.randint(0, 60, (n, 1, 8, 8), generator=g)
    for c in range(classes):
        r, k = divmod(c, 2)
        x[y == c, :, 4 * r : 4 * r + 4, 4 * k : 4 * k + 4] += 180
    x = x.to(torch.uint8)
    cut = n * 3 // 4
    return Split(x[:cut], y[:cut]), Split(x[cut:], y[cut:])


class RecordingLabelsOnly(LabelsOnly):
    """Records the dtypes the loss terms receive."""

    def __init__(self):
        super().__init__()
        self.dtypes: set[torch.dtype] = set()

    def loss_terms(self, student_logits, batch):
        self.dtypes.add(student_logits.dtype)
        return super().loss_terms(student_logits, batch)


def test_cpu_defaults_are_plain_float32():
    """ "auto" resolves to float32 and contiguous tensors on the CPU: existing figures stay valid bit for bit."""
    s = TrainSettings(epochs=1)
    assert (s.precision, s.channels_last, s.compile) == ("auto", "auto", False)
    assert forward_mode(s.precision, s.channels_last, torch.device("cpu"), 4) == ForwardMode()
    assert forward_mode("auto", "auto", torch.device("cuda"), 2).channels_last is False  # token ids have no layout


def test_bf16_autocast_trains_with_float32_losses():
    train, val = blobs()
    torch.manual_seed(0)
    model = build_model("cnn_small", (1, 8, 8), 4)
    distiller = RecordingLabelsOnly()
    history = fit(
        model, train, val, TrainSettings(epochs=3, batch_size=32, lr=3e-3, precision="bf16"), distiller, view=VIEW
    )
    assert distiller.dtypes == {torch.float32}  # the forward ran in bf16, the loss did not
    assert all(math.isfinite(v) for epoch in history for v in epoch.values())
    assert history[-1]["train/loss"] < history[0]["train/loss"]
    assert history[-1]["val/acc"] > 0.5  # chance is 0.25


def test_bf16_kd_with_cached_teacher_logits_and_a_feature_method():
    """Soft targets and tapped features reach the loss terms as float32 (connectors are float32 modules)."""
    train, val = blobs()
    torch.manual_seed(0)
    teacher = build_model("cnn_small", (1, 8, 8), 4)
    fit(teacher, train, val, TrainSettings(epochs=2, batch_size=32, lr=3e-3), LabelsOnly(), view=VIEW)
    logits = predict_logits(teacher, train.x, transform=VIEW.normalise, mode=ForwardMode(torch.bfloat16))
    assert logits.dtype == torch.float32
    bf16 = TrainSettings(epochs=2, batch_size=32, lr=3e-3, precision="bf16")
    for method, targets in (("kd", SoftTargets(logits=logits)), ("fitnets", SoftTargets(teacher=teacher))):
        torch.manual_seed(1)
        student = build_model("cnn_small", (1, 8, 8), 4, width=8)
        history = fit(student, train, val, bf16, build_distiller(method), view=VIEW, soft_targets=targets)
        assert all(math.isfinite(v) for epoch in history for v in epoch.values()), method


def test_channels_last_gives_the_same_predictions():
    train, val = blobs()
    torch.manual_seed(0)
    model = build_model("cnn_small", (1, 8, 8), 4)
    fit(model, train, val, TrainSettings(epochs=1, batch_size=32), LabelsOnly(), view=VIEW)
    plain = predict_logits(model, val.x, transform=VIEW.normalise)
    nhwc = ForwardMode(channels_last=True)
    nhwc.prepare(model)
    conv = model.features[4].weight  # the second conv: 16 input channels, so the layouts differ
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert torch.allclose(predict_logits(model, val.x, transform=VIEW.normalise, mode=nhwc), plain, atol=1e-5)

    histories = []
    for channels_last in (False, True):
        torch.manual_seed(0)
        model = build_model("cnn_small", (1, 8, 8), 4)
        histories.append(
            fit(
                model,
                train,
                val,
                TrainSettings(epochs=2, batch_size=32, channels_last=channels_last),
                LabelsOnly(),
                view=VIEW,
            )
        )
    for a, b in zip(*histories):
        assert a.keys() == b.keys()
        assert all(abs(a[k] - b[k]) < 1e-3 for k in a), (a, b)


def test_unknown_speed_settings_are_refused():
    train, val = blobs(64)
    model = build_model("mlp", (1, 8, 8), 4)
    with pytest.raises(ValueError, match="precision"):
        fit(model, train, val, TrainSettings(epochs=1, precision="fp16"), LabelsOnly(), view=VIEW)
    with pytest.raises(ValueError, match="channels_last"):
        fit(model, train, val, TrainSettings(epochs=1, channels_last="yes"), LabelsOnly(), view=VIEW)


@pytest.mark.skipif(
    not (shutil.which("gcc") or shutil.which("cc")),
    reason="torch.compile on the CPU generates C++ and needs a C compiler (gcc) on PATH",
)
def test_compile_trains_a_tiny_mlp_for_one_epoch():
    train, val = blobs(128)
    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 4, width=16, depth=1)
    history = fit(model, train, val, TrainSettings(epochs=1, batch_size=32, compile=True), LabelsOnly(), view=VIEW)
    assert math.isfinite(history[0]["train/loss"]) and 0 <= history[0]["val/acc"] <= 1
    assert not any(k.startswith("_orig_mod") for k in model.state_dict())  # the caller's model saves as before


@pytest.mark.skipif(
    not (shutil.which("gcc") or shutil.which("cc")),
    reason="torch.compile on the CPU generates C++ and needs a C compiler (gcc) on PATH",
)
def test_compile_keeps_the_feature_hooks_of_feature_methods():
    """FitNets reads the student's stages through forward hooks; compiled, it must see them and learn as eager does."""
    train, val = blobs(128)

    def run(compile: bool) -> list[dict[str, float]]:
        torch.manual_seed(0)
        teacher, student = (
            build_model("cnn_small", (1, 8, 8), 4, width=8),
            build_model("cnn_small", (1, 8, 8), 4, width=4),
        )
        return fit(
            student,
            train,
            val,
            TrainSettings(epochs=2, batch_size=32, compile=compile),
            build_distiller("fitnets"),
            view=VIEW,
            soft_targets=SoftTargets(teacher=teacher),
        )

    eager, compiled = run(False), run(True)
    assert compiled[-1]["train/hint"] > 0
    for e, c in zip(eager, compiled):
        assert e.keys() == c.keys() and all(math.isclose(e[k], c[k], rel_tol=1e-4, abs_tol=1e-5) for k in e), (e, c)


def test_training_path_imports_only_torch_and_numpy():
    """A benchmark can fit in-memory data with kdcore alone: no MLflow, Prefect, Optuna, pydantic or scikit-learn."""
    code = (
        "import sys; import torch, numpy; before = set(sys.modules)\n"
        "import kdcore.train, kdcore.forward_mode, kdcore.evaluate, kdcore.models, kdcore.distill, kdcore.data.bundle\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(m for m in new if not m.startswith('_') and m != 'kdcore'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]", out


# --- GPU worker only (skipped here): `python -m pytest tests/test_forward_mode.py -q` needs torch and kdcore alone ---

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
METHODS = ["labels", "kd", "dkd", "dist", "fitnets", "at", "sp", "rkd", "pkt", "crd", "kd_augmented"]
AUGMENTED = InputView(mean=(0.5,), std=(0.25,), scale=1 / 255, crop_padding=1, flip=True)


def fit_on_cuda(method: str, train: Split, val: Split, teacher, logits, **settings):
    """`kd_augmented`: KD with the teacher scoring each augmented batch online."""
    torch.manual_seed(1)
    student = build_model("cnn_small", (1, 8, 8), 4, width=8)
    name = method.removesuffix("_augmented")
    distiller = LabelsOnly() if name == "labels" else build_distiller(name, **({"nce_k": 64} if name == "crd" else {}))
    if name == "labels":
        source = SoftTargets()
    elif distiller.needs_features or method.endswith("_augmented"):
        source = SoftTargets(teacher=teacher)
    else:
        source = SoftTargets(logits=logits)
    view = AUGMENTED if method.endswith("_augmented") else VIEW
    return fit(
        student,
        train,
        val,
        TrainSettings(device="cuda", **{"epochs": 2, "batch_size": 32, "lr": 3e-3, **settings}),
        distiller,
        view=view,
        soft_targets=source,
    )


@pytest.fixture(scope="module")
def cuda_teacher():
    train, val = blobs(512)
    torch.manual_seed(0)
    teacher = build_model("cnn_small", (1, 8, 8), 4)
    fit(teacher, train, val, TrainSettings(epochs=2, batch_size=32, lr=3e-3, device="cuda"), LabelsOnly(), view=VIEW)
    return train, val, teacher, predict_logits(teacher, train.x, transform=VIEW.normalise)


@cuda
def test_auto_on_cuda_is_bf16_and_channels_last_for_images():
    mode = forward_mode("auto", "auto", torch.device("cuda"), 4)
    assert mode.channels_last
    assert mode.autocast == (torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else None)


@cuda
@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_on_cuda_in_bf16_channels_last(cuda_teacher, method):
    train, val, teacher, logits = cuda_teacher
    history = fit_on_cuda(method, train, val, teacher, logits, precision="bf16", channels_last=True)
    assert all(math.isfinite(v) for epoch in history for v in epoch.values()), history
    assert history[-1]["train/ce"] < history[0]["train/ce"], history


def sync_warnings(run) -> int:
    """How many times `run` made the host wait for the GPU (torch's sync debug mode)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


@cuda
@pytest.mark.parametrize("method", METHODS)
def test_training_steps_never_wait_for_the_gpu(cuda_teacher, method):
    """Syncs once per epoch (metrics, validation) are fine; one per step would stall the GPU.

    4x the steps must not add a sync per added step. (Not `==`: on an H200 a one-off lazy initialisation
    once added a single sync to the first measured run, 27 vs 26.)
    """
    train, val, teacher, logits = cuda_teacher
    fit_on_cuda(method, train, val, teacher, logits, batch_size=96)  # warm-up: one-time CUDA / cuDNN set-up
    counts = [
        sync_warnings(lambda bs=bs: fit_on_cuda(method, train, val, teacher, logits, batch_size=bs)) for bs in (96, 24)
    ]
    added_steps = 2 * (-(-len(train) // 24) - -(-len(train) // 96))  # 2 epochs
    assert counts[1] - counts[0] < added_steps, (counts, added_steps)


@cuda
@pytest.mark.skipif(
    not (shutil.which("gcc") or shutil.which("cc")), reason="torch.compile needs a C compiler (gcc) on PATH"
)
def test_bf16_channels_last_and_compile_together_on_cuda(cuda_teacher):
    train, val, teacher, logits = cuda_teacher
    history = fit_on_cuda("kd", train, val, teacher, logits, precision="bf16", channels_last=True, compile=True)
    assert all(math.isfinite(v) for epoch in history for v in epoch.values()) and history[-1]["val/acc"] > 0.4
