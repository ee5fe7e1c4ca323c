"""The one column order of the reading commands: `dse trials`, `dse pareto` and the front `dse run`
prints show the columns they share in the same order (a user comparing their tables or joining
their CSVs finds each column where the other put it)."""

from __future__ import annotations

from collections.abc import Iterable

from dse.train.result import METRICS

PARAMS_PREFIX = "params_"  # a trial's parameter as a column: params_model.routing_iterations


def in_column_order(columns: Iterable[str], objectives: list[str]) -> list[str]:
    """`columns` in the shared order: the trial's number and state; its objectives in the
    study's order, each beside its std over the seeds; how likely it is non-dominated; the
    other metrics (in METRICS' order); its parameters by name; then the rest (where and how
    it ran, why it failed) in the order given."""
    given = list(dict.fromkeys(columns))
    scores = [c for m in objectives for c in (m, f"{m}_std")]
    leading = ["number", "state", *scores, "p_nondominated", *METRICS]
    head = [c for c in dict.fromkeys(leading) if c in given]
    params = sorted(c for c in given if c.startswith(PARAMS_PREFIX))
    return [*head, *params, *(c for c in given if c not in head and c not in params)]
