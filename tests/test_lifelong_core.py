"""kdcore.lifelong: metric formulas against hand computation, buffer, head growth, strategies on a tiny stream."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn as nn

from kdcore.data.bundle import Split
from kdcore.distill.base import LabelsOnly
from kdcore.distill.kd import KD
from kdcore.lifelong import (
    ReservoirBuffer,
    accuracy_row,
    average_accuracy,
    backward_transfer,
    build_strategy,
    forgetting,
    grow_head,
)
from kdcore.soft_targets import SoftTargets
from kdcore.train import TrainSettings, fit


def learn_task(model, strategy, train, epochs, lr, seed=0, teacher=None):
    """One task of the stream: plain SGD at a constant lr through `fit`, the strategy plugged in."""
    settings = TrainSettings(
        epochs=epochs, batch_size=10, lr=lr, optimizer="sgd", momentum=0.0, schedule="constant", seed=seed
    )
    if teacher is None:
        history = fit(model, train, None, settings, LabelsOnly(), strategy=strategy)
    else:  # CE + KD towards the teacher, beside the strategy's own terms
        soft = SoftTargets(teacher=teacher.eval())
        history = fit(model, train, None, settings, KD(2.0, 0.5), soft_targets=soft, strategy=strategy)
    return {k.removeprefix("train/"): v for k, v in history[-1].items()}


# A[i, j]: accuracy on task j after learning task i (3 tasks).
A = [
    [0.90, 0.10, 0.00],
    [0.60, 0.80, 0.05],
    [0.50, 0.70, 0.95],
]


def test_average_accuracy_by_hand():
    assert average_accuracy(A) == pytest.approx((0.50 + 0.70 + 0.95) / 3)
    assert average_accuracy(A, step=1) == pytest.approx((0.60 + 0.80) / 2)
    assert average_accuracy(A, step=0) == pytest.approx(0.90)


def test_backward_transfer_by_hand():
    # Lopez-Paz & Ranzato: mean over j < T-1 of A[T-1, j] - A[j, j]
    assert backward_transfer(A) == pytest.approx(((0.50 - 0.90) + (0.70 - 0.80)) / 2)
    assert backward_transfer(A, step=1) == pytest.approx(0.60 - 0.90)
    assert backward_transfer(A, step=0) == 0.0


def test_forgetting_by_hand():
    # Chaudhry et al.: task 0's best earlier accuracy is 0.90 (row 0), task 1's is 0.80 (row 1; row 0 had 0.10).
    assert forgetting(A) == pytest.approx(((0.90 - 0.50) + (0.80 - 0.70)) / 2)
    assert forgetting(A, step=1) == pytest.approx(0.90 - 0.60)
    # The max is over all earlier rows, not just the diagonal: improve task 0 in row 1, forget it in row 2.
    B = [[0.5, np.nan, np.nan], [0.9, 0.8, np.nan], [0.4, 0.8, 0.7]]
    assert forgetting(B) == pytest.approx(((0.9 - 0.4) + 0.0) / 2)


def test_reservoir_keeps_capacity_and_reloads_weights_only():
    buf = ReservoirBuffer(capacity=20, seed=1)
    for start in range(0, 200, 10):
        x = torch.arange(start, start + 10, dtype=torch.float32)[:, None]
        buf.add(x, torch.arange(10) % 3, torch.randn(10, 2 if start < 100 else 4))
    assert len(buf) == 20 and buf.seen == 200
    # reservoir: later examples replace earlier ones, so the buffer holds examples from across the stream
    assert buf.x.min() < 100 <= buf.x.max()
    x, y, logits, mask = buf.sample(8)
    assert logits.shape == (8, 4) and set(mask.sum(1).tolist()) <= {2, 4}
    blob = io.BytesIO()
    torch.save(buf.state_dict(), blob)
    blob.seek(0)
    again = ReservoirBuffer.from_state_dict(torch.load(blob, weights_only=True))
    assert torch.equal(again.x, buf.x) and again.seen == 200
    assert torch.equal(again.sample(5)[0], buf.sample(5)[0])  # the sampling stream continues where it stopped


def test_grow_head_keeps_old_rows():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    x = torch.randn(5, 4)
    before = model(x).detach()
    assert grow_head(model, 5)
    after = model(x).detach()
    assert after.shape == (5, 5)
    assert torch.allclose(after[:, :2], before)
    assert not grow_head(model, 5)


def blob_stream(seed: int = 0, tasks: int = 3, per_class: int = 150):
    """Class-incremental: task t holds classes 2t and 2t+1, Gaussian blobs well apart in 10-D."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(2 * tasks, 10, generator=g) * 1.5
    streams = []
    for t in range(tasks):
        xs, ys = [], []
        for c in (2 * t, 2 * t + 1):
            xs.append(centres[c] + torch.randn(per_class, 10, generator=g))
            ys.append(torch.full((per_class,), c))
        x, y = torch.cat(xs), torch.cat(ys)
        test = torch.arange(len(y)) % 5 == 0
        streams.append((Split(x[~test], y[~test]), Split(x[test], y[test])))
    return streams


