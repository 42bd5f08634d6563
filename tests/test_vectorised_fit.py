"""Stacked members (`fit` given lists): each member learns exactly as its own sequential `fit` would."""

import copy
from dataclasses import replace

import pytest
import torch
import torch.nn as nn

from kdcore.data.bundle import Split
from kdcore.datasets import load_dataset
from kdcore.distill import DIST, DKD, KD, FitNets, LabelsOnly
from kdcore.distill.base import Batch
from kdcore.distill.members import MemberLosses
from kdcore.evaluate import predict_logits
from kdcore.models import build_model
from kdcore.soft_targets import SoftTargets
from kdcore.train import TrainSettings, fit

METHODS = {
    "labels": lambda i: LabelsOnly(),
    "kd": lambda i: KD(temperature=1.5 + i, alpha=0.2 + 0.3 * i),
    "dkd": lambda i: DKD(alpha=0.5 + i, beta=2.0 + 3 * i, temperature=1.0 + i),
    "dist": lambda i: DIST(beta=1.0 + i, gamma=0.5 + i, temperature=2.0 + i),
}


@pytest.fixture(scope="module")
def digits():
    bundle = load_dataset("digits")
    bundle = replace(bundle, train=Split(bundle.train.x[:400], bundle.train.y[:400]))  # a 2-core CI box: small
    teacher = torch.randn(len(bundle.train), bundle.num_classes, generator=torch.Generator().manual_seed(1)) * 3
    return bundle, SoftTargets(logits=teacher)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_member_terms_are_each_members_own_terms(method):
    """The broadcast formulas equal the method's own, member by member, in float64."""
    k, b, c = 3, 16, 10
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(k, b, c, generator=g, dtype=torch.float64) * 3
    batch = Batch(
        x=None,
        y=torch.randint(0, c, (b,), generator=g),
        index=None,
        teacher_logits=torch.randn(b, c, generator=g, dtype=torch.float64) * 3,
        epoch=1,
        epochs=40,  # DKD: still in its warm-up ramp
    )
    distillers = [METHODS[method](i) for i in range(k)]
    losses = MemberLosses(distillers)
    losses.values = {n: torch.tensor([getattr(d, n) for d in distillers], dtype=torch.float64) for n in losses.values}
    terms = losses(logits, batch)
    for i, distiller in enumerate(distillers):
        own = distiller.loss_terms(logits[i], batch)
        assert list(terms) == list(own)
        for name, value in own.items():
            torch.testing.assert_close(terms[name][i], value, rtol=1e-10, atol=1e-12)


def members(arch, n, bundle, **options):
    torch.manual_seed(0)
    return [build_model(arch, bundle.input_shape, bundle.num_classes, **options) for _ in range(n)]


def sequential(models, bundle, settings, distillers, targets):
    return [
        fit(m, bundle.train, bundle.val, s, d, soft_targets=targets, view=bundle.view)
        for m, s, d in zip(models, settings, distillers)
    ]


def assert_same_member(history, model, own_history, own_model, bundle):
    assert len(history) == len(own_history) and history.kept_epoch == own_history.kept_epoch
    for row, own in zip(history, own_history):
        assert row.keys() == own.keys()
        for key in row:
            assert row[key] == pytest.approx(own[key], rel=1e-4, abs=1e-5), key
    for name, tensor in own_model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name].float(), tensor.float(), rtol=1e-4, atol=1e-5)
    x = bundle.inputs("val").x
    torch.testing.assert_close(predict_logits(model, x), predict_logits(own_model, x), rtol=1e-4, atol=1e-4)


CASES = [
    ("mlp", {"width": 16}, "adam", "onecycle", "kd"),
    ("cnn_small", {"width": 4}, "sgd", "onecycle", "dkd"),  # BatchNorm: per-member running statistics
    ("mlp", {"width": 16, "depth": 2}, "sgd", "step", "dist"),
    ("cnn_small", {"width": 4}, "adam", "constant", "labels"),
]


