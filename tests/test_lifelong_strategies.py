"""Lifelong strategies as plug-ins of `fit`: each loss term against its formula in float64, `fit` with a strategy
against a plain hand-written loop (same seeds, same batch order), typed options, and a KD method beside a strategy."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from kdcore.data.bundle import Split
from kdcore.distill.base import LabelsOnly
from kdcore.distill.kd import KD
from kdcore.lifelong import build_strategy, grow_head
from kdcore.lifelong.derpp import DERppOptions, derpp_terms
from kdcore.lifelong.lwf import LwFOptions, lwf_term
from kdcore.soft_targets import SoftTargets
from kdcore.train import TrainSettings, fit


def test_lwf_term_by_hand_float64():
    g = torch.Generator().manual_seed(0)
    logits, old = torch.randn(4, 5, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g).double()
    o = LwFOptions(kd_weight=0.7, temperature=3.0)
    expected = 0.0
    for i in range(4):  # T^2 * KL(softmax(old/T) || softmax(logits[:, :3]/T)), mean over rows, times kd_weight
        p = [math.exp(v / 3) for v in old[i].tolist()]
        q = [math.exp(v / 3) for v in logits[i, :3].tolist()]
        p, q = [v / sum(p) for v in p], [v / sum(q) for v in q]
        expected += sum(a * math.log(a / b) for a, b in zip(p, q)) / 4
    assert lwf_term(logits, old, o).item() == pytest.approx(0.7 * 9 * expected, rel=1e-12)


def test_derpp_terms_by_hand_float64():
    g = torch.Generator().manual_seed(1)
    now = torch.randn(3, 4, generator=g, dtype=torch.float64)
    stored = torch.randn(3, 4, generator=g, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)  # rows stored at width 2 or 4
    label_logits, labels = torch.randn(2, 4, generator=g, dtype=torch.float64), torch.tensor([3, 0])
    o = DERppOptions(logit_weight=0.3, label_weight=0.6)
    cells = [(i, j) for i in range(3) for j in range(4) if mask[i, j]]
    mse = sum((now[i, j].item() - stored[i, j].item()) ** 2 for i, j in cells) / len(cells)
    ce = (
        sum(
            -label_logits[k, labels[k]].item() + math.log(sum(math.exp(v) for v in label_logits[k].tolist()))
            for k in range(2)
        )
        / 2
    )
    terms = derpp_terms(now, stored, mask, label_logits, labels, o)
    assert terms["replay_mse"].item() == pytest.approx(0.3 * mse, rel=1e-12)
    assert terms["replay_ce"].item() == pytest.approx(0.6 * ce, rel=1e-12)


@pytest.mark.parametrize("name, option", [("derpp", "alpha"), ("lwf", "beta"), ("finetune", "buffer_size")])
def test_an_unknown_option_is_an_error_naming_the_valid_ones(name, option):
    with pytest.raises(ValueError, match=f"strategy '{name}' has no option '{option}'; its options are") as err:
        build_strategy(name, **{option: 1.0})
    assert name != "derpp" or "logit_weight, label_weight" in str(err.value)


def test_replay_skips_the_column_mask_only_while_every_stored_row_is_as_wide_as_the_head():
    g = torch.Generator().manual_seed(2)
    now, stored = (
        torch.randn(5, 4, generator=g, dtype=torch.float64),
        torch.randn(5, 4, generator=g, dtype=torch.float64),
    )
    labels, o = torch.tensor([0, 1, 2, 3, 0]), DERppOptions(logit_weight=0.3)
    unmasked = derpp_terms(now, stored, None, now, labels, o)["replay_mse"].item()
    masked = derpp_terms(now, stored, torch.ones(5, 4, dtype=torch.bool), now, labels, o)["replay_mse"].item()
    assert unmasked == pytest.approx(masked, rel=1e-12)
    # which path each task takes: the width every earlier row shares (0: none yet), None when they differ
    torch.manual_seed(0)
    model, strategy = nn.Sequential(nn.Linear(10, 2)), build_strategy("derpp", buffer_size=40)
    settings, task = TrainSettings(epochs=1, batch_size=10, lr=0.05, optimizer="sgd"), tiny_stream()[0]
    seen = []
    for head in (2, 2, 4, 4):
        grow_head(model, head)
        fit(model, task, None, settings, LabelsOnly(), strategy=strategy)
        seen.append(strategy.earlier_rows_width)
    assert seen == [0, 2, 2, None]  # task 3's rows at width 2 against logits of 4: masked; then mixed widths


def tiny_stream():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(6, 10, generator=g) * 1.5
    out = []
    for t in range(3):
        x = torch.cat([centres[c] + torch.randn(37, 10, generator=g) for c in (2 * t, 2 * t + 1)])
        out.append(Split(x, torch.cat([torch.full((37,), c) for c in (2 * t, 2 * t + 1)])))
    return out


def reference(name: str, options: dict, epochs=2, batch=10, lr=0.05, seed=5, strategy_seed=3):
    """The lifelong loop as plain PyTorch, written out: a fresh SGD per task, the batch order from seed + task,
    DER++'s reservoir and its two replay draws from one generator, in the order the paper's code takes them."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))
    buf_x, buf_y, buf_l, seen, gen = [], [], [], 0, torch.Generator().manual_seed(strategy_seed)
    every, previous = [], None
    for t, task in enumerate(tiny_stream()):
        grow_head(model, 2 * (t + 1))
        every.append(task)
        data = Split(torch.cat([s.x for s in every]), torch.cat([s.y for s in every])) if name == "joint" else task
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        order_gen = torch.Generator().manual_seed(seed + t)
        for _ in range(epochs):
            order = torch.randperm(len(data), generator=order_gen)
            for start in range(0, len(data), batch):
                i = order[start : start + batch]
                x, y = data.x[i], data.y[i]
                logits = model(x)
                loss = F.cross_entropy(logits, y)
                if name == "lwf" and previous is not None:
                    with torch.no_grad():
                        old = previous(x)
                    p_old = F.softmax(old / 2.0, 1)
                    kl = (p_old * (p_old.log() - F.log_softmax(logits[:, : old.shape[1]] / 2.0, 1))).sum(1).mean()
                    loss = loss + options["kd_weight"] * 4.0 * kl
                if name == "derpp" and buf_y:
                    r = options["replay_batch_size"]
                    a = torch.randperm(len(buf_y), generator=gen)[:r].tolist()
                    width = max(len(buf_l[k]) for k in a)
                    stored = torch.stack([F.pad(buf_l[k], (0, width - len(buf_l[k]))) for k in a])
                    mask = torch.stack([torch.arange(width) < len(buf_l[k]) for k in a])
                    out = model(torch.stack([buf_x[k] for k in a]))[:, :width]
                    loss = loss + options["logit_weight"] * ((out - stored) ** 2 * mask).sum() / mask.sum()
                    b = torch.randperm(len(buf_y), generator=gen)[:r].tolist()
                    out = model(torch.stack([buf_x[k] for k in b]))
                    loss = loss + options["label_weight"] * F.cross_entropy(out, torch.stack([buf_y[k] for k in b]))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                if name == "derpp":
                    for k in range(len(y)):
                        if len(buf_y) < options["buffer_size"]:
                            buf_x.append(x[k]), buf_y.append(y[k]), buf_l.append(logits[k].detach())
                        else:
                            slot = int(torch.randint(0, seen + 1, (1,), generator=gen))
                            if slot < options["buffer_size"]:
                                buf_x[slot], buf_y[slot], buf_l[slot] = x[k], y[k], logits[k].detach()
                        seen += 1
        previous = copy_of(model)
    return model


