"""Adding a KD method, a lifelong strategy, a model or a dataset is one new file: on a copy of the code with only that
file added, the pipeline config, the Prefect forms, the Optuna space, the CLI and the name choices all offer it, and it
trains (the method also in a stacked group of trials, `tune.vectorise`; the strategy as a retraining would use it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

NEW_METHOD = '''
"""A made-up logit method for the test: CE + weight * MSE between the softened probabilities."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from kdcore.distill.base import Batch, Distiller
from kdcore.distill.registry import register_distiller
from kdcore.options import option, tuned


@dataclass(frozen=True)
class ToyOptions:
    """Toy distillation (a test's own method)."""

    weight: float = tuned(2.0, 0.5, 8.0, "Weight of the probability MSE.", ge=0, le=100)
    temperature: float = option(3.0, "Softmax temperature.", gt=0, le=100)


@register_distiller("toy")
class Toy(Distiller):
    Options = ToyOptions
    member_params = ("weight",)  # tune.vectorise may stack trials that differ in it

    def __init__(self, weight: float = ToyOptions.weight, temperature: float = ToyOptions.temperature):
        super().__init__()
        self.weight, self.temperature = weight, temperature

    def loss_terms(self, student_logits, batch: Batch):
        t = self.temperature
        p_s, p_t = F.softmax(student_logits / t, 1), F.softmax(batch.teacher_logits / t, 1)
        return {"ce": F.cross_entropy(student_logits, batch.y), "toy": self.weight * F.mse_loss(p_s, p_t)}

    def member_terms(self, logits, batch: Batch, values):  # logits [K, B, C], values["weight"] [K]
        t = self.temperature
        p_s, p_t = F.softmax(logits / t, -1), F.softmax(batch.teacher_logits / t, -1)
        ce = F.cross_entropy(logits.transpose(1, 2), batch.y.expand(len(logits), -1), reduction="none").mean(1)
        return {"ce": ce, "toy": values["weight"] * (p_s - p_t).pow(2).mean((1, 2))}
'''

NEW_MODEL = '''
"""A made-up model for the test."""

import torch.nn as nn

from kdcore.models.registry import register_model


@register_model("toy_net", "one hidden layer, for a test")
def toy_net(input_shape, num_classes, width: int = 16):
    c, h, w = input_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, width), nn.ReLU(), nn.Linear(width, num_classes))
'''

NEW_DATASET = '''
"""A made-up dataset for the test: the digits, upside down."""

import numpy as np

from kdcore.data.assemble import bundle_from_pool
from kdcore.data.registry import register_dataset


@register_dataset("flipped_digits")
def load_flipped_digits(req):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images[:, ::-1].astype(np.uint8)[:, None]
    return bundle_from_pool("flipped_digits", x, d.target, [str(c) for c in range(10)], req, scale=1 / 16)