def run_stream(strategy_name: str, data_seed: int = 0, **options):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 6))
    strategy = build_strategy(strategy_name, seed=0, **options)
    stream = blob_stream(data_seed)
    rows = []
    for t, (train, _) in enumerate(stream):
        learn_task(model, strategy, train, epochs=3, lr=0.05, seed=t)
        rows.append(accuracy_row(model, [test for _, test in stream]))
    return np.array(rows)


@pytest.mark.parametrize(
    "name, options", [("finetune", {}), ("lwf", {}), ("derpp", {"buffer_size": 60}), ("joint", {})]
)
def test_each_strategy_learns_the_current_task(name, options):
    a = run_stream(name, **options)
    assert a[0, 0] > 0.9  # every strategy learns what it is shown first
    assert a[2, 2] > 0.5  # and the newest task well above chance (1/6), even LwF that holds on to the old outputs


def test_finetune_forgets_more_than_derpp_and_joint():
    ft, der, joint = run_stream("finetune"), run_stream("derpp", buffer_size=60), run_stream("joint")
    assert forgetting(ft) > 0.3  # class-incremental fine-tuning loses the old classes to the new ones
    assert forgetting(ft) - forgetting(der) > 0.2
    assert average_accuracy(der) - average_accuracy(ft) > 0.15
    assert average_accuracy(joint) >= average_accuracy(der) - 0.05


def test_student_distils_teacher_with_kd_term():
    stream = blob_stream()
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 6))
    student = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 6))
    learn_task(teacher, build_strategy("finetune"), stream[0][0], epochs=2, lr=0.1)
    terms = learn_task(
        student, build_strategy("derpp", buffer_size=30), stream[0][0], epochs=2, lr=0.1, teacher=teacher
    )
    assert {"ce", "kd"} <= set(terms)
    assert accuracy_row(student, [stream[0][1]])[0] > 0.9


def token_stream(tasks: int = 2, per_class: int = 60, length: int = 12, vocab: int = 50, seed: int = 0):
    """Class-incremental texts as token ids: class c's texts draw words from its own id range, right-padded with 0."""
    g = torch.Generator().manual_seed(seed)
    streams = []
    for t in range(tasks):
        xs, ys = [], []
        for c in (2 * t, 2 * t + 1):
            words = 2 + 10 * c + torch.randint(0, 10, (per_class, length), generator=g)
            lengths = torch.randint(3, length + 1, (per_class, 1), generator=g)
            xs.append(torch.where(torch.arange(length)[None, :] < lengths, words, 0))
            ys.append(torch.full((per_class,), c))
        x, y = torch.cat(xs), torch.cat(ys)
        test = torch.arange(len(y)) % 5 == 0
        streams.append((Split(x[~test], y[~test]), Split(x[test], y[test])))
    return streams, vocab


@pytest.mark.parametrize(
    "name, options", [("finetune", {}), ("lwf", {}), ("derpp", {"buffer_size": 40}), ("joint", {})]
)
def test_each_strategy_runs_on_token_ids(name, options):
    from kdcore.models import build_model

    stream, vocab = token_stream()
    torch.manual_seed(0)
    model = build_model("fasttext", (12,), 2, vocab_size=vocab, width=16)
    teacher = build_model("textcnn", (12,), 4, vocab_size=vocab, width=8, embed=8).eval()
    strategy = build_strategy(name, seed=0, **options)
    rows = []
    for t, (train, _) in enumerate(stream):
        grow_head(model, 2 * (t + 1))
        learn_task(model, strategy, train, epochs=5, lr=0.5, seed=t, teacher=teacher if t else None)  # integer inputs
        rows.append(accuracy_row(model, [test for _, test in stream]))
    assert rows[0][0] > 0.9 and rows[1][1] > 0.5
    if name == "derpp":  # the buffer keeps the token ids themselves (and the logits given to them)
        assert strategy.buffer.x.dtype == torch.long and strategy.buffer.x.shape[1:] == (12,)
        assert len(strategy.buffer) == 40 and strategy.buffer.logits.shape[1] == 4
    if name == "joint":
        assert strategy.seen.x.dtype == torch.long and len(strategy.seen) == sum(len(tr) for tr, _ in stream)


def test_each_strategy_takes_only_its_own_options():
    assert build_strategy("derpp", buffer_size=10, logit_weight=0.2, label_weight=1.0, replay_batch_size=4).name
    assert build_strategy("lwf", kd_weight=0.5, temperature=2.0).options.kd_weight == 0.5
    with pytest.raises(ValueError, match="strategy 'lwf' has no option 'buffer_size'; its options are kd_weight"):
        build_strategy("lwf", buffer_size=10)  # one config for all no longer hides a misspelt or foreign option
