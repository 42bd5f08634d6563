"""The Optuna search: the study and its search space, tuning workers and their processes, trial groups, Pareto
front, cost and fit checks."""
