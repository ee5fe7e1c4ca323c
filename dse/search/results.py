"""Reading a study: the Pareto set, hypervolume history (the trials table: trials_table.py;
picks and exported configs: picks.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from dse.errors import ConfigError, StorageError, option
from dse.search.columns import PARAMS_PREFIX, in_column_order
from dse.search.durations import gpu_hours_text, seconds_text
from dse.search.pareto import GrowingFront, non_dominated
from dse.search.records import StudyRecord, TrialRecord
from dse.search.robust import DEFAULT_RESAMPLES, nondominated_probability
from dse.search.storage import DEFAULT_OUTAGE_LIMIT_S
from dse.search.study import load_study, open_to_read, study_names
from dse.train.result import COUNT_METRICS, current_metric


@dataclass(frozen=True)
class StudyView:
    """A loaded study with its objectives, for the read-only commands."""

    study: optuna.Study

    @property
    def metric_names(self) -> list[str]:
        names = self.study.metric_names  # an old study may hold a metric's older name
        if names:
            return [current_metric(name) for name in names]
        return [f"objective_{i}" for i in range(len(self.study.directions))]

    @property
    def directions(self) -> list[str]:
        return [d.name.lower() for d in self.study.directions]

    @property
    def calibration(self) -> dict[str, Any] | None:
        """The latest `dse calibrate` result a run of the study stored."""
        return StudyRecord(self.study).calibration

    def front_threads(self) -> set[int]:
        """The torch threads the front's trials trained with (their calibration's concern)."""
        threads = (TrialRecord(t).threads for t in self.front())
        return {n for n in threads if n is not None}

    def trials(self) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False)

    def complete(self) -> list[FrozenTrial]:
        """The complete trials with finite objective values: the results. A value of ±inf
        (stored by hand, or by a tool other than dse) is no result, and is left out."""
        return [t for t in self.trials() if t.state == TrialState.COMPLETE and finite(t)]

    def non_finite(self) -> list[FrozenTrial]:
        """The complete trials left out of every result for a non-finite objective value."""
        return [t for t in self.trials() if t.state == TrialState.COMPLETE and not finite(t)]

    def feasible(self) -> list[FrozenTrial]:
        """The complete trials that meet every constraint (the front is chosen among them)."""
        return [t for t in self.complete() if meets_constraints(t)]

    def axes(self) -> list[str]:
        """The parameter names the study's trials set (its axes, sub-axes included), sorted."""
        return sorted({name for t in self.trials() for name in t.params})

    def front(self) -> list[FrozenTrial]:
        """The Pareto set of the feasible complete trials (optuna's `best_trials`, less the
        trials with non-finite values), ordered by the first objective."""
        feasible = self.feasible()
        members = non_dominated([t.values for t in feasible], self.directions)
        return sorted((feasible[i] for i in members), key=lambda t: (t.values[0], t.number))


def finite(trial: FrozenTrial) -> bool:
    return trial.values is not None and all(math.isfinite(v) for v in trial.values)


def meets_constraints(trial: FrozenTrial) -> bool:
    return all(v <= 0 for v in trial.constraints.values())


def open_view(
    storage: str,
    study: str | None,
    outage_limit: float = DEFAULT_OUTAGE_LIMIT_S,
    open_wait_s: float = 0.0,
) -> StudyView:
    """A study to read; a database server that does not answer yet is waited for up to
    `open_wait_s`, and one that goes away while it is read up to `outage_limit`."""
    return StudyView(load_study(open_to_read(storage, outage_limit, open_wait_s), study))


def check_front_objectives(view: StudyView) -> None:
    """A front and its hypervolume need 2 or 3 objectives (a dse space has them)."""
    count = len(view.directions)
    if count not in (2, 3):
        raise StorageError(
            f"study {view.study.study_name!r} has {count} objective{'s' * (count != 1)}: "
            "a Pareto front and its hypervolume need 2 or 3"
        )


def non_finite_note(view: StudyView) -> str | None:
    """Which complete trials every result leaves out for a non-finite value, and why."""
    left_out = view.non_finite()
    if not left_out:
        return None
    which = []
    for t in left_out:
        values = objective_values(view, t).items()
        which.append(
            f"trial {t.number} " + ", ".join(f"{m}={v}" for m, v in values if not math.isfinite(v))
        )
    return f"left out of the front and the hypervolume, not finite: {'; '.join(which)}"


