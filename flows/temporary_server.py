"""Prefect's temporary server outlives a Ctrl-C of the run it serves, and never outlives the run.

Ctrl-C sends SIGINT to the terminal's whole foreground process group. Prefect starts its temporary server (no
PREFECT_API_URL) in that group, so the server stopped first and the interrupted run then spent minutes retrying
its last state reports against nothing. Started in its own session the server keeps serving until the run has
ended and Prefect stops it at exit; on Linux it also gets SIGTERM when the run's process dies (even by SIGKILL),
so it is never left behind. Elsewhere Prefect's own behaviour is kept.
"""

from __future__ import annotations

import ctypes
import functools
import signal
import subprocess
import sys
import types

PR_SET_PDEATHSIG = 1


def die_with_parent(prctl) -> None:
    """In the child, before exec: SIGTERM when the process that started it ends."""
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def keep_temporary_server_out_of_ctrl_c() -> None:
    if sys.platform != "linux":
        return
    from prefect.server.api import server

    if isinstance(server.subprocess, types.SimpleNamespace):  # done already
        return
    # Only the server module's Popen changes: its temporary server is the one process it starts.
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child may only call it
    popen = functools.partial(
        subprocess.Popen, start_new_session=True, preexec_fn=functools.partial(die_with_parent, prctl)
    )
    server.subprocess = types.SimpleNamespace(**{**vars(subprocess), "Popen": popen})
