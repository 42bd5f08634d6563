"""Pruning decisions for a group of trials: the study read once per epoch for the whole group, not once per member.

`Trial.should_prune` reads the trial and every trial of the study from the storage: with K members reporting
each epoch that is 2K reads (on SQLite under load, most of a digits group's time). The group reads the study
once per epoch and asks the study's own pruner about each member, with the member's own values up to this
epoch. Other members' values of the same epoch may be missing from the snapshot, as for trials running in
other workers; the median pruner compares with finished trials only, so its decisions are unchanged.
"""

from __future__ import annotations

import copy

import optuna


class EpochSnapshot:
    """The study as the pruner sees it: trials read once per epoch; everything else is the study's own."""

    def __init__(self, study: optuna.Study):
        self.study, self.epoch, self.trials = study, None, []

    def __getattr__(self, name: str):
        return getattr(self.study, name)  # direction, _storage (Hyperband records its rungs there), ...

    def get_trials(self, deepcopy: bool = True, states=None) -> list[optuna.trial.FrozenTrial]:
        trials = [t for t in self.trials if states is None or t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def should_prune(self, trial: optuna.Trial, epoch: int, value: float) -> bool:
        """What `trial.should_prune()` would say right after `trial.report(value, epoch)`."""
        if self.epoch != epoch:
            self.trials, self.epoch = self.study.get_trials(deepcopy=False), epoch
        frozen = copy.copy(next(t for t in self.trials if t.number == trial.number))
        frozen.intermediate_values = {**frozen.intermediate_values, epoch: value}
        self.trials = [frozen if t.number == trial.number else t for t in self.trials]
        return self.study.pruner.prune(self, frozen)
