"""Studies in a storage: found by name, created or resumed for a space, and their samplers."""

from __future__ import annotations

import warnings
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from dse.errors import ConfigError, StorageError, option
from dse.search.records import StudyRecord, TrialRecord, enqueue_point, param_key
from dse.search.storage import creation_lock
from dse.space import SearchSpace

SAMPLERS = ("grid", "random", "nsga2", "tpe", "gp")

optuna.logging.set_verbosity(optuna.logging.WARNING)


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    try:
        return [s.study_name for s in storage.get_all_studies()]
    except Exception as exc:  # a database without optuna's tables
        raise StorageError(f"the storage holds no dse results ({type(exc).__name__})") from None


def load_study(storage: optuna.storages.BaseStorage, name: str | None) -> optuna.Study:
    """The named study; without a name, the only study in the storage."""
    names = study_names(storage)
    if name is None:
        if len(names) != 1:
            listing = ", ".join(names) if names else "none"
            raise StorageError(
                f"give {option('study')}: the storage holds {len(names)} studies ({listing})"
            )
        name = names[0]
    if name not in names:
        raise StorageError(
            f"{option('study')} {name}: no such study; "
            f"the storage holds: {', '.join(names) or 'none'}"
        )
    return optuna.load_study(study_name=name, storage=storage)


def create_study(
    storage: optuna.storages.BaseStorage,
    name: str,
    space: SearchSpace,
    sampler: optuna.samplers.BaseSampler,
) -> optuna.Study:
    """Create the study, or load it to resume; its objectives must match the space's."""
    url = getattr(storage, "url", "")
    with creation_lock(url):
        return _create_or_load_study(storage, name, space, sampler)


def _create_or_load_study(
    storage: optuna.storages.BaseStorage,
    name: str,
    space: SearchSpace,
    sampler: optuna.samplers.BaseSampler,
) -> optuna.Study:
    if name in study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
        if (
            study.metric_names != space.metric_names
            or [d.name.lower() for d in study.directions] != space.directions
        ):
            raise ConfigError(
                f"study {name!r} exists with objectives {study.metric_names}; the space asks for "
                f"{space.metric_names}: use another {option('study')} or {option('storage')}"
            )
        return study
    study = optuna.create_study(
        storage=storage, study_name=name, directions=space.directions, sampler=sampler
    )
    with warnings.catch_warnings():  # experimental in optuna, and the way to name objectives
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(space.metric_names)
    StudyRecord(study).created(space.raw, [str(c) for c in space.constraints])
    return study


def make_sampler(name: str, seed: int, budget: int | None = None) -> optuna.samplers.BaseSampler:
    """The sampler that proposes new points. Grid points are enqueued, so grid uses random.

    Optuna's model-based samplers start with random trials: TPE and GP 10, NSGA-II a whole
    population of 50. With a CPU-sized budget that is random search under another name (8
    trials of tpe or nsga2 are the 8 points random picks with the same seed). So a known budget
    scales the start: TPE and GP model after a third of it (2 to 10 random trials), and NSGA-II
    breeds generations of half of it (4 to 50).
    """
    startup = 10 if budget is None else min(10, max(2, budget // 3))
    population = 50 if budget is None else min(50, max(4, budget // 2))
    if name in ("grid", "random"):
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    raise ConfigError(
        f"{option('sampler')} {name}: unknown sampler; choose from {', '.join(SAMPLERS)}"
    )


def enqueue_missing(
    study: optuna.Study, space: SearchSpace, points: list[dict[str, Any]], origin: str
) -> None:
    """Queue each point once: skip points already finished, running or queued."""
    present = {
        r.point_key()
        for r in map(TrialRecord, study.get_trials(deepcopy=False))
        if r.is_final() or r.is_pending()
    }
    for point in points:
        params = space.encoded(point)
        if param_key(params) in present:
            continue
        enqueue_point(study, params, origin)
        present.add(param_key(params))


def finished_count(trials: list[FrozenTrial]) -> int:
    """Trials finished for good (TrialRecord.is_final)."""
    return sum(TrialRecord(t).is_final() for t in trials)