def params_as_run(trial: FrozenTrial) -> dict[str, Any]:
    """The trial's params; a `--retry-oom` retry ran its point at half the batch, so its batch
    schedule's params are read from the config it ran (the front showed batch 50 for a run of
    25, beside the run of 25 it repeats)."""
    params = dict(trial.params)
    record = TrialRecord(trial)
    if record.half_batch and record.config is not None:
        for name in params:
            key = name.split("@")[0].split("#")[0]  # the config key of `KEY@choice`, `KEY#2`
            section, _, field = key.partition(".")
            if section == "batch_schedule" and field in record.config[section]:
                params[name] = record.config[section][field]
    return params


def objective_values(view: StudyView, trial: FrozenTrial) -> dict[str, float]:
    """The trial's objectives by metric name; a count as the integer `dse trials` shows."""
    return named_values(view.metric_names, trial.values)


def named_values(names: list[str], values: list[float]) -> dict[str, float]:
    """Values by metric name; a count as the integer `dse trials` shows."""
    pairs = zip(names, values, strict=True)
    return {m: int(v) if m in COUNT_METRICS and math.isfinite(v) else v for m, v in pairs}


def values_text(values: dict[str, float]) -> str:
    """`n_params 12,345, val_accuracy 0.9812`: the line a user reads, ints as ints."""
    return ", ".join(f"{m} {number_text(v)}" for m, v in values.items())


def number_text(value: float) -> str:
    """4 significant digits; a large value with all its digits (12,345.6 s, not 1.235e+04)."""
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.1f}" if math.isfinite(value) and abs(value) >= 1000 else f"{value:.4g}"


def failed_constraints(trial: FrozenTrial) -> list[str]:
    """The constraints (as the space file writes them) a complete trial does not meet."""
    return [name for name, excess in trial.constraints.items() if excess > 0]


def seed_values(view: StudyView, trial: FrozenTrial) -> list[list[float]]:
    """The trial's objective vectors, one per seed (its values alone without repeats)."""
    per_seed = TrialRecord(trial).per_seed
    if not per_seed:
        return [list(trial.values)]
    return [[seed[m] for m in view.metric_names] for seed in per_seed]


def robustness(view: StudyView, resamples: int = DEFAULT_RESAMPLES) -> dict[int, float]:
    """Each feasible complete trial's probability of being non-dominated, by a bootstrap over
    its seeds (dse/search/robust.py); empty when no trial has repeats."""
    trials = view.feasible()
    values = [seed_values(view, t) for t in trials]
    if all(len(v) == 1 for v in values):
        return {}
    probabilities = nondominated_probability(values, view.directions, resamples)
    return {t.number: p for t, p in zip(trials, probabilities, strict=True)}


def pareto_rows(view: StudyView, robust: float | None = None) -> list[dict[str, Any]]:
    """One object per front member: number, objective values by metric name, params.

    With repeats also each objective's std over the seeds (None where the seeds give none) and
    `p_nondominated`; `robust` keeps only members whose probability is at least that.
    """
    chance = robustness(view)
    if robust is not None and not chance:
        raise ConfigError(
            f"{option('robust')} {robust}: study {view.study.study_name!r} has no repeats to "
            f"resample (run with {option('repeats')} K or `repeats: K` in the space)"
        )
    rows = []
    for t in view.front():
        if robust is not None and chance[t.number] < robust:
            continue
        values: dict[str, Any] = {"number": t.number, **objective_values(view, t)}
        if chance:
            std = TrialRecord(t).seed_std
            # None where the seeds give no std (costs of fused seeds: one standalone run)
            values |= {f"{m}_std": std.get(m) for m in view.metric_names}
            values["p_nondominated"] = chance[t.number]
        row = {c: values[c] for c in in_column_order(values, view.metric_names)}
        row["params"] = params_as_run(t)
        rows.append(row)
    return rows


def front_header(view: StudyView, rows: list[dict[str, Any]]) -> list[str]:
    """The columns of the front `rows` as a table (CSV), in the order `dse trials` shows them:
    number, the objectives (with repeats each beside its std, then p_nondominated), a
    params_* column per axis of the study: every row has them all, whatever its params."""
    given = [key for row in rows for key in row if key != "params"]
    params = [f"{PARAMS_PREFIX}{axis}" for axis in view.axes()]
    return in_column_order(["number", *view.metric_names, *given, *params], view.metric_names)


REFERENCE_RULE = "worst observed value of each objective (complete trials) + 10% of its range"


def reference_point(view: StudyView) -> list[float] | None:
    """The hypervolume's reference point: the space file's `reference_point` if it gives one,
    else derived from the data (REFERENCE_RULE, so every front member adds volume); None
    before any trial is complete.
    """
    given = StudyRecord(view.study).reference_point
    if given:
        return [float(given[m]) for m in view.metric_names]
    values = [t.values for t in view.complete()]
    if not values:
        return None
    return worst_plus_margin(values, view.directions)


