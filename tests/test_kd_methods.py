"""Each KD method's loss against its paper's formula, written out here independently in float64 numpy."""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from kdcore.data import InputView, Split
from kdcore.distill import (
    AT,
    CRD,
    DIST,
    DISTILLERS,
    DKD,
    PKT,
    RKD,
    SP,
    Batch,
    Features,
    FitNets,
    LayerChoice,
    build_distiller,
)
from kdcore.distill.hooks import FeatureTap
from kdcore.distill.layers import default_embedding, default_stages, stages_of
from kdcore.models import build_model, count_parameters
from kdcore.soft_targets import SoftTargets
from kdcore.train import TrainSettings, fit

G = torch.Generator().manual_seed(0)


def rand(*shape, scale=1.0):
    return torch.randn(*shape, generator=G) * scale


def softmax(v, t=1.0):
    e = np.exp((v - v.max()) / t)
    return e / e.sum()


def ce(s, y):
    return float(np.mean([-math.log(softmax(row)[label]) for row, label in zip(s, y)]))


def batch_of(y, teacher_logits=None, epoch=1, epochs=1):
    return Batch(
        x=torch.zeros(len(y), 1),
        y=y,
        index=torch.arange(len(y)),
        teacher_logits=teacher_logits,
        epoch=epoch,
        epochs=epochs,
    )


def total(terms):
    return float(sum(terms.values()))


# ---------------------------------------------------------------- DKD


def reference_dkd(s, t, y, alpha, beta, T):
    """Zhao et al. eq. (2)-(4): TCKD = KL(b_t || b_s) on [p_target, 1 - p_target]; NCKD = KL(p^_t || p^_s)
    on the non-target classes renormalised (p^_j = p_j / (1 - p_target)); both times T^2, batch mean."""
    tckd = nckd = 0.0
    for srow, trow, label in zip(s, t, y):
        ps, pt = softmax(srow, T), softmax(trow, T)
        bs, bt = np.array([ps[label], 1 - ps[label]]), np.array([pt[label], 1 - pt[label]])
        tckd += float(np.sum(bt * np.log(bt / bs)))
        others = [j for j in range(len(srow)) if j != label]
        qs, qt = ps[others] / (1 - ps[label]), pt[others] / (1 - pt[label])
        nckd += float(np.sum(qt * np.log(qt / qs)))
    n = len(y)
    return ce(s, y) + alpha * T * T * tckd / n + beta * T * T * nckd / n, tckd / n, nckd / n


def test_dkd_matches_the_decoupled_formula():
    s, t, y = rand(6, 5, scale=2), rand(6, 5, scale=2), torch.tensor([0, 4, 2, 2, 1, 3])
    for alpha, beta, T in [(1.0, 8.0, 4.0), (0.5, 2.0, 1.0), (2.0, 0.0, 2.5)]:
        terms = DKD(alpha, beta, T, warmup=0).loss_terms(s, batch_of(y, t))
        assert set(terms) == {"ce", "tckd", "nckd"}
        expected, _, _ = reference_dkd(s.double().numpy(), t.double().numpy(), y.numpy(), alpha, beta, T)
        assert math.isclose(total(terms), expected, rel_tol=1e-5)


def test_dkd_terms_recombine_into_classical_kd():
    """The paper's identity: KD = TCKD + (1 - p_t^target) * NCKD, per sample (here at T = 1, one sample)."""
    s, t, y = rand(1, 6, scale=2), rand(1, 6, scale=2), torch.tensor([3])
    _, tckd, nckd = reference_dkd(s.double().numpy(), t.double().numpy(), y.numpy(), 1, 1, 1.0)
    ps, pt = softmax(s[0].double().numpy()), softmax(t[0].double().numpy())
    kd = float(np.sum(pt * np.log(pt / ps)))
    assert math.isclose(kd, tckd + (1 - pt[3]) * nckd, rel_tol=1e-9)
    terms = DKD(1.0, 1 - float(pt[3]), 1.0, warmup=0).loss_terms(s, batch_of(y, t))
    assert math.isclose(float(terms["tckd"] + terms["nckd"]), kd, rel_tol=1e-5)


def test_dkd_warms_up_linearly_over_its_share_of_epochs():
    s, t, y = rand(4, 5), rand(4, 5), torch.tensor([0, 1, 2, 3])
    full = DKD(warmup=0).loss_terms(s, batch_of(y, t))
    early = DKD(warmup=0.5).loss_terms(s, batch_of(y, t, epoch=1, epochs=10))  # 1 of 5 warm-up epochs
    late = DKD(warmup=0.5).loss_terms(s, batch_of(y, t, epoch=7, epochs=10))
    assert torch.isclose(early["nckd"], full["nckd"] / 5) and torch.isclose(late["nckd"], full["nckd"])


