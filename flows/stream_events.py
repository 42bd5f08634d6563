"""The Prefect event a new batch emits, and the trigger that listens for it (one place for both names)."""

from __future__ import annotations

import os

ARRIVED = "kdflow.data.arrived"
RESOURCE_PREFIX = "kdflow.stream."


def emit_arrival(
    stream: str, batch_id: str, store_dir: str, classes: list[str], counts: dict, pipeline: str | None = None
) -> bool:
    """Send `kdflow.data.arrived` for `stream` (bound to `pipeline`, if any) to the configured Prefect server;
    False if none is configured.

    Without PREFECT_API_URL there is no server whose automations could react, so nothing is sent
    (Prefect would otherwise start a throw-away local server just to drop the event).
    """
    if not os.environ.get("PREFECT_API_URL"):
        from prefect.settings import PREFECT_API_URL

        if not PREFECT_API_URL.value():
            return False
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker

    event = emit_event(
        event=ARRIVED,
        resource={
            "prefect.resource.id": RESOURCE_PREFIX + stream,
            "prefect.resource.name": stream,
            "kdflow.pipeline": pipeline or "",
        },
        payload={
            "batch_id": batch_id,
            "store_dir": store_dir,
            "classes": classes,
            "counts": counts,
            "pipeline": pipeline or "",
        },
    )
    EventsWorker.drain_all(timeout=30)  # a CLI exits right after: deliver the event first
    return event is not None
