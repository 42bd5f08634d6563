"""One process at a time, per store, for the steps that must not race: schema creation and training one teacher.

Two `kdflow run`s started at once in a new folder would both create MLflow's and Optuna's SQLite schemas
(alembic migrations that fail half-way when they interleave) and both train the same teacher. A file lock
next to the store serialises them; the second process waits, then finds the schema, the experiment or the
cached teacher already there. A lock file on a local disk: a shared tracking server needs no lock to create
its schema, but two runs on one machine still share the store folder.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

log = logging.getLogger("kdflow")


@contextmanager
def store_lock(store_dir: str, name: str, waiting: str | None = None) -> Iterator[None]:
    """Hold `<store_dir>/locks/<name>.lock`; log `waiting` once if another process holds it."""
    folder = Path(store_dir) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / f"{name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if waiting:
            log.info("%s", waiting)
        lock.acquire()  # no timeout: the holder either finishes or dies, and the OS releases a dead one's lock
    try:
        yield
    finally:
        lock.release()
