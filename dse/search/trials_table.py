"""`dse trials`' table: a row per trial, its columns typed (in a module of its own: pandas
costs 0.4 s to load, and the runner, which imports results.py, never needs it)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from optuna.trial import TrialState

from dse.search.columns import PARAMS_PREFIX, in_column_order
from dse.search.records import TrialRecord
from dse.search.results import StudyView, meets_constraints, params_as_run
from dse.train.result import METRICS


def trials_frame(view: StudyView) -> pd.DataFrame:
    """A row per trial, its columns in the order `dse pareto` shows them (in_column_order):
    number, state, the objectives (with repeats each beside its std over the seeds), the other
    metrics, params_* columns, then where it ran, how long, its compile seconds (compiled
    trials), why it failed."""
    trials = view.trials()
    repeats = any(TrialRecord(t).seed_std for t in trials)
    metrics = [
        c for m in METRICS for c in ([m, f"{m}_std"] if repeats and m in view.metric_names else [m])
    ]
    rows = []
    for t in trials:
        record = TrialRecord(t)
        row: dict[str, Any] = {"number": t.number, "state": t.state.name}
        values = record.metrics | {f"{m}_std": v for m, v in record.seed_std.items()}
        row.update({m: values.get(m) for m in metrics})
        row.update({f"{PARAMS_PREFIX}{k}": v for k, v in params_as_run(t).items()})
        # judged on complete trials only: a stopped or failed one has no final metrics to meet
        row["feasible"] = meets_constraints(t) if t.state == TrialState.COMPLETE else None
        row["device"] = record.device
        row["slot"] = record.slot
        row["host"] = record.host
        duration = t.duration.total_seconds() if t.duration else None
        row["duration_s"] = record.ran_s if record.ran_s is not None else duration
        compiled = math.fsum(epoch.compile_s for epoch in record.history)
        row["compile_s"] = compiled or None  # compiled trials only (config compile)
        row["stopped_at"] = record.stopped_at
        row["error"] = record.error
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(
            columns=in_column_order(["number", "state", *metrics], view.metric_names)
        )
    for column in frame.columns:  # ints stay ints next to missing values, floats floats
        present = {type(row[column]) for row in rows if row.get(column) is not None}
        if present == {int}:  # pandas' convert_dtypes made whole floats ints too: 1.0 as 1
            frame[column] = frame[column].astype("Int64")
        elif present == {bool}:
            frame[column] = frame[column].astype("boolean")
    return frame[in_column_order(frame.columns, view.metric_names)]
