"""fit keeps the weights of the best validation epoch and can stop early; the history says which epoch it kept."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from kdcore.data import Split
from kdcore.distill import Distiller, LabelsOnly
from kdcore.evaluate import evaluate
from kdcore.train import TrainSettings, fit


class TurnsAgainstTheLabels(Distiller):
    """Learns the labels for `honest` epochs, then the next class's: validation peaks early, by construction."""

    def __init__(self, honest: int):
        super().__init__()
        self.honest = honest

    def loss_terms(self, student_logits, batch):
        y = batch.y if batch.epoch <= self.honest else (batch.y + 1) % student_logits.shape[1]
        return {"ce": F.cross_entropy(student_logits, y)}


def separable(n: int, seed: int) -> Split:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    return Split(torch.randn(n, 1, 4, 4, generator=g) + 2 * F.one_hot(y, 16).float().view(n, 1, 4, 4), y)


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 4))


SETTINGS = TrainSettings(epochs=6, batch_size=16, lr=0.5, optimizer="sgd", schedule="step")


def test_a_run_whose_validation_peaks_early_keeps_the_better_weights():
    train, val = separable(96, seed=0), separable(64, seed=1)
    net = model()
    history = fit(net, train, val, SETTINGS, TurnsAgainstTheLabels(honest=2))
    accs = [h["val/acc"] for h in history]
    assert len(history) == 6 and history.kept_epoch in (1, 2)
    assert history.kept["val/acc"] == max(accs) > accs[-1] + 0.5  # the last epoch learnt the wrong classes
    assert evaluate(net, val)["acc"] == history.kept["val/acc"]  # the model holds the kept epoch's weights


def test_early_stopping_stops_once_validation_has_not_improved_for_patience_epochs():
    train, val = separable(96, seed=0), separable(64, seed=1)
    settings = TrainSettings(**{**SETTINGS.__dict__, "early_stop_patience": 2})
    history = fit(model(), train, val, settings, TurnsAgainstTheLabels(honest=2))
    assert len(history) == history.kept_epoch + 2 < 6


def test_ties_keep_the_earlier_epoch():
    """lr=0: every epoch scores the same; the first is kept, and patience counts from it."""
    train, val = separable(32, seed=0), separable(16, seed=1)
    settings = TrainSettings(**{**SETTINGS.__dict__, "lr": 0.0, "early_stop_patience": 3})
    history = fit(model(), train, val, settings, LabelsOnly())
    assert history.kept_epoch == 1 and len(history) == 4


def test_without_validation_the_last_epoch_is_kept():
    history = fit(model(), separable(32, seed=0), None, SETTINGS, TurnsAgainstTheLabels(honest=2))
    assert history.kept_epoch == 6 and history.kept is history[-1]