def worst_plus_margin(values: list[list[float]], directions: list[str]) -> list[float]:
    """The worst value of each objective, pushed 10% of its range further (REFERENCE_RULE)."""
    ref = []
    for i, direction in enumerate(directions):
        column = [v[i] for v in values]
        low, high = min(column), max(column)
        margin = 0.1 * (high - low) or 0.1 * abs(high) or 1.0
        ref.append(high + margin if direction == "minimize" else low - margin)
    return ref


def reference_from(view: StudyView) -> str:
    if StudyRecord(view.study).reference_point:
        return "the space file"
    return REFERENCE_RULE


def ran_on_gpu(view: StudyView) -> bool:
    return any(str(TrialRecord(t).device or "").startswith("cuda") for t in view.trials())


@dataclass(frozen=True)
class HypervolumePoint:
    finished: int  # trials finished so far, in the order they finished (this one included)
    number: int  # the trial that finished
    state: str
    compute_s: float  # training seconds of every trial finished so far (stopped, failed too)
    hypervolume: float  # of the feasible complete trials finished so far


FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def hypervolume_history(
    view: StudyView, reference: list[float] | None = None
) -> list[HypervolumePoint]:
    """Hypervolume after each finished trial, in the order trials finished, with the compute
    spent so far. `reference` defaults to reference_point(view)."""
    ref = reference if reference is not None else reference_point(view)
    finished = sorted(
        (t for t in view.trials() if t.state in FINISHED and not TrialRecord(t).never_ran),
        key=lambda t: (t.datetime_complete or t.datetime_start, t.number),
    )
    history, compute, volume = [], 0.0, 0.0
    front = GrowingFront(view.directions, ref) if ref else None
    for i, t in enumerate(finished, start=1):
        compute += TrialRecord(t).train_seconds()
        counts = t.state == TrialState.COMPLETE and finite(t) and meets_constraints(t)
        if front is not None and counts:
            volume = front.add(t.values)
        history.append(HypervolumePoint(i, t.number, t.state.name, compute, volume))
    return history


@dataclass(frozen=True)
class HypervolumeSummary:
    hypervolume: float
    reference: list[float] | None
    reference_from: str
    finished: int
    compute_s: float  # training seconds of all finished trials
    gpu: bool  # trials ran on GPUs: compute reads as GPU-hours

    def describe(self, names: list[str]) -> str:
        if self.reference is None:
            return "hypervolume: no complete trial yet"
        ref = ", ".join(f"{n}={v:.4g}" for n, v in zip(names, self.reference, strict=True))
        spent = (
            gpu_hours_text(self.compute_s)
            if self.gpu
            else f"{seconds_text(self.compute_s)} training seconds"
        )
        trials = "1 trial" if self.finished == 1 else f"{self.finished} trials"
        return (
            f"hypervolume {self.hypervolume:.6g} (reference point {ref}: {self.reference_from}); "
            f"{trials} finished, {spent}"
        )


def hypervolume_summary(view: StudyView) -> HypervolumeSummary:
    ref = reference_point(view)
    history = hypervolume_history(view, ref)
    last = history[-1] if history else None
    return HypervolumeSummary(
        hypervolume=last.hypervolume if last else 0.0,
        reference=ref,
        reference_from=reference_from(view),
        finished=len(history),
        compute_s=last.compute_s if last else 0.0,
        gpu=ran_on_gpu(view),
    )


def study_rows(storage: str) -> list[dict[str, Any]]:
    """Studies in a storage, with trial counts by state; `uncounted`: FAIL records `dse run`
    does not count as failed (attempts retried, samples never trained: repeats, invalid
    configs)."""
    backend = open_to_read(storage)
    rows = []
    for name in study_names(backend):
        study = optuna.load_study(study_name=name, storage=backend)
        trials = study.get_trials(deepcopy=False)
        count = {state: sum(t.state == state for t in trials) for state in TrialState}
        # failed for good, as `dse run` counts them (the docstring says what the rest are)
        failed = sum(t.state == TrialState.FAIL and TrialRecord(t).is_final() for t in trials)
        rows.append(
            {
                "study": name,
                "objectives": ", ".join(study.metric_names or []),
                "trials": len(trials),
                "complete": count[TrialState.COMPLETE],
                "stopped": count[TrialState.PRUNED],  # by MO-ASHA
                "failed": failed,
                "uncounted": count[TrialState.FAIL] - failed,
                "running": count[TrialState.RUNNING],
                "waiting": count[TrialState.WAITING],
                "pareto": len(StudyView(study).front()),
            }
        )
    return rows
