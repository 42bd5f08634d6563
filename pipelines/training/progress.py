"""Progress of the long stages (epochs, trials) as events, for whoever shows them.

The stages report; the command line (progress bars) and the Prefect flow (progress artifact)
listen. Listeners are registered by the caller, so the stages know nothing about either.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("kdflow")


class ProgressListener:
    """Override what you need; every event is optional."""

    def epoch(self, role: str, epoch: int, epochs: int, metrics: dict[str, float]) -> None:
        """`role` (teacher, baseline, student) finished `epoch` of `epochs`."""

    def trials(self, done: int, total: int, best: float | None) -> None:
        """The study holds `done` of `total` finished trials; `best` is the best value so far."""


_listeners: list[ProgressListener] = []


@contextmanager
def listening(listener: ProgressListener) -> Iterator[ProgressListener]:
    _listeners.append(listener)
    try:
        yield listener
    finally:
        _listeners.remove(listener)


def _notify(event: str, *args) -> None:
    for listener in list(_listeners):
        try:
            getattr(listener, event)(*args)
        except Exception as e:  # a display that fails must never fail the training it shows
            log.warning("progress: %s listener failed: %s: %s", type(listener).__name__, type(e).__name__, e)


def report_epoch(role: str, epoch: int, epochs: int, metrics: dict[str, float]) -> None:
    _notify("epoch", role, epoch, epochs, metrics)


def report_trials(done: int, total: int, best: float | None) -> None:
    _notify("trials", done, total, best)