@pytest.mark.parametrize(("arch", "options", "optimizer", "schedule", "method"), CASES)
def test_each_member_learns_as_its_own_sequential_fit(digits, arch, options, optimizer, schedule, method):
    bundle, targets = digits
    lrs, decays = [3e-3, 2e-2, 5e-4], [1e-4, 0.0, 1e-2]
    settings = [
        TrainSettings(epochs=3, lr=lr, weight_decay=wd, optimizer=optimizer, schedule=schedule)
        for lr, wd in zip(lrs, decays)
    ]
    models = members(arch, 3, bundle, **options)
    own_models = copy.deepcopy(models)
    histories = fit(
        models,
        bundle.train,
        bundle.val,
        settings,
        [METHODS[method](i) for i in range(3)],
        soft_targets=targets,
        view=bundle.view,
    )
    own = sequential(own_models, bundle, settings, [METHODS[method](i) for i in range(3)], targets)
    for i in range(3):
        assert histories[i].dropped_by is None
        assert_same_member(histories[i], models[i], own[i], own_models[i], bundle)


class Normed(nn.Module):
    """A layer the grouped path does not stack (LayerNorm): the group runs under vmap instead."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.LayerNorm(16), nn.ReLU(), nn.Linear(16, 10))

    def forward(self, x):
        return self.net(x)


def test_models_the_grouped_path_cannot_stack_train_under_vmap_alike(digits):
    bundle, targets = digits
    torch.manual_seed(0)
    models = [Normed() for _ in range(2)]
    own_models = copy.deepcopy(models)
    settings = [TrainSettings(epochs=3, lr=lr) for lr in (3e-3, 1e-2)]
    histories = fit(
        models, bundle.train, bundle.val, settings, [KD(2.0, 0.5), KD(4.0, 0.9)], soft_targets=targets, view=bundle.view
    )
    own = sequential(own_models, bundle, settings, [KD(2.0, 0.5), KD(4.0, 0.9)], targets)
    for i in range(2):
        assert_same_member(histories[i], models[i], own[i], own_models[i], bundle)


class Pruned(Exception):
    pass


def test_a_member_that_leaves_changes_nothing_for_the_others(digits):
    bundle, targets = digits
    lrs = [3e-3, 1e-2, 1e-3]
    settings = [TrainSettings(epochs=4, lr=lr, optimizer="sgd") for lr in lrs]

    def prune_at(epoch):
        def on_epoch(e, metrics):
            if e == epoch:
                raise Pruned(f"pruned at epoch {e}")

        return on_epoch

    models = members("cnn_small", 3, bundle, width=4)
    pair = [copy.deepcopy(models[0]), copy.deepcopy(models[2])]
    histories = fit(
        models,
        bundle.train,
        bundle.val,
        settings,
        [KD(2.0 + i, 0.5) for i in range(3)],
        soft_targets=targets,
        on_epoch=[None, prune_at(2), None],
        view=bundle.view,
    )
    assert isinstance(histories[1].dropped_by, Pruned) and len(histories[1]) == 2
    pair_histories = fit(
        pair,
        bundle.train,
        bundle.val,
        [settings[0], settings[2]],
        [KD(2.0, 0.5), KD(4.0, 0.5)],
        soft_targets=targets,
        view=bundle.view,
    )
    for i, j in ((0, 0), (2, 1)):
        assert histories[i].dropped_by is None
        assert_same_member(histories[i], models[i], pair_histories[j], pair[j], bundle)


def test_a_member_whose_loss_is_not_finite_fails_alone(digits):
    bundle, targets = digits
    settings = [TrainSettings(epochs=3, lr=lr, optimizer="sgd", schedule="constant") for lr in (1e-2, 1e30, 3e-3)]
    models = members("mlp", 3, bundle, width=16)
    own_models = copy.deepcopy(models)
    histories = fit(
        models, bundle.train, bundle.val, settings, [KD(4.0, 0.9)] * 3, soft_targets=targets, view=bundle.view
    )
    assert isinstance(histories[1].dropped_by, FloatingPointError) and len(histories[1]) == 1
    own = sequential(own_models, bundle, settings, [KD(4.0, 0.9)] * 3, targets)
    for i in (0, 2):
        assert_same_member(histories[i], models[i], own[i], own_models[i], bundle)


def test_members_refuse_what_they_cannot_share(digits):
    bundle, targets = digits
    models = members("mlp", 2, bundle, width=16)
    with pytest.raises(ValueError, match="differ only in lr and weight_decay"):
        fit(models, bundle.train, bundle.val, [TrainSettings(epochs=1), TrainSettings(epochs=2)], [LabelsOnly()] * 2)
    with pytest.raises(ValueError, match="one at a time"):
        fit(models, bundle.train, bundle.val, [TrainSettings(epochs=1)] * 2, [FitNets(), FitNets()])
