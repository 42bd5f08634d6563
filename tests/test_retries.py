"""Retries: transient failures (tracking server away, SQLite busy) are retried, user errors never."""

import socket
import sqlite3

import pytest
import requests
from mlflow.exceptions import MlflowException, RestException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, TEMPORARILY_UNAVAILABLE
from prefect.states import Failed

from flows.retries import is_transient, retry_on_transient
from kdcore.data import DataError
from pipelines.config.schema import ConfigError, load_config


def unreachable_server_error() -> BaseException:
    """What MLflow raises when its tracking server is down: a real request to a closed port."""
    import mlflow

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again once the block ends: nothing listens there
    client = mlflow.MlflowClient(f"http://127.0.0.1:{port}")
    return raised(lambda: client.get_experiment_by_name("any"))


def raised(fn) -> BaseException:
    try:
        fn()
    except BaseException as e:
        return e
    raise AssertionError("nothing raised")


def test_tracking_server_unreachable_is_transient(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's own retries would only add waiting
    e = unreachable_server_error()
    assert isinstance(e, MlflowException) and "API request to" in str(e)
    assert is_transient(e)


@pytest.mark.parametrize(
    "make",
    [
        lambda: requests.get("http://127.0.0.1:9/", timeout=2),  # nothing on the discard port
        lambda: (_ for _ in ()).throw(RestException({"error_code": "TEMPORARILY_UNAVAILABLE", "message": "busy"})),
        lambda: (_ for _ in ()).throw(MlflowException("gateway", error_code=TEMPORARILY_UNAVAILABLE)),
        lambda: (_ for _ in ()).throw(sqlite3.OperationalError("database is locked")),
    ],
    ids=["connection-refused", "rest-503", "mlflow-503", "sqlite-locked"],
)
def test_transient_failures_are_retried(make):
    assert is_transient(raised(make))


@pytest.mark.parametrize(
    "make",
    [
        lambda: load_config("digits", ["distill.alpha=2"]),
        lambda: (_ for _ in ()).throw(DataError("digits.npz has 3 classes, expected 10")),
        lambda: int("not a number"),
        lambda: (_ for _ in ()).throw(MlflowException("bad", error_code=INVALID_PARAMETER_VALUE)),
        lambda: (_ for _ in ()).throw(RestException({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no run"})),
        lambda: sqlite3.connect(":memory:").execute("select * from missing"),
        lambda: 1 / 0,
    ],
    ids=["config", "data", "value", "mlflow-400", "mlflow-404", "sqlite-sql", "bug"],
)
def test_user_errors_and_bugs_are_not_retried(make):
    assert not is_transient(raised(make))


def test_user_error_caused_by_a_network_error_is_still_a_user_error():
    def wrapped():
        try:
            requests.get("http://127.0.0.1:9/", timeout=2)
        except requests.ConnectionError as e:
            raise ConfigError("runtime.tracking_uri: cannot be reached; check the address") from e

    assert not is_transient(raised(wrapped))


def test_prefect_retry_condition_reads_the_failed_state():
    # Prefect hands retry_condition_fn a Failed state holding the exception (task_engine.can_retry).
    transient = Failed(data=raised(lambda: requests.get("http://127.0.0.1:9/", timeout=2)))
    user = Failed(data=raised(lambda: load_config("digits", ["tune.n_trials=-1"])))
    assert retry_on_transient(None, None, transient) is True
    assert retry_on_transient(None, None, user) is False
