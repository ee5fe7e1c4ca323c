"""A study's portable record: what a replay (replay.py) needs of a finished study, as one
compressed JSON file (`dse replay --save-record FILE` writes it, `--record FILE` reads it).

The record holds the space (the file as parsed: axes, objectives, constraints, reference point),
the parameter distributions the study recorded, and each trial that ran: its number, params,
TrialConfig, per-epoch curve (EpochPoints) and final metrics and objective values (None for a
trial stopped early); a trial of several seeds also all its seeds' training seconds. A replay
needs every grid point run in full, with its curve; a record of anything less is refused when
read from a study (`complete=True`), except where a caller asks for the trials as they are
(the fidelity test replays a study that MO-ASHA stopped early).
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import asdict, dataclass, field, replace
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import distribution_to_json, json_to_distribution
from optuna.trial import TrialState

from dse.config import TrialConfig
from dse.errors import ConfigError, DseError, option
from dse.files import publish
from dse.search.records import EpochPoint, StudyRecord, TrialRecord, param_key
from dse.search.storage import close_storage
from dse.search.study import load_study, open_to_read
from dse.space import SearchSpace
from dse.space.parse import parse_space
from dse.train.result import current_metric
from dse.train.schedules import epoch_batch_sizes

FORMAT = "dse-record/1"


@dataclass(frozen=True)
class RecordedTrial:
    """One trial of the record: a grid point, run in full (or stopped, values None)."""

    number: int
    params: dict[str, Any]
    config: dict[str, Any]
    curve: list[EpochPoint]
    values: list[float] | None  # the objectives, in the study's order; None if stopped
    metrics: dict[str, float] = field(default_factory=dict)
    # a trial of several seeds: all its seeds' training seconds (its curve is the first seed's)
    seeds_train_s: float | None = None

    @property
    def key(self) -> str:
        return param_key(self.params)

    @property
    def epochs(self) -> int:
        return int(self.config.get("epochs", len(self.curve)))

    @property
    def compute_s(self) -> float:
        return self.curve[-1].elapsed_train_s if self.curve else 0.0

    def over_all_seeds(self) -> RecordedTrial:
        """Its curve stretched to take all its seeds' training seconds: a trial's seeds all
        train on its worker, so a replay's clock and compute count them (as `dse pareto`)."""
        if self.seeds_train_s is None or self.config.get("repeats", 1) == 1 or not self.curve:
            return self
        scale = self.seeds_train_s / self.curve[-1].elapsed_train_s
        curve = [
            replace(
                p, epoch_time_s=p.epoch_time_s * scale, elapsed_train_s=p.elapsed_train_s * scale
            )
            for p in self.curve
        ]
        return replace(self, curve=curve)


@dataclass(frozen=True)
class Recording:
    """A study's portable record (see the module doc)."""

    study: str
    space: dict[str, Any]  # the space file as parsed (YAML data)
    metric_names: list[str]
    directions: list[str]
    distributions: dict[str, str]  # optuna's JSON of each parameter's distribution
    trials: list[RecordedTrial]
    format: str = FORMAT

    def search_space(self) -> SearchSpace:
        """The space the study ran, named as its trials' params name it."""
        space = parse_space(self.space, f"the record of study {self.study}")
        recorded = {k: json_to_distribution(v) for k, v in self.distributions.items()}
        return space.with_param_names(recorded)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for trial in data["trials"]:  # a single seed's: written as before the field was
            if trial["seeds_train_s"] is None:
                del trial["seeds_train_s"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str) -> Recording:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigError(f"{source}: not a dse record ({FORMAT})")
        trials = data.pop("trials", None)
        if not isinstance(trials, list):
            raise ConfigError(f"{source}: a damaged dse record (no list of trials)")
        read = []
        for index, raw in enumerate(trials):
            try:
                trial = RecordedTrial(**raw)
                read.append(replace(trial, curve=[EpochPoint(**p) for p in trial.curve]))
            except (TypeError, KeyError, AttributeError):
                fields = ", ".join(f.name for f in dataclass_fields(RecordedTrial))
                raise ConfigError(
                    f"{source}: a damaged dse record (its trial #{index + 1} is not a mapping "
                    f"of {fields}, with a curve of epoch mappings)"
                ) from None
        try:
            recording = cls(**data, trials=read)
        except TypeError as exc:
            raise ConfigError(f"{source}: a damaged dse record ({exc})") from None
        if not (isinstance(recording.study, str) and recording.study.strip()):
            raise ConfigError(
                f"{source}: a damaged dse record (study {recording.study!r}: expected its name)"
            )
        for trial in recording.trials:
            if not isinstance(trial.params, dict) or not isinstance(trial.config, dict):
                raise ConfigError(
                    f"{source}: a damaged dse record (trial {trial.number}: params and config "
                    "must be mappings)"
                )
        return recording


def save_record(recording: Recording, path: str | Path) -> Path:
    """gzip-compressed JSON where the name ends in .gz, else plain JSON (load_record reads both)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(recording.to_json(), separators=(",", ":"))
    if path.suffix != ".gz":
        return publish(path, text)
    # mtime 0: the same record compresses to the same bytes (shipped records diff cleanly)
    return publish(path, gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))


def load_record(path: str | Path) -> Recording:
    """A record written by save_record (gzip-compressed JSON; plain JSON reads too)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{option('record')} {path}: is a directory, not a record file")
    if not path.is_file():
        raise ConfigError(f"{option('record')} {path}: no such file")
    try:
        raw = path.read_bytes()
        text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        data = json.loads(text)
    except (OSError, ValueError, EOFError, RecursionError) as exc:
        raise ConfigError(f"{option('record')} {path}: not readable ({exc})") from None
    return Recording.from_json(data, f"{option('record')} {path}")


def record_study(storage: str, study_name: str | None, complete: bool = True) -> Recording:
    """The record of a stored study; with `complete`, a grid whose every point ran in full with
    its per-epoch curve, else refused (ConfigError)."""
    opened = open_to_read(storage)
    try:
        study = load_study(opened, study_name)
        return recording_of(study, complete)
    finally:
        close_storage(opened)


def recording_of(study: optuna.Study, complete: bool = True) -> Recording:
    raw = StudyRecord(study).space
    name = study.study_name
    if not raw:
        raise ConfigError(f"study {name}: no space stored with it: nothing to replay")
    distributions: dict[str, str] = {}
    trials = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            continue
        distributions.update({k: distribution_to_json(d) for k, d in trial.distributions.items()})
        record = TrialRecord(trial)
        values = list(trial.values) if trial.state == TrialState.COMPLETE else None
        config = record.config or {}
        seeds_s = record.train_seconds() if config.get("repeats", 1) != 1 else None
        trials.append(
            RecordedTrial(
                trial.number,
                dict(trial.params),
                config,
                record.curve,
                values,
                record.metrics,
                seeds_s,
            )
        )
    recording = Recording(
        study=name,
        space=raw,
        metric_names=list(study.metric_names or []),
        directions=[d.name.lower() for d in study.directions],
        distributions=distributions,
        trials=trials,
    )
    if complete:
        return complete_grid(recording)
    return recording


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
