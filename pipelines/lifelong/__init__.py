"""Retraining a pipeline's champion on the batches ingested for it: lineage, the continual and refit policies, the
retraining decision."""