'''

NEW_STRATEGY = '''
"""A made-up lifelong strategy for the test: an L2 pull of the weights towards those the last task ended with."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from kdcore.lifelong.base import Strategy
from kdcore.lifelong.registry import register_strategy
from kdcore.options import option


@dataclass(frozen=True)
class AnchorOptions:
    """Anchor (a test's own strategy)."""

    pull: float = option(0.5, "Weight of the squared distance to the last task's weights.", ge=0, le=100)


@register_strategy("anchor")
class Anchor(Strategy):
    name = "anchor"
    Options = AnchorOptions
    anchor = None

    def loss_terms(self, model, logits, batch):
        if self.anchor is None:
            return {}
        pairs = zip(model.parameters(), self.anchor.parameters())
        return {"pull": self.options.pull * sum(((p - q) ** 2).sum() for p, q in pairs)}

    def after_task(self, model):
        super().after_task(model)
        self.anchor = copy.deepcopy(model).requires_grad_(False)
'''

CHECK = """
import optuna, torch
from typing import get_args
from pipelines.config.schema import DatasetName, MethodName, PipelineConfig, RetrainSection, load_config
from pipelines.lifelong.strategies import learn_task, strategy_options
from kdcore.lifelong import build_strategy
from kdcore.data.bundle import Split
from pipelines.config.methods import build_method
from pipelines.config.overrides import ConfigOverrides
from pipelines.tuning.study import search
from kdcore.datasets import load_dataset
from kdcore.models import build_model
from kdcore.soft_targets import SoftTargets
from kdcore.train import TrainSettings, fit

import kdcore, os
assert kdcore.__file__.startswith(os.getcwd()), kdcore.__file__  # the copy, not the checkout
assert "toy" in get_args(MethodName) and "flipped_digits" in get_args(DatasetName)
cfg = load_config("digits", ["distill.method=toy", "distill.toy.weight=4", "student.arch=toy_net",
                             "data.dataset=flipped_digits", "tune.n_trials=1"])
assert cfg.distill.toy.temperature == 3.0 and PipelineConfig().tune.space.toy.weight.high == 8.0
form = ConfigOverrides.model_json_schema()["$defs"]
assert "toy" in form["DistillConfigOverrides"]["properties"], "the Prefect form has no section for the method"
assert "toy_net" in str(form), "the Prefect form does not offer the model"
trial = optuna.create_study().ask()
method, params = search(trial, cfg)
assert method == "toy" and 0.5 <= params["toy.weight"] <= 8.0, params
distiller = build_method(cfg, "toy", params)
assert distiller.weight == params["toy.weight"] and distiller.temperature == 3.0
data = load_dataset("flipped_digits")
teacher_logits = torch.randn(len(data.train), 10)
model = build_model("toy_net", data.input_shape, 10)
history = fit(model, data.train, data.val, TrainSettings(epochs=1), distiller,
              soft_targets=SoftTargets(logits=teacher_logits), view=data.view)
assert "train/toy" in history[0] and history[0]["val/acc"] >= 0
# two trials of the method trained as one stacked group learn as two separate fits would
settings, weights = TrainSettings(epochs=2), (1.0, 6.0)
alone, members = [], []
for w in weights:
    torch.manual_seed(0)
    alone.append(build_model("toy_net", data.input_shape, 10))
    members.append(build_model("toy_net", data.input_shape, 10))
    members[-1].load_state_dict(alone[-1].state_dict())
targets = SoftTargets(logits=teacher_logits)
methods = [build_method(cfg, "toy", {"toy.weight": w}) for w in weights]
separate = [fit(m, data.train, data.val, settings, d, soft_targets=targets, view=data.view)
            for m, d in zip(alone, methods)]
methods = [build_method(cfg, "toy", {"toy.weight": w}) for w in weights]
group = fit(members, data.train, data.val, [settings] * 2, methods, soft_targets=targets, view=data.view)
for a, b, h_a, h_b in zip(alone, members, separate, group):
    assert abs(h_a[-1]["train/toy"] - h_b[-1]["train/toy"]) < 1e-5, (h_a[-1], h_b[-1])
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-5)
# the strategy: its section, the retrain form's fields, and two tasks learned through fit with its term
cfg = load_config("digits", ["retrain.strategy=anchor", "retrain.anchor.pull=2"])
assert cfg.retrain.anchor.pull == 2.0 and RetrainSection().anchor.pull == 0.5
assert "anchor" in str(ConfigOverrides.model_json_schema()["$defs"]["RetrainSectionOverrides"])
strategy = build_strategy("anchor", **strategy_options(cfg.retrain, temperature=2.0))
model = build_model("toy_net", data.input_shape, 10)
task = Split(data.view.normalise(data.train.x).float(), data.train.y)  # pixels as a retraining feeds them
first = learn_task(model, strategy, task, TrainSettings(epochs=1))
second = learn_task(model, strategy, task, TrainSettings(epochs=1))
assert "pull" not in first and second["pull"] >= 0, (first, second)
import contextlib, io
from flows.cli import main
help_text = io.StringIO()
with contextlib.redirect_stdout(help_text), contextlib.suppress(SystemExit):
    main(["retrain", "--help"])
assert "anchor" in help_text.getvalue(), help_text.getvalue()
print("OK")
"""


def test_a_method_a_strategy_a_model_and_a_dataset_are_each_one_new_file(tmp_path):
    for package in ("kdcore", "pipelines", "flows"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "kdcore/distill/toy.py").write_text(textwrap.dedent(NEW_METHOD))
    (tmp_path / "kdcore/models/toy_net.py").write_text(textwrap.dedent(NEW_MODEL))
    (tmp_path / "kdcore/data/flipped_digits.py").write_text(textwrap.dedent(NEW_DATASET))
    (tmp_path / "kdcore/lifelong/anchor.py").write_text(textwrap.dedent(NEW_STRATEGY))
    out = subprocess.run(
        [sys.executable, "-c", CHECK],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-3000:]
