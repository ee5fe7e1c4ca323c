"""Checks that a study's record (recording.py) can be replayed: a complete grid of the space
it names, two or three objectives, and each trial's curve, config and final values consistent
with one another. Each refusal is one line naming the study, the trial and the field."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from dse.config import TrialConfig
from dse.errors import ConfigError, DseError
from dse.search.records import param_key
from dse.train.result import current_metric
from dse.train.schedules import epoch_batch_sizes

if TYPE_CHECKING:
    from dse.search.recording import RecordedTrial, Recording


def complete_grid(recording: Recording) -> Recording:
    """The record with one trial per grid point (the first to run it in full), or a one-line
    refusal: not a finite space, a point never run in full, a trial without its curve."""
    where = f"study {recording.study}"
    check_objectives(recording, where)
    try:
        space = recording.search_space()
    except (DseError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ConfigError(f"{where}: its stored space does not read ({exc})") from None
    if not space.finite:
        raise ConfigError(f"{where}: its space has continuous ranges: no grid to replay")
    recorded = ([current_metric(n) for n in recording.metric_names], recording.directions)
    if recorded != (space.metric_names, list(space.directions)):
        raise ConfigError(
            f"{where}: objectives {recording.metric_names} {recording.directions} are not its "
            f"space's ({space.metric_names} {list(space.directions)})"
        )
    numbers = [trial.number for trial in recording.trials]
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
        raise ConfigError(f"{where}: trial numbers {numbers} are not all integers")
    if len(set(numbers)) < len(numbers):
        twice = next(n for n in numbers if numbers.count(n) > 1)
        raise ConfigError(f"{where}: trial {twice} is recorded twice")
    by_key: dict[str, RecordedTrial] = {}
    for trial in recording.trials:
        if trial.values is not None and trial.key not in by_key:
            by_key[trial.key] = trial
    grid = [param_key(space.encoded(point)) for point in space.runnable(space.grid())]
    missing = [key for key in grid if key not in by_key]
    if missing:
        raise ConfigError(
            f"{where} is not a complete grid: {len(grid) - len(missing)} of {len(grid)} points "
            f"ran in full ({_why_missing(recording, missing)}); replay needs every point run "
            "in full"
        )
    chosen = [by_key[key] for key in grid]
    for trial in chosen:
        if not trial.config:
            # read as TrialConfig defaults, it would be refused as running another length
            raise ConfigError(
                f"{where}: trial {trial.number} has no config stored with it: replay reads "
                "its epochs and batch sizes from it"
            )
        epochs = (
            trial.config.get("epochs", len(trial.curve)) if isinstance(trial.config, dict) else None
        )
        if not _count(epochs):
            raise ConfigError(
                f"{where}: trial {trial.number}: its config's epochs {epochs!r} is not a "
                "positive whole number"
            )
        if not isinstance(trial.curve, list):
            raise ConfigError(f"{where}: trial {trial.number}: its curve is not a list of epochs")
        if len(trial.curve) < trial.epochs:
            raise ConfigError(
                f"{where}: trial {trial.number} has no per-epoch history ({len(trial.curve)} of "
                f"{trial.epochs} epochs recorded): replay needs each epoch's time and accuracy"
            )
        check_trial(trial, space.metric_names, where)
    return replace(recording, trials=chosen)


def _why_missing(recording: Recording, missing: list[str]) -> str:
    """What became of the grid's points that did not run in full: those MO-ASHA stopped
    (the record holds their stopped trials), the rest failed or never ran."""
    stopped = {trial.key for trial in recording.trials if trial.values is None}
    early = [key for key in missing if key in stopped]
    parts = [f"{len(early)} stopped early"] if early else []
    if len(missing) > len(early):
        parts.append(f"{len(missing) - len(early)} failed or never ran")
    return f"{', '.join(parts)}; missing, say, {missing[0]}"


def check_objectives(recording: Recording, where: str) -> None:
    """Two or three objectives, each named and minimized or maximized (what a hypervolume
    takes), or a one-line refusal."""
    names, directions = recording.metric_names, recording.directions
    ok = (
        isinstance(names, list)
        and isinstance(directions, list)
        and len(names) == len(directions)
        and all(isinstance(n, str) for n in names)
        and all(d in ("minimize", "maximize") for d in directions)
    )
    if not ok:
        raise ConfigError(
            f"{where}: objectives {names} with directions {directions}: expected one direction "
            "(minimize or maximize) per named objective"
        )
    if not 2 <= len(names) <= 3:
        raise ConfigError(
            f"{where}: {len(names)} objective(s) ({', '.join(names)}): a replay compares "
            "hypervolumes, which take 2 or 3 objectives"
        )


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any) -> bool:
    """A positive whole number (an int, not a bool or a float)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_trial(trial: RecordedTrial, metric_names: list[str], where: str) -> None:
    """A grid point's record as a replay reads it: a config; its objective values, finite and
    in range (every metric is >= 0, an accuracy <= 1) and equal to its metrics of those names;
    and at most its config's epochs, numbered 1, 2, ..., with finite times that add up and
    accuracies in [0, 1]; else a one-line refusal naming the trial and the field."""
    at = f"{where}: trial {trial.number}"
    if not isinstance(trial.config, dict) or not isinstance(trial.metrics, dict):
        raise ConfigError(f"{at}: its config and metrics must be mappings")
    values, count = trial.values, len(metric_names)
    if not isinstance(values, list) or len(values) != count or not all(map(_number, values)):
        raise ConfigError(f"{at}: objective values {values}: expected {count} numbers")
    for name, value in zip(metric_names, values, strict=True):
        highest = 1.0 if name.endswith("accuracy") else math.inf
        if not 0 <= value <= highest:
            raise ConfigError(f"{at}: objective {name} {value} is out of range")
        metric = trial.metrics.get(name)
        if _number(metric) and not math.isclose(value, metric, rel_tol=1e-9, abs_tol=1e-12):
            raise ConfigError(f"{at}: objective {name} {value} is not its metric {name} {metric}")
    if not isinstance(trial.epochs, int) or len(trial.curve) > trial.epochs:
        raise ConfigError(f"{at}: {len(trial.curve)} epochs recorded of {trial.epochs!r} run")
    elapsed = 0.0
    for index, point in enumerate(trial.curve, start=1):
        epoch = f"{at}, epoch {index} of its curve"
        if not (_count(point.epoch) and point.epoch == index):
            raise ConfigError(f"{epoch}: numbered {point.epoch!r} (epochs count 1, 2, ...)")
        if not (isinstance(point.batch_size, int) and point.batch_size >= 1):
            raise ConfigError(f"{epoch}: batch_size {point.batch_size!r} is not a positive integer")
        for name in ("epoch_time_s", "elapsed_train_s"):
            seconds = getattr(point, name)
            # an epoch takes time: a zero would make the grid's compute, and shares of it, 0
            if not (_number(seconds) and seconds > 0):
                raise ConfigError(
                    f"{epoch}: {name} {seconds!r} is not a positive number of seconds"
                )
        elapsed += point.epoch_time_s
        if not math.isfinite(elapsed):
            raise ConfigError(f"{epoch}: epoch times 1..{index} add up past any number")
        if not math.isclose(point.elapsed_train_s, elapsed, rel_tol=1e-3, abs_tol=1e-3):
            raise ConfigError(
                f"{epoch}: elapsed_train_s {point.elapsed_train_s} is not the sum of epoch "
                f"times 1..{index} ({elapsed:.6g})"
            )
        if not (_number(point.val_accuracy) and 0 <= point.val_accuracy <= 1):
            raise ConfigError(f"{epoch}: val_accuracy {point.val_accuracy!r} is not in [0, 1]")
    seeds_s = trial.seeds_train_s
    if seeds_s is not None and not (_number(seeds_s) and seeds_s > 0):
        raise ConfigError(f"{at}: seeds_train_s {seeds_s!r} is not a positive number of seconds")
    check_config(trial, at)
    check_against_curve(trial, metric_names, at)