def copy_of(model):
    import copy

    return copy.deepcopy(model).eval()


STRATEGY_OPTIONS = [
    ("finetune", {}),
    ("lwf", {"kd_weight": 0.7}),
    ("derpp", {"buffer_size": 20, "logit_weight": 0.3, "label_weight": 0.6, "replay_batch_size": 7}),
    ("joint", {}),
]


@pytest.mark.parametrize("name, options", STRATEGY_OPTIONS)
def test_fit_with_a_strategy_equals_the_plain_loop(name, options):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))
    strategy = build_strategy(name, seed=3, **options)
    for t, task in enumerate(tiny_stream()):
        grow_head(model, 2 * (t + 1))
        settings = TrainSettings(
            epochs=2, batch_size=10, lr=0.05, optimizer="sgd", momentum=0.0, schedule="constant", seed=5 + t
        )
        history = fit(model, task, None, settings, LabelsOnly(), strategy=strategy)
    expected = reference(name, options)
    for (key, got), want in zip(model.state_dict().items(), expected.state_dict().values()):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=f"{name}: {key} differs from the plain loop")
    names = {"lwf": ["train/lwf"], "derpp": ["train/replay_mse", "train/replay_ce"]}.get(name, [])
    assert set(history[-1]) == {"train/ce", "train/loss", *names}