# ---------------------------------------------------------------- DIST


def reference_dist(s, t, y, beta, gamma, T):
    """Huang et al.: T^2 (1 - mean Pearson) between softened predictions, over rows (inter) and columns (intra)."""
    ys = np.array([softmax(r, T) for r in s])
    yt = np.array([softmax(r, T) for r in t])
    inter = 1 - np.mean([np.corrcoef(ys[i], yt[i])[0, 1] for i in range(len(ys))])
    intra = 1 - np.mean([np.corrcoef(ys[:, c], yt[:, c])[0, 1] for c in range(ys.shape[1])])
    return ce(s, y) + T * T * (beta * inter + gamma * intra)


def test_dist_matches_pearson_formula():
    s, t, y = rand(8, 5, scale=2), rand(8, 5, scale=2), torch.randint(0, 5, (8,), generator=G)
    for beta, gamma, T in [(2.0, 2.0, 4.0), (1.0, 0.5, 1.0)]:
        terms = DIST(beta, gamma, T).loss_terms(s, batch_of(y, t))
        assert set(terms) == {"ce", "inter", "intra"}
        assert math.isclose(
            total(terms),
            reference_dist(s.double().numpy(), t.double().numpy(), y.numpy(), beta, gamma, T),
            rel_tol=1e-5,
        )


@pytest.mark.parametrize("method", [DKD(warmup=0), DIST()])
def test_logit_methods_vanish_when_student_equals_teacher(method):
    logits, y = rand(8, 10, scale=3), torch.randint(0, 10, (8,), generator=G)
    terms = method.loss_terms(logits, batch_of(y, logits.clone()))
    other = method.loss_terms(logits, batch_of(y, rand(8, 10, scale=3)))
    for name, value in terms.items():
        if name != "ce":  # DIST's Pearson carries an eps of 1e-8 in its denominator: near zero, not exactly
            assert abs(float(value)) < 1e-3 and float(other[name]) > 0.1


# ---------------------------------------------------------------- feature methods on hand-made features


def bn_train(x):
    """Batch norm in training mode, gamma = 1, beta = 0, eps = 1e-5, per channel (axis 1)."""
    axes = (0, 2, 3)
    return (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + 1e-5)


