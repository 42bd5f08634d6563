"""A throwaway folder for one benchmark run: its MLflow (SQLite), Optuna and cache stores, and the working directory."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def private_store(prefix: str = "kdflow-bench-") -> Iterator[str]:
    """Yields the `runtime.store_dir=...` override; MLflow writes beside it, and nothing outlives the block."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        cwd, uri = os.getcwd(), os.environ.get("MLFLOW_TRACKING_URI")
        os.chdir(tmp)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        try:
            yield f"runtime.store_dir={tmp}/store"
        finally:
            os.chdir(cwd)
            if uri is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = uri
