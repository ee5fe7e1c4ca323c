"""The trial `dse export` takes (a front member picked, or one by number), its config, and the
line that says what it is worth."""

from __future__ import annotations

from optuna.trial import FrozenTrial, TrialState

from dse.config import TrialConfig
from dse.errors import ConfigError, StorageError, choose_from, option
from dse.search.pareto import knee
from dse.search.records import TrialRecord
from dse.search.results import StudyView, failed_constraints, objective_values, values_text

PICKS = ("knee", "fastest", "most-accurate")
PICK_METRICS = {"fastest": "train_time_s", "most-accurate": "val_accuracy"}  # what each ranks by


def pick(view: StudyView, how: str) -> FrozenTrial:
    """A front member: the knee, the fastest (train_time_s) or the most accurate (val_accuracy)."""
    front = view.front()
    if not front:
        raise StorageError(
            f"study {view.study.study_name!r} has no complete feasible trial to pick"
        )
    if how == "knee":
        return front[knee([t.values for t in front], view.directions)]
    metric = PICK_METRICS.get(how)
    if metric is None:
        raise ConfigError(choose_from(option("pick"), how, PICKS))
    sign = -1 if how == "most-accurate" else 1
    return min(front, key=lambda t: (sign * ranked_value(view, t, how), t.number))


def ranked_value(view: StudyView, trial: FrozenTrial, how: str) -> float:
    """The metric a pick ranks by: recorded by dse, or else an objective of that name (a study
    made by optuna alone records no metrics)."""
    metric = PICK_METRICS[how]
    value = TrialRecord(trial).metrics.get(metric, objective_values(view, trial).get(metric))
    if value is None:
        raise StorageError(
            f"{option('pick')} {how}: trial {trial.number} has no recorded {metric} to rank by"
        )
    return value


def trial_by_number(view: StudyView, number: int) -> FrozenTrial:
    trials = view.trials()
    for t in trials:
        if t.number == number:
            return t
    held = f"numbers 0..{len(trials) - 1}" if trials else "it has no trials yet"
    raise StorageError(
        f"{option('trial')} {number}: study {view.study.study_name!r} has no such trial ({held})"
    )


PICK_LABELS = {"knee": "the knee", "fastest": "the fastest", "most-accurate": "the most accurate"}


def describe_choice(view: StudyView, trial: FrozenTrial, how: str | None = None) -> str:
    """Which trial an export took and what it is worth: a line for the user; a warning for a
    trial that did not complete (its config ran, but gave no result to trust)."""
    if trial.state != TrialState.COMPLETE:
        record = TrialRecord(trial)
        why = f" ({record.error})" if record.error else ""
        if record.stopped_at is not None:
            why = f" (stopped early at epoch {record.stopped_at})"
        return f"warning: trial {trial.number} is {trial.state.name}{why}, not a complete result"
    values = values_text(objective_values(view, trial))
    if how is not None:
        size = len(view.front())
        ranked_by = _ranked_by(view, trial, how)
        return (
            f"trial {trial.number}: {PICK_LABELS[how]} of the front's {size} ({values}{ranked_by})"
        )
    on_front = trial.number in {t.number for t in view.front()}
    failed = failed_constraints(trial)
    if failed:
        return f"trial {trial.number}: {values}; infeasible ({', '.join(failed)} fails)"
    return f"trial {trial.number}: {values}; {'on' if on_front else 'not on'} the front"


def _ranked_by(view: StudyView, trial: FrozenTrial, how: str) -> str:
    """`; train_time_s 12.3`: the metric a pick ranked by, when it is not among the objectives
    the line shows already."""
    metric = PICK_METRICS.get(how)
    value = TrialRecord(trial).metrics.get(metric) if metric is not None else None
    if value is None or metric in view.metric_names:
        return ""
    return f"; {values_text({metric: value})}"


def exported_config(trial: FrozenTrial) -> TrialConfig:
    config = TrialRecord(trial).config
    if config is None:
        raise StorageError(
            f"trial {trial.number} has no recorded config (state {trial.state.name})"
        )
    return TrialConfig.from_dict(config, source=f"trial {trial.number}")