def check_against_curve(trial: RecordedTrial, metric_names: list[str], at: str) -> None:
    """Objectives a run reads off its curve, as it reads them (trainer.py): train_time_s is the
    last epoch's elapsed training time, val_accuracy the best epoch's accuracy, time_to_best_s
    the elapsed time at the first best epoch. A trial of several seeds reports their mean
    accuracy, not its curve's: it is not checked."""
    if trial.config.get("repeats", 1) != 1 or not trial.curve:
        return
    best = max(range(len(trial.curve)), key=lambda i: (trial.curve[i].val_accuracy, -i))
    read = {
        "train_time_s": trial.curve[-1].elapsed_train_s,
        "val_accuracy": trial.curve[best].val_accuracy,
        "time_to_best_s": trial.curve[best].elapsed_train_s,
    }
    for name, value in zip(metric_names, trial.values or (), strict=False):
        expected = read.get(name)
        if expected is not None and not math.isclose(value, expected, rel_tol=1e-3, abs_tol=1e-6):
            raise ConfigError(
                f"{at}: objective {name} {value} is not what its curve gives ({expected:.6g})"
            )


def check_config(trial: RecordedTrial, at: str) -> None:
    """Its config as a replay reads it (MO-ASHA projects a trial's remaining epochs from its
    config's batch sizes): a TrialConfig of its epochs that ran its curve's batch size in each
    recorded epoch, else a one-line refusal."""
    try:
        config = TrialConfig.from_dict(trial.config, source="config")
    except DseError as exc:
        raise ConfigError(f"{at}: its config does not read ({exc})") from None
    if config.epochs != trial.epochs:
        raise ConfigError(f"{at}: its config runs {config.epochs} epochs, not {trial.epochs}")
    planned = epoch_batch_sizes(config)
    for point in trial.curve:
        if planned[point.epoch - 1] != point.batch_size:
            raise ConfigError(
                f"{at}, epoch {point.epoch} of its curve: batch_size {point.batch_size} is not "
                f"its config's ({planned[point.epoch - 1]})"
            )
