"""Exploration: studies in an optuna storage, the runner, and Pareto analysis.

`from dse.search import run_study` drives a run from Python as `dse run` does. The runner
loads on that first use, not with the package: a worker process imports dse.search.workers,
and the runner's optuna, sqlalchemy and pandas would cost every worker a second at its start."""

from __future__ import annotations

from typing import Any

__all__ = ["RunSummary", "run_study"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from dse.search import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
