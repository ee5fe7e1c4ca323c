"""Exploration: studies in an optuna storage, the runner, and Pareto analysis."""

from dse.search.runner import RunSummary, run_study

__all__ = ["RunSummary", "run_study"]
