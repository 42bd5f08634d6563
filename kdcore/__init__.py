"""kdcore: pure PyTorch building blocks for knowledge distillation (no Prefect, no MLflow)."""
