"""The Prefect server that `kdflow serve` and `kdflow deploy` talk to."""

from __future__ import annotations

import os
import sys

from flows.local_ui import DEFAULT_MLFLOW_PORT

DEFAULT_PREFECT_PORT = 4200
__all__ = ["DEFAULT_MLFLOW_PORT", "DEFAULT_PREFECT_PORT", "DEFAULT_API_URL", "connect_prefect"]
DEFAULT_API_URL = f"http://127.0.0.1:{DEFAULT_PREFECT_PORT}/api"


def connect_prefect(command: str) -> str | None:
    """The Prefect API to use (PREFECT_API_URL, else the `kdflow ui` server); None, with a message, if none answers."""
    if not os.environ.get("PREFECT_API_URL"):
        from prefect.settings import PREFECT_API_URL  # a URL from the user's Prefect profile also counts

        os.environ["PREFECT_API_URL"] = PREFECT_API_URL.value() or DEFAULT_API_URL
    url = os.environ["PREFECT_API_URL"].rstrip("/")
    from flows.local_ui import healthy
    from pipelines.tracking.runs import redact

    if not healthy(f"{url}/health"):
        print(
            f"kdflow {command}: no Prefect server answers at {redact(url)}; start one with `kdflow ui` "
            f"(or `prefect server start`) or point PREFECT_API_URL at yours",
            file=sys.stderr,
        )
        return None
    return url
