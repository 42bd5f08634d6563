"""MLflow conventions and the evidence a run logs: runs and params, killed runs closed, summaries, per-class
reports, dataset inputs, model timing."""
