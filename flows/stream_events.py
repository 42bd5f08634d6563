"""The Prefect event a new batch emits, and the trigger that listens for it (one place for both names)."""

from __future__ import annotations

import logging
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
    # A CLI exits right after: deliver the event first. While it waits, the worker's logger (named after its class)
    # warns "Still processing items: 1 items remaining..." about the very event being sent; that is no news.
    worker_log = logging.getLogger(EventsWorker.__name__)
    level = worker_log.level
    worker_log.setLevel(logging.ERROR)
    try:
        EventsWorker.drain_all(timeout=30)
    finally:
        worker_log.setLevel(level)
    return event is not None
