"""Which MLflow store a command reads when no pipeline config names one."""

from __future__ import annotations

import os
from pathlib import Path


def store_uri(store_dir: str) -> str | None:
    """MLFLOW_TRACKING_URI, else the local store under `store_dir`; None when that store does not exist."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    db = Path(store_dir).resolve() / "mlflow.db"
    return f"sqlite:///{db}" if db.is_file() else None
