"""pipelines: the stages as plain functions, the config, and the MLflow / Optuna conventions."""
