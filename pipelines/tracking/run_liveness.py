"""Runs left RUNNING by a killed process are closed by the next kdflow command on the same store.

Every run kdflow opens carries the host and pid of the process that opened it and a heartbeat: a
`kdflow.heartbeat` tag (UTC time) that a daemon thread of that process renews every `KDFLOW_HEARTBEAT_S`
seconds (default 30) while the run is RUNNING. A RUNNING run is marked FAILED, with a tag saying why, when
its process is gone (same host, pid no longer alive) or its heartbeat is older than 10 of its own intervals
(another host's run whose machine died, or a pid reused on this host). A live run, here or on another host,
keeps beating and is never touched. Clocks of hosts sharing a store should agree within a few minutes.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import mlflow
from mlflow.tracking import MlflowClient

log = logging.getLogger("kdflow")

HOST_TAG, PID_TAG, END_REASON_TAG = "kdflow.host", "kdflow.pid", "kdflow.end_reason"
HEARTBEAT_TAG, HEARTBEAT_EVERY_TAG = "kdflow.heartbeat", "kdflow.heartbeat_s"
STALE_AFTER_BEATS = 10  # missed beats before a run counts as abandoned: one slow store write is not a death
DEFAULT_HEARTBEAT_S = 30.0


def heartbeat_interval() -> float:
    """Seconds between heartbeats: KDFLOW_HEARTBEAT_S, else 30."""
    text = os.environ.get("KDFLOW_HEARTBEAT_S", "")
    try:
        value = float(text) if text else DEFAULT_HEARTBEAT_S
    except ValueError:
        value = -1.0
    if not 0 < value < 86_400:
        raise ValueError(f"KDFLOW_HEARTBEAT_S={text!r} is not a number of seconds between 0 and 86400; fix or unset it")
    return value


def utc_now() -> datetime:
    return datetime.now(UTC)


def liveness_tags() -> dict[str, str]:
    """Host, pid and a first heartbeat for a run about to be opened; starts this process's heartbeat thread."""
    interval = heartbeat_interval()
    start_heartbeat(mlflow.get_tracking_uri(), interval)
    return {
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(os.getpid()),
        HEARTBEAT_TAG: utc_now().isoformat(timespec="seconds"),
        HEARTBEAT_EVERY_TAG: f"{interval:g}",
    }


def beat(client: MlflowClient, now: datetime | None = None) -> int:
    """Renew the heartbeat of every RUNNING run this process opened in the client's store; return how many."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return 0
    mine = (
        f"attributes.status = 'RUNNING' and tags.`{PID_TAG}` = '{os.getpid()}' "
        f"and tags.`{HOST_TAG}` = '{socket.gethostname()}'"
    )
    stamp = (now or utc_now()).isoformat(timespec="seconds")
    runs = client.search_runs(experiments, filter_string=mine, max_results=5000)
    for run in runs:
        client.set_tag(run.info.run_id, HEARTBEAT_TAG, stamp)
    return len(runs)


class _Heartbeat:
    """One daemon thread per process, beating for the runs of every store the process opened runs in."""

    def __init__(self, interval: float):
        self.interval, self.uris, self.pid = interval, set(), os.getpid()
        threading.Thread(target=self._loop, name="kdflow-heartbeat", daemon=True).start()

    def _loop(self) -> None:
        while True:
            time.sleep(self.interval)
            for uri in list(self.uris):
                try:
                    beat(MlflowClient(uri))
                except Exception as e:  # a busy or vanished store: the next beat tries again
                    log.debug("heartbeat to %s failed: %s", uri, e)


_heartbeat: _Heartbeat | None = None
_lock = threading.Lock()


def start_heartbeat(uri: str, interval: float) -> None:
    global _heartbeat
    with _lock:
        if _heartbeat is None or _heartbeat.pid != os.getpid():  # a forked child has no thread of its own yet
            _heartbeat = _Heartbeat(interval)
        _heartbeat.uris.add(uri)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def end_reason(tags: dict[str, str], now: datetime) -> str | None:
    """Why a RUNNING run can never end by itself, or None while its process may still be running it."""
    pid, host = tags.get(PID_TAG, ""), tags.get(HOST_TAG)
    if host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid)):
        return f"process {pid} on this host ended"
    stamp = tags.get(HEARTBEAT_TAG)
    if not stamp:
        return None  # a run from before heartbeats: only its pid can tell
    try:
        last = datetime.fromisoformat(stamp)
        every = float(tags.get(HEARTBEAT_EVERY_TAG) or DEFAULT_HEARTBEAT_S)
    except ValueError:
        return None
    last = last if last.tzinfo else last.replace(tzinfo=UTC)
    stale_after = timedelta(seconds=STALE_AFTER_BEATS * every)
    if now - last > stale_after:
        return (
            f"no heartbeat from process {pid or '?'} on {host or '?'} since {stamp} "
            f"(stale after {stale_after.total_seconds():g} s)"
        )
    return None


def is_orphan(tags: dict[str, str], now: datetime | None = None) -> bool:
    return end_reason(tags, now or utc_now()) is not None


def fail_orphaned_runs(client: MlflowClient | None = None, now: datetime | None = None) -> int:
    """Mark FAILED every RUNNING run of this store whose process is gone or heartbeat stale; return how many."""
    client, now = client or MlflowClient(), now or utc_now()
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return 0
    running = client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'", max_results=5000)
    orphans = [(r, end_reason(r.data.tags, now)) for r in running]
    orphans = [(r, why) for r, why in orphans if why]
    for run, why in orphans:
        client.set_tag(run.info.run_id, END_REASON_TAG, why)
        client.set_terminated(run.info.run_id, status="FAILED")
    if orphans:
        log.info("MLflow: %d run(s) left RUNNING by ended kdflow processes marked FAILED", len(orphans))
    return len(orphans)
