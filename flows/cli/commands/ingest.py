"""`kdflow ingest PATH --pipeline NAME`: a batch of new data for a pipeline's champion, stored atomically, then the
kdflow.data.arrived event naming the pipeline."""

from __future__ import annotations

import functools
from pathlib import Path

from flows.cli.commands._lifelong import lifelong_errors
from pipelines.stream import SCENARIOS
from pipelines.stream.readers import FORMATS


def add_parser(commands) -> None:
    ingest = commands.add_parser(
        "ingest", help="add a batch of new data for a pipeline's champion (and emit kdflow.data.arrived)"
    )
    ingest.add_argument(
        "path",
        type=Path,
        help="an image folder (one subfolder per class), a .pt / .npz file with inputs and "
        "labels, or texts: a .csv / .jsonl file with text and label, or a folder of .txt files per class",
    )
    ingest.add_argument(
        "--pipeline",
        help="the pipeline whose champion learns this batch (`kdflow run --preset NAME` made it); "
        "the batch must fit its model",
    )
    ingest.add_argument(
        "--stream",
        help="stream name (letters, digits, - and _), for several streams per pipeline; default: the pipeline's name",
    )
    ingest.add_argument("--store", default="mlruns", help="stream store root (default: mlruns)")
    ingest.add_argument("--scenario", default="class-il", choices=SCENARIOS, help="set by a stream's first batch")
    ingest.add_argument("--test-fraction", type=float, default=0.2, help="held-out share of each class (default 0.2)")
    ingest.add_argument(
        "--format",
        dest="fmt",
        default="auto",
        choices=FORMATS,
        help="batch format (default: from the path: folder contents or file suffix)",
    )
    ingest.add_argument("--text-column", default="text", help="CSV column / JSONL key of the text (default: text)")
    ingest.add_argument("--label-column", default="label", help="CSV column / JSONL key of the label (default: label)")
    ingest.set_defaults(handler=lifelong_errors(run_ingest))


def run_ingest(args) -> int:
    from flows.stream_events import emit_arrival
    from pipelines.stream import StreamError, ingest
    from pipelines.stream.readers import TextColumns

    if not args.pipeline:  # a stream has no model of its own: its batches are learned by the pipeline they name
        raise StreamError("name the pipeline whose champion learns this batch: --pipeline NAME")
    args.stream = args.stream or args.pipeline
    import mlflow

    from pipelines.lifelong.continual import store_tracking_uri
    from pipelines.lifelong.lineage import check_fits_champion

    mlflow.set_tracking_uri(store_tracking_uri(args.store))
    fits = functools.partial(check_fits_champion, args.pipeline)
    r = ingest(
        args.path,
        args.store,
        args.stream,
        args.scenario,
        args.test_fraction,
        args.fmt,
        TextColumns(args.text_column, args.label_column),
        pipeline=args.pipeline,
        fits=fits,
    )
    if r.duplicate:
        print(
            f"duplicate: every sample of {args.path} is already stored (batches {', '.join(r.dropped_from)} of "
            f"stream {args.stream}); nothing ingested"
        )
        return 0
    if r.dropped:
        held = f" (already in batches {', '.join(r.dropped_from)})" if r.dropped_from else ""
        print(f"dropped {r.dropped} sample(s) of {args.path} already stored{held}; ingesting the rest")
    print(
        f"ingested {args.path} into stream {args.stream} for pipeline {args.pipeline} as batch {r.batch_id}: "
        f"classes {', '.join(r.classes)}; "
        f"train {sum(r.counts['train'].values())}, test {sum(r.counts['test'].values())}"
    )
    sent = emit_arrival(
        args.stream, r.batch_id, str(Path(args.store).resolve()), r.classes, r.counts, pipeline=args.pipeline
    )
    print("event kdflow.data.arrived sent" if sent else "no Prefect server configured (PREFECT_API_URL): no event sent")
    return 0
