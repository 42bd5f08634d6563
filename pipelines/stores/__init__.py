"""Stores by URL (MLflow tracking, Optuna storage): credentials kept out of words, reachability checked first,
integrity after faults."""
