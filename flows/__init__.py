"""flows: Prefect flows and tasks around the pipeline stages, and the `kdflow` command line."""
