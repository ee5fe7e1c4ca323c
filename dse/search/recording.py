"""A study's portable record: what a replay (replay.py) needs of a finished study, as one
compressed JSON file (`dse replay --save-record FILE` writes it, `--record FILE` reads it).

The record holds the space (the file as parsed: axes, objectives, constraints, reference point),
the parameter distributions the study recorded, and each trial that ran: its number, params,
TrialConfig, per-epoch curve (EpochPoints) and final metrics and objective values (None for a
trial stopped early); a trial of several seeds also all its seeds' training seconds. A replay
needs every grid point run in full, with its curve: record_checks.complete_grid refuses a record
of anything less (the fidelity test replays the trials as they are, a study that MO-ASHA
stopped early).
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import asdict, dataclass, field, replace
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import distribution_to_json, json_to_distribution
from optuna.trial import TrialState

from dse.errors import ConfigError, option
from dse.files import publish
from dse.search.records import EpochPoint, StudyRecord, TrialRecord, param_key
from dse.search.storage import close_storage
from dse.search.study import load_study, open_to_read
from dse.space import SearchSpace
from dse.space.parse import parse_space

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
    where = f"{option('record')} {path}"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read ({exc.strerror or exc})") from None
    try:
        text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, zlib.error) as exc:  # cut short, or bytes changed on the way
        raise ConfigError(f"{where}: a damaged gzip file ({exc})") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{where}: not a dse record (not JSON: {exc})") from None
    return Recording.from_json(data, where)


def record_study(storage: str, study_name: str | None) -> Recording:
    """The record of a stored study, its complete and stopped trials as they are (a replay
    takes it through record_checks.complete_grid)."""
    opened = open_to_read(storage)
    try:
        study = load_study(opened, study_name)
        return recording_of(study)
    finally:
        close_storage(opened)


def recording_of(study: optuna.Study) -> Recording:
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
    return Recording(
        study=name,
        space=raw,
        metric_names=list(study.metric_names or []),
        directions=[d.name.lower() for d in study.directions],
        distributions=distributions,
        trials=trials,
    )
