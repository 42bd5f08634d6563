"""Training one model in its own MLflow run: thread budgets, progress events, multi-process (DDP) teachers,
refitting on train+val."""