def block_mean(x, size):
    b, c, h, w = x.shape
    return x.reshape(b, c, size, h // size, size, w // size).mean((3, 5))


def test_fitnets_regresses_the_hint_through_a_1x1_conv_connector():
    """Romero et al.: || r(guided) - hint ||^2 (mean), r a learnable regressor; here 1x1 conv + BN, and the
    larger map (student 8x8) average-pooled to the teacher's 4x4."""
    s, t, y = rand(4, 3, 8, 8), rand(4, 5, 4, 4), torch.tensor([0, 1, 0, 1])
    d = FitNets(weight=100.0)
    d.build(Features([s], s.mean((2, 3))), Features([t], t.mean((2, 3))), None)
    conv = d.regressor[0].weight.detach().double().numpy()[:, :, 0, 0]  # (5, 3)
    terms = d.feature_terms(Features([s], None), Features([t], None), batch_of(y))
    pooled = block_mean(s.double().numpy(), 4)
    regressed = bn_train(np.einsum("oc,bchw->bohw", conv, pooled))
    expected = 100.0 * np.mean((regressed - t.double().numpy()) ** 2)
    assert set(terms) == {"hint"} and math.isclose(float(terms["hint"]), expected, rel_tol=1e-4)


def test_fitnets_needs_no_connector_when_shapes_match_and_is_zero_on_equal_features():
    f = rand(4, 6, 4, 4)
    d = FitNets()
    d.build(Features([f], None), Features([f], None), None)
    assert isinstance(d.regressor, nn.Identity) and count_parameters(d) == 0
    assert float(d.feature_terms(Features([f], None), Features([f.clone()], None), None)["hint"]) == 0


def reference_at(pairs, p, weight):
    """Zagoruyko & Komodakis: Q = vec(sum_c |A_c|^p) / ||.||_2 (channel mean: same after normalising);
    mean squared difference per stage pair, summed; larger maps block-averaged to the smaller size."""
    out = 0.0
    for s, t in pairs:
        s, t = s.double().numpy(), t.double().numpy()
        size = min(s.shape[2], t.shape[2])
        s, t = block_mean(s, size), block_mean(t, size)
        qs = (np.abs(s) ** p).sum(1).reshape(len(s), -1)
        qt = (np.abs(t) ** p).sum(1).reshape(len(t), -1)
        qs, qt = qs / np.linalg.norm(qs, axis=1, keepdims=True), qt / np.linalg.norm(qt, axis=1, keepdims=True)
        out += np.mean((qs - qt) ** 2)
    return weight * out


def test_at_pairs_stages_from_the_deep_end_and_matches_formula():
    student = [rand(3, 4, 8, 8), rand(3, 8, 4, 4)]
    teacher = [rand(3, 2, 16, 16), rand(3, 6, 8, 8), rand(3, 12, 2, 2)]
    d = AT(weight=1000.0, p=2.0)
    d.build(Features(student, None), Features(teacher, None), None)
    got = float(d.feature_terms(Features(student, None), Features(teacher, None), None)["at"])
    expected = reference_at([(student[0], teacher[1]), (student[1], teacher[2])], 2.0, 1000.0)
    assert math.isclose(got, expected, rel_tol=1e-5)
    assert got > 0 and float(d.feature_terms(Features(teacher, None), Features(teacher, None), None)["at"]) < 1e-10


def test_at_refuses_flat_features_with_a_clear_message():
    with pytest.raises(ValueError, match="AT needs convolutional feature maps.*student stage gives shape \\(32,\\)"):
        AT().build(Features([rand(4, 32)], None), Features([rand(4, 8, 2, 2)], None), None)


def test_sp_matches_gram_formula_and_ignores_shapes():
    """Tung & Mori eq. (3)-(4): G = A A^T, rows L2-normalised; ||G_t - G_s||_F^2 / b^2."""
    s, t = rand(5, 3, 4, 4), rand(5, 7, 2, 2)
    a, b = s.double().numpy().reshape(5, -1), t.double().numpy().reshape(5, -1)
    gs, gt = a @ a.T, b @ b.T
    gs, gt = gs / np.linalg.norm(gs, axis=1, keepdims=True), gt / np.linalg.norm(gt, axis=1, keepdims=True)
    expected = 3000.0 * np.sum((gt - gs) ** 2) / 25
    got = SP(weight=3000.0).feature_terms(Features([s], None), Features([t], None), None)["sp"]
    assert math.isclose(float(got), expected, rel_tol=1e-5)
    assert float(SP().feature_terms(Features([t], None), Features([t.clone()], None), None)["sp"]) < 1e-9


def huber(x):
    return np.where(np.abs(x) < 1, 0.5 * x * x, np.abs(x) - 0.5)


def reference_rkd(s, t, wd, wa):
    """Park et al. eq. (4)-(7): distances scaled by their mean over pairs i != j; cosine of the angle at
    vertex i between e_j and e_k; Huber loss (delta 1) averaged over all b^2 pairs and b^3 triplets."""
    n = len(s)

    def dist(e):
        d = np.array([[np.linalg.norm(e[i] - e[j]) for j in range(n)] for i in range(n)])
        return d / (d.sum() / (n * n - n))

    def unit(v):
        norm = np.linalg.norm(v)
        return v / norm if norm > 0 else v

    def ang(e):
        return np.array(
            [[[unit(e[j] - e[i]) @ unit(e[k] - e[i]) for k in range(n)] for j in range(n)] for i in range(n)]
        )

    return wd * huber(dist(s) - dist(t)).mean() + wa * huber(ang(s) - ang(t)).mean()


def test_rkd_matches_distance_and_angle_formula():
    s, t = rand(5, 4, scale=2), rand(5, 6, scale=2)
    terms = RKD(25.0, 50.0).feature_terms(Features([], s), Features([], t), None)
    assert set(terms) == {"rkd_distance", "rkd_angle"}
    assert math.isclose(total(terms), reference_rkd(s.double().numpy(), t.double().numpy(), 25.0, 50.0), rel_tol=1e-4)
    same = RKD().feature_terms(Features([], t), Features([], t.clone()), None)
    assert total(same) < 1e-6


def test_rkd_is_invariant_to_scaling_the_student():
    """Distances are normalised by their mean and angles are scale-free: a scaled copy costs nothing."""
    t = rand(6, 8)
    assert total(RKD().feature_terms(Features([], 3 * t), Features([], t), None)) < 1e-6


def test_pkt_matches_conditional_probability_kl():
    """Passalis & Tefas: K = (cos + 1) / 2, P(j|i) = K_ij / sum_j K_ij; mean over b^2 of P_t log(P_t / P_s)."""
    s, t = rand(6, 4), rand(6, 9)

    def probs(e):
        e = e / np.linalg.norm(e, axis=1, keepdims=True)
        k = (e @ e.T + 1) / 2
        return k / k.sum(1, keepdims=True)

    ps, pt = probs(s.double().numpy()), probs(t.double().numpy())
    expected = 30000.0 * np.mean(pt * np.log(pt / ps))
    got = PKT(weight=30000.0).feature_terms(Features([], s), Features([], t), None)["pkt"]
    assert math.isclose(float(got), expected, rel_tol=1e-3)
    assert float(PKT().feature_terms(Features([], t), Features([], t.clone()), None)["pkt"]) < 1e-3


def test_crd_nce_loss_and_memory_update_match_the_paper():
    """Tian et al. eq. (10)-(18): h = P / (P + K/N), P = exp(<memory, v>/tau) / Z, Z = N * mean on the first
    batch; loss = -(sum log h(pos) + sum log(1 - h(neg))) / B per side; memory <- normalise(m * old + (1 - m) * v)."""
    n, k, tau, weight = 10, 3, 0.5, 0.8
    train = Split(torch.zeros(n, 1), torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 2]))
    fs, ft = rand(4, 5), rand(4, 7)
    d = CRD(weight=weight, temperature=tau, nce_k=k, feat_dim=6, momentum=0.5)
    d.build(Features([], fs), Features([], ft), train)
    negatives = torch.stack([d.negatives(train.y[[0, 3, 6, 9]]) for _ in range(50)])
    assert all((train.y[negatives[:, i]] != train.y[[0, 3, 6, 9]][i]).all() for i in range(4))  # other classes only

    index, y = torch.tensor([0, 3, 6, 9]), train.y[[0, 3, 6, 9]]
    fixed = torch.tensor([[4, 5, 7], [0, 1, 8], [2, 3, 4], [1, 3, 5]])
    d.negatives = lambda labels: fixed  # the draw is random; the formula is what is checked here
    mem_s, mem_t = d.memory_student.double().numpy().copy(), d.memory_teacher.double().numpy().copy()
    ws, bs = (
        d.embed_student.linear.weight.detach().double().numpy(),
        d.embed_student.linear.bias.detach().double().numpy(),
    )
    wt, bt = (
        d.embed_teacher.linear.weight.detach().double().numpy(),
        d.embed_teacher.linear.bias.detach().double().numpy(),
    )
    got = float(d.feature_terms(Features([], fs), Features([], ft), Batch(x=fs, y=y, index=index))["crd"])

    def l2(v):
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    vs, vt = l2(fs.double().numpy() @ ws.T + bs), l2(ft.double().numpy() @ wt.T + bt)
    idx = np.concatenate([index.numpy()[:, None], fixed.numpy()], axis=1)

    def side(v, memory):
        p = np.exp(np.einsum("bkd,bd->bk", memory[idx], v) / tau)
        p = p / (p.mean() * n)
        noise = k / n
        return -(np.log(p[:, 0] / (p[:, 0] + noise)).sum() + np.log(noise / (p[:, 1:] + noise)).sum()) / len(v)

    expected = weight * (side(vs, mem_t) + side(vt, mem_s))
    assert math.isclose(got, expected, rel_tol=1e-4)
    updated = l2(0.5 * mem_s[index.numpy()] + 0.5 * vs)
    assert np.allclose(d.memory_student[index].double().numpy(), updated, atol=1e-6)
    untouched = [i for i in range(n) if i not in index.tolist()]
    assert np.allclose(d.memory_student[untouched].double().numpy(), mem_s[untouched])


