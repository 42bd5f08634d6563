"""Heartbeats for trials run outside `study.optimize`: a group of trials asked together (tune.vectorise).

Optuna records a trial's heartbeat only from the thread `study.optimize` starts around it
(optuna/storages/_heartbeat.py). A worker that trains K trials at once records theirs from one thread, so
if the worker dies all K go silent together, turn stale, and are failed and queued again like single trials
(pipelines/tuning/dead_trials.py).
"""

from __future__ import annotations

import threading

import optuna


class GroupHeartbeat:
    def __init__(self, storage: optuna.storages.BaseStorage, trial_ids: list[int]):
        self.storage, self.trial_ids = storage, set(trial_ids)
        self.interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
        self.lock, self.stop = threading.Lock(), threading.Event()
        self.thread = threading.Thread(target=self.run, name="kdflow-group-heartbeat", daemon=True)

    def run(self) -> None:
        while True:
            with self.lock:
                for trial_id in sorted(self.trial_ids):
                    self.storage.record_heartbeat(trial_id)
            if self.stop.wait(self.interval):
                return

    def done(self, trial_id: int) -> None:
        """A finished trial: no more heartbeats (Optuna's own thread stops at the trial's end, too)."""
        with self.lock:
            self.trial_ids.discard(trial_id)

    def __enter__(self) -> GroupHeartbeat:
        if self.interval is not None:  # a storage without heartbeats: nothing to record
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()
