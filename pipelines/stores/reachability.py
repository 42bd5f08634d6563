"""Stores on the network are checked before any work: an unreachable tracking server or Optuna database is
reported in one line at the start, not after the teacher has trained.

Reachable means a TCP connection to the URI's host and port opens; a refused or timed-out connection is
tried again (after 1 s and 3 s) because a server may be starting. Credentials are never checked here, and
never printed: the message names the URI with its password masked.
"""

from __future__ import annotations

import os
import socket
import time
from urllib.parse import urlsplit

from pipelines.config.schema import ConfigError, PipelineConfig
from pipelines.tracking.runs import redact, tracking_uri
from pipelines.tuning.study import OPTUNA_STORAGE_ENV, storage_url

RETRY_DELAYS_SECONDS = (1.0, 3.0)
_DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "postgres": 5432, "mysql": 3306, "mssql": 1433}


def network_address(uri: str, field: str) -> tuple[str, int] | None:
    """(host, port) of a store reached over the network; None for a local one (sqlite, file, a path)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.split("+")[0].lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        raise ConfigError(f"{field} {redact(uri)} has an invalid port; write it as host:PORT") from None
    return parts.hostname, port


def check_reachable(uri: str, field: str, delays: tuple[float, ...] = RETRY_DELAYS_SECONDS) -> None:
    address = network_address(uri, field)
    if address is None:
        return
    error: OSError | None = None
    for delay in (0.0, *delays):
        time.sleep(delay)
        try:
            socket.create_connection(address, timeout=10).close()
            return
        except OSError as e:  # refused, timed out, unknown host
            error = e
    reason = getattr(error, "strerror", None) or type(error).__name__
    raise ConfigError(
        f"{field} {redact(uri)} is not reachable ({reason}; tried {len(delays) + 1} times); "
        "start that server or fix the URI"
    )


def check_stores_reachable(cfg: PipelineConfig) -> None:
    """The MLflow tracking store and the Optuna storage, wherever they are configured."""
    # The CLI moves a URI with a password from the config into these variables: name both places.
    check_reachable(tracking_uri(cfg), "the MLflow tracking store (runtime.tracking_uri or MLFLOW_TRACKING_URI)")
    if cfg.tune.n_trials and (cfg.tune.storage or os.environ.get(OPTUNA_STORAGE_ENV)):
        check_reachable(storage_url(cfg), f"the Optuna storage (tune.storage or {OPTUNA_STORAGE_ENV})")
