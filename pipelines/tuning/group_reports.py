"""A group's per-epoch reports (and attributes) to Optuna, without storage round trips per member and epoch.

`trial.report` commits each value on its own and `trial.should_prune` reads the trial and then every trial of
the study: with K members each epoch that is K commits and 2K reads, most of a digits group's time on a busy
SQLite file. The group keeps its members' values itself and writes them in one transaction at most every
`every` seconds (the heartbeat interval) and at the end; it reads the study once per epoch, and only when a
pruner will look. Each member's pruning decision is the study's own pruner's, on that snapshot with the
member's own values up to this epoch put in. Other members' values of the same epoch may be missing from the
snapshot, as for trials running in other workers; the median pruner compares with finished trials only, so
its decisions are those `trial.should_prune` would make.
"""

from __future__ import annotations

import copy
import time

import optuna


class GroupReports:
    def __init__(self, study: optuna.Study, every: float):
        self.study, self.every = study, every
        self.epoch, self.trials = None, []
        self.own: dict[int, dict[int, float]] = {}  # trial number -> its values so far
        self.pending: list[tuple[int, int, float]] = []  # (trial id, epoch, value) not yet written
        self.written_at = time.monotonic()
        self.prunes = not isinstance(study.pruner, optuna.pruners.NopPruner)

    def __getattr__(self, name: str):
        return getattr(self.study, name)  # what pruners read besides the trials: direction, _storage, ...

    def get_trials(self, deepcopy: bool = True, states=None) -> list[optuna.trial.FrozenTrial]:
        trials = [t for t in self.trials if states is None or t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def report(self, trial: optuna.Trial, epoch: int, value: float) -> bool:
        """Record the member's value for `epoch`; return what `trial.should_prune()` would say right after."""
        value = float(value)
        if self.epoch != epoch:
            self.epoch = epoch
            if time.monotonic() - self.written_at >= self.every:
                self.flush()
            if self.prunes:
                self.trials = self.study.get_trials(deepcopy=False)
        self.pending.append((trial._trial_id, epoch, value))
        self.own.setdefault(trial.number, {})[epoch] = value
        if not self.prunes:
            return False
        frozen = copy.copy(next(t for t in self.trials if t.number == trial.number))
        frozen.intermediate_values = {**frozen.intermediate_values, **self.own[trial.number]}
        self.trials = [frozen if t.number == trial.number else t for t in self.trials]
        return self.study.pruner.prune(self, frozen)

    def flush(self) -> None:
        """Write the pending values in one transaction."""
        pending, self.pending = self.pending, []
        self.written_at = time.monotonic()
        if pending:
            write_at_once(self.study, values=pending)


def write_at_once(study: optuna.Study, values=(), user_attrs=()) -> None:
    """Intermediate values (trial id, step, value) and user attributes (trial id, key, value) in one transaction
    on an RDB storage (through its private per-row writers: one commit, not one per row); else one call each."""
    storage = study._storage
    backend = getattr(storage, "_backend", storage)  # Optuna wraps its RDB storage in a cache
    attr_row = getattr(backend, "_set_trial_attr_without_commit", None)
    if attr_row is None or not hasattr(backend, "scoped_session"):
        for trial_id, step, value in values:
            storage.set_trial_intermediate_value(trial_id, step, value)
        for trial_id, key, value in user_attrs:
            storage.set_trial_user_attr(trial_id, key, value)
        return
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(backend.scoped_session, True) as session:
        # new rows: each member reports each epoch once, to its own RUNNING trial (no look-up of an old row)
        value_model = models.TrialIntermediateValueModel
        for trial_id, step, value in values:
            stored, kind = value_model.intermediate_value_to_stored_repr(value)
            session.add(
                value_model(trial_id=trial_id, step=step, intermediate_value=stored, intermediate_value_type=kind)
            )
        for trial_id, key, value in user_attrs:
            attr_row(session, models.TrialUserAttributeModel, trial_id, key, value)
