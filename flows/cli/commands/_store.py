"""Which MLflow store a command reads when no pipeline config names one."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def store_uri(store_dir: str) -> str | None:
    """MLFLOW_TRACKING_URI, else the local store under `store_dir`; None when that store does not exist."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    db = Path(store_dir).resolve() / "mlflow.db"
    return f"sqlite:///{db}" if db.is_file() else None


def existing_store_uri(command: str, store_dir: str, hint: str = "") -> str | None:
    """`store_uri`, or None after saying in one line that there is no store (the caller exits 1)."""
    uri = store_uri(store_dir)
    if uri is None:
        print(
            f"kdflow {command}: no MLflow store in {store_dir}/; {hint}pass --store-dir{',' if hint else ''} or set "
            "MLFLOW_TRACKING_URI",
            file=sys.stderr,
        )
    return uri
