"""The data stream store: immutable, manifested batches of new data, ingested atomically."""

from pipelines.stream.ingest import IngestResult, ingest
from pipelines.stream.store import SCENARIOS, StoredBatch, StreamError, StreamStore, pipeline_batches, stream_names

__all__ = [
    "IngestResult",
    "SCENARIOS",
    "StoredBatch",
    "StreamError",
    "StreamStore",
    "ingest",
    "pipeline_batches",
    "stream_names",
]