# ---------------------------------------------------------------- hooks, layers, connectors, registry


def test_registry_holds_every_method_and_rejects_unknown_names():
    assert set(DISTILLERS) == {"kd", "dkd", "dist", "fitnets", "at", "sp", "rkd", "pkt", "crd"}
    assert isinstance(build_distiller("dkd", beta=2.0), DKD) and build_distiller("dkd", beta=2.0).beta == 2.0
    with pytest.raises(ValueError, match="unknown distillation method 'nope'; choose one of"):
        build_distiller("nope")


def test_config_method_enum_is_the_registry():
    from typing import get_args

    from pipelines.config.schema import MethodName

    assert set(get_args(MethodName)) == set(DISTILLERS)


def test_default_layers_follow_the_rule():
    cnn = build_model("cnn_medium", (1, 28, 28), 10)
    assert default_stages(cnn) == cnn.distill_stages and len(cnn.distill_stages) == 3
    assert default_embedding(cnn) == "classifier.4"
    mlp = build_model("mlp", (1, 8, 8), 10)
    assert default_stages(mlp) == ["2"] and default_embedding(mlp) == "3"

    class ResNetLike(nn.Module):  # a model added later, by names alone
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, 4, 3)
            self.layer1, self.layer2, self.layer3 = nn.Identity(), nn.Identity(), nn.Identity()
            self.fc = nn.Linear(4, 10)

    assert default_stages(ResNetLike()) == ["layer1", "layer2", "layer3"] and default_embedding(ResNetLike()) == "fc"

    class FlatStages(nn.Module):  # CIFAR ResNet style: blocks in one flat container, downsampling by stride
        def __init__(self):
            super().__init__()
            conv = lambda stride: nn.Conv2d(4, 4, 3, stride, 1)  # noqa: E731
            self.stages = nn.Sequential(conv(1), conv(1), conv(2), conv(1), conv(2))
            self.fc = nn.Linear(4, 10)

        def forward(self, x):
            return self.fc(self.stages(x).mean((2, 3)))

    flat = FlatStages()
    assert default_stages(flat) == []  # needs a probe to see where resolutions change
    assert default_stages(flat, torch.zeros(2, 4, 16, 16)) == ["stages.1", "stages.3", "stages.4"]
    assert flat.training
    with pytest.raises(ValueError, match="set distill.layers.student to module names"):
        stages_of(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), [], "student")


