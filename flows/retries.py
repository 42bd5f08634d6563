"""Which failures a task retries: transient ones (a tracking server briefly away), never user errors."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import requests
from mlflow.exceptions import MlflowException

from kdcore.data import DataError
from pipelines.config.schema import ConfigError

RETRIES = 2
RETRY_DELAYS_SECONDS = [5, 30]

# Network failures, whichever library raised them.
_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    ConnectionError,  # builtin: refused, reset, aborted
    TimeoutError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
)
_USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, DataError, ValueError, TypeError, KeyError)
_SERVER_ERRORS = {500, 502, 503, 504}  # not 501: "not implemented" stays so


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _is_transient_one(exc: BaseException) -> bool:
    if isinstance(exc, _TRANSIENT_TYPES):
        return True
    if isinstance(exc, MlflowException):
        # 5xx: the server failed or was unreachable (MLflow reports "API request ... failed" as 500).
        return exc.get_http_status_code() in _SERVER_ERRORS
    if isinstance(exc, sqlite3.OperationalError) or type(exc).__name__ == "OperationalError":
        return "database is locked" in str(exc)  # SQLite store busy with another writer
    return False


def is_transient(exc: BaseException) -> bool:
    """True for a failure worth retrying; a user error anywhere in the chain is never retried."""
    chain = list(_chain(exc))
    if isinstance(getattr(chain[0], "transient", None), bool):  # CredentialsMasked: judged before masking
        return chain[0].transient
    if isinstance(chain[0], _USER_ERRORS) and not isinstance(chain[0], MlflowException):
        return False
    return any(_is_transient_one(e) for e in chain)


def retry_on_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's `retry_condition_fn`: retry only when the failure is transient."""
    exc = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return isinstance(exc, BaseException) and is_transient(exc)
