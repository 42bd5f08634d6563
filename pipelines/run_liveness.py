"""Runs left RUNNING by a killed process are closed by the next kdflow command on the same store.

Every run kdflow opens carries the host and pid of the process that opened it. A run still RUNNING whose
process is gone (same host, pid no longer alive) can never end by itself: it is marked FAILED with a tag
saying why. A run on another host, or whose process is alive (a concurrent run), is never touched.
"""

from __future__ import annotations

import logging
import os
import socket

from mlflow.tracking import MlflowClient

log = logging.getLogger("kdflow")

HOST_TAG, PID_TAG, END_REASON_TAG = "kdflow.host", "kdflow.pid", "kdflow.end_reason"


def liveness_tags() -> dict[str, str]:
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_orphan(tags: dict[str, str]) -> bool:
    pid = tags.get(PID_TAG, "")
    return tags.get(HOST_TAG) == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))


def fail_orphaned_runs(client: MlflowClient | None = None) -> int:
    """Mark FAILED every RUNNING run of this store whose process on this host is gone; return how many."""
    client = client or MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return 0
    running = client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'", max_results=5000)
    orphans = [r for r in running if is_orphan(r.data.tags)]
    for run in orphans:
        client.set_tag(run.info.run_id, END_REASON_TAG, f"process {run.data.tags[PID_TAG]} on this host ended")
        client.set_terminated(run.info.run_id, status="FAILED")
    if orphans:
        log.info("MLflow: %d run(s) left RUNNING by ended kdflow processes marked FAILED", len(orphans))
    return len(orphans)