def test_tap_names_unknown_modules_and_removes_its_hooks():
    model = build_model("cnn_small", (1, 8, 8), 10)
    with pytest.raises(ValueError, match="the student has no module named 'features.99'; choose among: features,"):
        FeatureTap(model, ["features.99"], role="student")
    tap = FeatureTap(model, model.distill_stages, ["classifier.1"])
    model(torch.zeros(2, 1, 8, 8))
    assert [tuple(tap.outputs[n].shape) for n in model.distill_stages] == [(2, 16, 4, 4), (2, 32, 2, 2)]
    assert tuple(tap.inputs["classifier.1"].shape) == (2, 32)
    tap.remove()
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def digits_like(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = torch.randn(n, 1, 8, 8, generator=g) + y[:, None, None, None].float()
    return Split(x, y)


def test_connectors_train_with_the_student_but_are_not_part_of_it():
    """FitNets cnn_medium (64 channels at its last stage) -> cnn_small (32): a 1x1 conv bridges them."""
    torch.manual_seed(0)
    train, val = digits_like(), digits_like(32, seed=1)
    teacher = build_model("cnn_medium", (1, 8, 8), 4, width=16)
    student = build_model("cnn_small", (1, 8, 8), 4)
    fresh_keys, size = set(student.state_dict()), count_parameters(student)
    teacher_state = {k: v.clone() for k, v in teacher.state_dict().items()}
    d = FitNets(layers=LayerChoice())
    history = fit(
        student, train, val, TrainSettings(epochs=2, batch_size=32), d, soft_targets=SoftTargets(teacher=teacher)
    )
    assert {"train/ce", "train/hint", "train/loss"} <= set(history[-1])
    conv = d.regressor[0]
    assert conv.weight.shape == (64, 32, 1, 1) and conv.weight.grad is not None  # optimised with the student
    assert set(student.state_dict()) == fresh_keys and count_parameters(student) == size
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in [*student.modules(), *teacher.modules()])
    assert all(torch.equal(v, teacher_state[k]) for k, v in teacher.state_dict().items())  # the teacher never trains
    assert not teacher.training


def test_feature_methods_run_the_teacher_once_per_augmented_step():
    """Online under augmentation: one teacher pass per step gives the features (FitNets reads no soft targets)."""
    torch.manual_seed(0)
    teacher = build_model("cnn_medium", (1, 8, 8), 4, width=16)
    calls = []
    teacher.register_forward_pre_hook(lambda module, args: calls.append(len(args[0])))
    view = InputView(crop_padding=1, flip=True)
    fit(
        build_model("cnn_small", (1, 8, 8), 4),
        digits_like(),
        digits_like(32, seed=1),
        TrainSettings(epochs=2, batch_size=32),
        FitNets(layers=LayerChoice()),
        view=view,
        soft_targets=SoftTargets(teacher=teacher),
    )
    assert calls == [2] + [32] * 6, calls  # attach's 2-sample shape probe, then 96 / 32 steps x 2 epochs


def test_feature_method_without_teacher_fails_before_training():
    with pytest.raises(ValueError, match="SP reads the teacher's features: the teacher model is needed"):
        fit(build_model("mlp", (1, 8, 8), 4), digits_like(), digits_like(), TrainSettings(epochs=1), SP())