def test_a_kd_method_and_a_strategy_combine():
    stream = tiny_stream()
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))
    student = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 2))
    settings = TrainSettings(epochs=3, batch_size=10, lr=0.05, optimizer="sgd", momentum=0.0, schedule="constant")
    t_strategy, s_strategy = build_strategy("derpp", buffer_size=30), build_strategy("derpp", buffer_size=30)
    for t, task in enumerate(stream[:2]):
        grow_head(teacher, 2 * (t + 1)), grow_head(student, 2 * (t + 1))
        fit(teacher, task, None, settings, LabelsOnly(), strategy=t_strategy)
        history = fit(
            student,
            task,
            None,
            settings,
            KD(temperature=2.0, alpha=0.5),
            soft_targets=SoftTargets(teacher=teacher.eval()),
            strategy=s_strategy,
        )
    assert set(history[-1]) == {"train/ce", "train/kd", "train/replay_mse", "train/replay_ce", "train/loss"}
    assert history[-1]["train/kd"] > 0 and history[-1]["train/replay_ce"] > 0
    assert len(s_strategy.buffer) == 30 and s_strategy.buffer.seen == sum(len(s) for s in stream[:2]) * 3


def test_asymmetric_ce_by_hand_float64():
    from kdcore.lifelong.derpp import asymmetric_ce

    logits = torch.tensor([[1.0, 2.0, 0.5, -1.0], [0.3, -0.2, 2.5, 0.0]], dtype=torch.float64)
    labels = torch.tensor([2, 1])  # classes 1 and 2 are present: classes 0 and 3 leave the softmax
    expected = (
        -(0.5) + math.log(math.exp(2.0) + math.exp(0.5)) - (-0.2) + math.log(math.exp(-0.2) + math.exp(2.5))
    ) / 2
    assert asymmetric_ce(logits, labels).item() == pytest.approx(expected, rel=1e-12)


def test_asymmetric_ce_replaces_the_loops_ce():
    strategy = build_strategy("derpp", buffer_size=20, asymmetric_ce=True)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 6))
    settings = TrainSettings(epochs=1, batch_size=10, lr=0.05, optimizer="sgd", momentum=0.0, schedule="constant")
    history = fit(model, tiny_stream()[0], None, settings, LabelsOnly(), strategy=strategy)
    assert set(history[-1]) == {"train/ce", "train/replay_mse", "train/replay_ce", "train/loss"}
    assert history[-1]["train/loss"] == pytest.approx(sum(v for k, v in history[-1].items() if k != "train/loss"))


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
@pytest.mark.parametrize("name, options", STRATEGY_OPTIONS)
def test_strategy_steps_never_wait_for_the_gpu(name, options):
    """The host waits for the GPU a few times per task (metrics, the replay plan), never once per step."""
    from tests.test_forward_mode import sync_warnings

    def run(repeat: int):
        model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 6))
        strategy = build_strategy(name, **options)
        for t, task in enumerate(tiny_stream()):
            settings = TrainSettings(
                epochs=repeat,
                batch_size=10,
                lr=0.05,
                optimizer="sgd",
                momentum=0.0,
                schedule="constant",
                device="cuda",
                seed=t,
            )
            fit(model, task, None, settings, LabelsOnly(), strategy=strategy)

    run(1)  # warm-up: one-time CUDA set-up
    few, many = sync_warnings(lambda: run(1)), sync_warnings(lambda: run(4))
    steps_added = 3 * 3 * 8  # 3 more epochs of 8 steps on each of 3 tasks
    assert many - few < steps_added / 4, (few, many)


def test_masked_future_logits_store_only_the_classes_seen():
    strategy = build_strategy("derpp", buffer_size=100, mask_future_logits=True)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 6))  # a head for all 6 classes from the start
    settings = TrainSettings(epochs=1, batch_size=10, lr=0.05, optimizer="sgd", momentum=0.0, schedule="constant")
    stream = tiny_stream()
    fit(model, stream[0], None, settings, LabelsOnly(), strategy=strategy)
    assert set(strategy.buffer.logit_width.tolist()) == {2}  # classes 2..5 not seen yet: their logits not kept
    fit(model, stream[1], None, settings, LabelsOnly(), strategy=strategy)
    assert set(strategy.buffer.logit_width.tolist()) == {2, 4}


