"""The data stream store: immutable, manifested batches of new data, ingested atomically."""

from pipelines.stream.ingest import IngestResult, ingest
from pipelines.stream.store import SCENARIOS, StoredBatch, StreamError, StreamStore, stream_names

__all__ = ["IngestResult", "SCENARIOS", "StoredBatch", "StreamError", "StreamStore", "ingest", "stream_names"]
