"""Exploration: studies in an optuna storage, the runner, and Pareto analysis.

Nothing is imported here: a worker process imports dse.search.workers, and loading the
runner with it (optuna, pandas) would cost every worker a second at its start."""