def test_transplant_logits_by_hand_float64():
    from kdcore.lifelong.derpp import transplant_logits

    stored = torch.tensor([[2.0, 0.5, -1.0, -1.0], [0.1, 1.5, -2.0, -2.0]], dtype=torch.float64)
    now = torch.tensor([[9.0, 9.0, 3.0, 1.0], [9.0, 9.0, 0.4, 1.2]], dtype=torch.float64)
    labels, columns = torch.tensor([0, 1]), torch.tensor([2, 3])
    out = transplant_logits(stored, now, labels, columns, gamma=0.85)
    # row 0: new part's max 3.0 exceeds its true-class logit 2.0: scaled by 0.85 * 2.0 / 3.0
    expected0 = [2.0, 0.5, 3.0 * 0.85 * 2.0 / 3.0, 1.0 * 0.85 * 2.0 / 3.0]
    # row 1: max 1.2 below the true-class logit 1.5: taken as it is
    expected1 = [0.1, 1.5, 0.4, 1.2]
    assert out.tolist() == [pytest.approx(expected0, rel=1e-12), pytest.approx(expected1, rel=1e-12)]
    assert stored[0, 2].item() == -1.0  # the stored rows are not changed in place


def run_tiny_stream(strategy, tasks=2):
    """Train a 6-way MLP on the first `tasks` tasks; returns the model and a copy of it after each task."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 6))
    settings = TrainSettings(epochs=1, batch_size=10, lr=0.05, optimizer="sgd", momentum=0.0, schedule="constant")
    snapshots = []
    for task in tiny_stream()[:tasks]:
        fit(model, task, None, settings, LabelsOnly(), strategy=strategy)
        snapshots.append(copy.deepcopy(model))
    return model, snapshots


def test_refreshed_logits_are_those_of_the_model_that_finished_the_rows_task():
    strategy = build_strategy("derpp", buffer_size=30, refresh_task_logits=True)
    _, (after_first, after_second) = run_tiny_stream(strategy)
    b = strategy.buffer
    second = b.y >= 2
    assert 0 < int(second.sum()) < len(b)
    with torch.no_grad():
        assert torch.allclose(b.logits[second], after_second(b.x[second]), atol=1e-6)
        # the first task's rows were refreshed when it ended, and the second task left them alone
        assert torch.allclose(b.logits[~second], after_first(b.x[~second]), atol=1e-6)
    plain = build_strategy("derpp", buffer_size=30)
    run_tiny_stream(plain)
    with torch.no_grad():  # without the option, the stored logits are those met mid-task
        assert not torch.allclose(plain.buffer.logits, after_second(plain.buffer.x), atol=1e-3)


def test_transplant_fills_the_new_classes_columns_of_earlier_rows_under_masking():
    strategy = build_strategy("derpp", buffer_size=30, transplant_gamma=0.85, mask_future_logits=True)
    model, _ = run_tiny_stream(strategy)
    b = strategy.buffer
    assert set(b.logit_width.tolist()) == {4}  # masked rows of task 1 (2 columns) now carry classes 2-3 too
    old = b.y < 2
    with torch.no_grad():
        now = model(b.x[old])[:, :4]
    stored = b.logits[old]
    true = stored.gather(1, b.y[old][:, None])[:, 0]
    top = now[:, 2:4].max(1).values
    scale = torch.where(top > true, 0.85 * true / top, torch.ones_like(top))
    assert torch.allclose(stored[:, 2:4], now[:, 2:4] * scale[:, None])
    positive = true > 0  # (the paper's scaling flips the signs where the true-class logit is negative)
    assert (stored[positive, 2:4].max(1).values <= true[positive] + 1e-6).all()


def test_margin_terms_by_hand_float64():
    from kdcore.lifelong.derpp import DERppOptions, margin_terms

    # 6 classes: 0-1 past, 2-3 the task's, 4-5 not seen yet; margin 0.3, weight 0.1
    logits = torch.tensor([[2.0, 0.0, 1.0, 0.5, 0.2, -1.0], [0.0, 0.1, 3.0, 0.0, 0.0, 2.9]], dtype=torch.float64)
    replayed = torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.9, 0.0], [0.0, 2.0, 0.0, 0.0, 0.0, -1.0]], dtype=torch.float64)
    labels = torch.tensor([0, 1])
    o = DERppOptions(margin=0.3, margin_weight=0.1)
    terms = margin_terms(logits, replayed, labels, first=2, known=4, o=o)
    # past: softmax over classes 0-3; a row breaks it when max p(past) + 0.3 > max p(task's)
    past = []
    for row in logits.tolist():
        e = [math.exp(v) for v in row[:4]]
        p = [v / sum(e) for v in e]
        past.append(max(p[:2]) + 0.3 - max(p[2:4]))
    broken = [v for v in past if v > 0]
    assert terms["past_margin"].item() == pytest.approx(0.1 * sum(broken) / max(len(broken), 1), rel=1e-12)
    # future: top of classes 4-5 + 0.3 - own (the task's top on the batch, the true class's logit on replayed rows)
    future = [0.2 + 0.3 - 1.0, 2.9 + 0.3 - 3.0, 0.9 + 0.3 - 1.0, 0.0 + 0.3 - 2.0]
    broken = [v for v in future if v > 0]  # the batch's second row and the first replayed row
    assert len(broken) == 2
    assert terms["future_margin"].item() == pytest.approx(0.1 * sum(broken) / 2, rel=1e-12)
    nothing = margin_terms(logits, replayed, labels, first=0, known=6, o=o)  # no past, no future classes
    assert nothing["past_margin"].item() == 0.0 and nothing["future_margin"].item() == 0.0


def test_margins_are_named_terms_of_every_step():
    strategy = build_strategy("derpp", buffer_size=20, margin=0.3)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 6))
    settings = TrainSettings(epochs=1, batch_size=10, lr=0.05, optimizer="sgd", momentum=0.0, schedule="constant")
    for task in tiny_stream()[:2]:
        history = fit(model, task, None, settings, LabelsOnly(), strategy=strategy)
    assert {"train/past_margin", "train/future_margin"} <= set(history[-1])
    assert history[-1]["train/loss"] == pytest.approx(sum(v for k, v in history[-1].items() if k != "train/loss"))


def test_filling_at_task_end_keeps_an_equal_share_per_class_with_the_finished_models_logits():
    strategy = build_strategy("derpp", buffer_size=31, fill_at_task_end=True)
    model, snapshots = run_tiny_stream(strategy, tasks=3)
    b = strategy.buffer
    # 6 classes seen: 31 // 6 = 5 rows for each earlier class, the last task's two classes share the 11 left
    counts = [int((b.y == c).sum()) for c in range(6)]
    assert counts[:4] == [5, 5, 5, 5] and sorted(counts[4:]) == [5, 6] and len(b) == 31
    last = b.y >= 4
    with torch.no_grad():
        assert torch.allclose(b.logits[last], model(b.x[last]), atol=1e-6)
        # an earlier task's rows keep the logits of the model that finished that task
        first = b.y < 2
        assert torch.allclose(b.logits[first], snapshots[0](b.x[first]), atol=1e-6)
    for task, rows in zip(tiny_stream(), (b.y < 2, (b.y >= 2) & (b.y < 4), last)):  # the rows are the task's images
        assert all(any(torch.equal(r, t) for t in task.x) for r in b.x[rows])


def test_filling_at_task_end_stores_nothing_during_the_first_task():
    strategy = build_strategy("derpp", buffer_size=20, fill_at_task_end=True)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 6))
    settings = TrainSettings(epochs=1, batch_size=10, lr=0.05, optimizer="sgd", momentum=0.0, schedule="constant")
    history = fit(model, tiny_stream()[0], None, settings, LabelsOnly(), strategy=strategy)
    assert history[-1]["train/replay_mse"] == 0.0 and history[-1]["train/replay_ce"] == 0.0
    assert len(strategy.buffer) == 20


def test_filling_at_task_end_after_a_checkpoint_counts_the_classes_seen_before():
    strategy = build_strategy("derpp", buffer_size=31, fill_at_task_end=True)
    model, _ = run_tiny_stream(strategy, tasks=2)
    loaded = build_strategy("derpp", buffer_size=31, fill_at_task_end=True)
    loaded.load_state_dict(strategy.state_dict())
    settings = TrainSettings(epochs=1, batch_size=10, lr=0.05, optimizer="sgd", momentum=0.0, schedule="constant")
    fit(model, tiny_stream()[2], None, settings, LabelsOnly(), strategy=loaded)
    counts = [int((loaded.buffer.y == c).sum()) for c in range(6)]
    assert counts[:4] == [5, 5, 5, 5] and sorted(counts[4:]) == [5, 6]
