"""Studies in a storage: found by name, created or resumed for a space, and their samplers."""

from __future__ import annotations

import contextlib
import random
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from dse.errors import ConfigError, DseError, StorageError, choose_from, option
from dse.search.optuna_private import (
    fail_as_stale,
    has_heartbeats,
    stale_trials,
    writable_trial,
)
from dse.search.outage import DEFAULT_OUTAGE_LIMIT_S, shown_url
from dse.search.processes import has_ended
from dse.search.records import StudyRecord, TrialRecord, enqueue_point, param_key
from dse.search.storage import STALE_RETRIES, close_storage, creation_lock, open_storage
from dse.space import SearchSpace
from dse.train.result import current_metric

SAMPLERS = ("grid", "random", "nsga2", "tpe", "gp")

optuna.logging.set_verbosity(optuna.logging.WARNING)


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    try:
        return [s.study_name for s in storage.get_all_studies()]
    except DseError:  # the database went away (resilient.py)
        raise
    except Exception as exc:  # a database without optuna's tables
        raise StorageError(f"the storage holds no dse results ({type(exc).__name__})") from None


def open_to_read(
    url: str, outage_limit: float = DEFAULT_OUTAGE_LIMIT_S, open_wait_s: float = 0.0
) -> optuna.storages.BaseStorage:
    """A storage to read studies from, nothing created in it; one without a study (an empty
    journal file, a database whose run was never started) is one line naming it."""
    opened = open_storage(url, False, outage_limit, open_wait_s)
    if not study_names(opened):
        close_storage(opened)
        raise StorageError(
            f"{option('storage')} {shown_url(url)}: no studies in it yet (run `dse run` first)"
        )
    return opened


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
    extend: bool = False,
) -> optuna.Study:
    """Create the study, or load it to resume. Its objectives must match the space's, and so
    must the rest of the space it was made with, unless `extend` adds this space to it."""
    url = getattr(storage, "url", "")
    with creation_lock(url):
        if name not in study_names(storage):
            return _create(storage, name, space, sampler)
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
        if [current_metric(name) for name in study.metric_names or []] != space.metric_names or [
            d.name.lower() for d in study.directions
        ] != space.directions:
            raise ConfigError(
                f"study {name!r} exists with objectives {study.metric_names}; the space asks for "
                f"{space.metric_names}: use another {option('study')} or {option('storage')}"
            )
        _check_same_space(study, space, extend)
        return study


def _create(
    storage: optuna.storages.BaseStorage,
    name: str,
    space: SearchSpace,
    sampler: optuna.samplers.BaseSampler,
) -> optuna.Study:
    study = optuna.create_study(
        storage=storage, study_name=name, directions=space.directions, sampler=sampler
    )
    with warnings.catch_warnings():  # experimental in optuna, and the way to name objectives
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(space.metric_names)
    record = StudyRecord(study)
    record.created(space.raw, [str(c) for c in space.constraints])
    record.add_fingerprint(space.fingerprint(), new_study=True)
    return study


def _check_same_space(study: optuna.Study, space: SearchSpace, extend: bool) -> None:
    """A study resumed with another space would count its trials toward the new one's grid
    and budget: refuse, unless asked to extend the study with the new space."""
    record = StudyRecord(study)
    fingerprint = space.fingerprint()
    if any(not known.differences(fingerprint) for known in record.fingerprints()):
        return
    differences = record.fingerprints()[-1].differences(fingerprint)
    differ = ", ".join(differences)
    extendable = all(d.startswith("axes") for d in differences)
    if not extend and extendable:
        raise ConfigError(
            f"study {study.study_name!r} was run with another space ({differ} differ): use "
            f"another {option('study')}, or {option('extend')} to add this space's points to "
            "it (only they count toward this run's budget)"
        )
    if not extend:  # --extend would be refused below: the base, objectives, constraints stay
        raise ConfigError(
            f"study {study.study_name!r} was run with another space ({differ} differ): use "
            f"another {option('study')}"
        )
    if not extendable:
        raise ConfigError(
            f"study {study.study_name!r}: {option('extend')} adds points, so the base, "
            f"objectives and constraints must stay ({differ} differ): use another "
            f"{option('study')}"
        )
    record.add_fingerprint(fingerprint)


def recorded_distributions(study: optuna.Study) -> dict[str, BaseDistribution]:
    """Each parameter's distribution as the study's trials recorded it."""
    recorded: dict[str, BaseDistribution] = {}
    for trial in study.get_trials(deepcopy=False):
        recorded.update(trial.distributions)
    return recorded


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
        # A choice's own parameters exist in some trials only; GP samples them at random, and
        # would otherwise warn so once per parameter and trial (dozens of lines a run)
        return optuna.samplers.GPSampler(
            seed=seed, n_startup_trials=startup, warn_independent_sampling=False
        )
    raise ConfigError(choose_from(option("sampler"), name, SAMPLERS))


def runner_seed(seed: int, runner: int) -> int:
    """The sampler seed of the study's `runner`-th run: several runs of one study with the same
    seed would otherwise propose the same points; its first run keeps `seed` (reproducible)."""
    if runner == 0:
        return seed
    return random.Random(f"{seed}:runner {runner}").getrandbits(32)


def enqueue_missing(
    study: optuna.Study,
    space: SearchSpace,
    points: list[dict[str, Any]],
    origin: str,
    up_to: int | None = None,
) -> None:
    """Queue each point once: skip points already finished, running or queued. With `up_to`,
    queue the first missing points only until that many of `points` are present (a grid cut by
    the budget: a study resumed with another seed or budget keeps the points it has run and
    adds the new order's first others, not a second prefix beside the first)."""
    present = set(present_points(study.get_trials(deepcopy=False)))
    keys = [param_key(space.encoded(point)) for point in points]
    held = sum(key in present for key in keys)
    for point, key in zip(points, keys, strict=True):
        if up_to is not None and held >= up_to:
            return
        if key in present:
            continue
        enqueue_point(study, space.encoded(point), origin)
        present.add(key)
        held += 1


def completed_on_grid(
    points: list[dict[str, Any]], grid: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each point that leaves axes to be sampled, as the first grid point (in queue order) that
    agrees with it: a grid run's sampler would complete it to a grid point the grid queues too,
    so it ran as a repeat of that later grid trial, not first (and took a budget place)."""
    completed: list[dict[str, Any]] = []
    for point in points:
        match = (
            g
            for g in grid
            if g not in completed and all(k in g and g[k] == v for k, v in point.items())
        )
        completed.append(next(match, point))
    return completed


def present_points(trials: Iterable[FrozenTrial], besides: int | None = None) -> dict[str, int]:
    """The points finished or pending (running or queued) among `trials`, by key, each with
    the first trial that ran it; trial `besides` left out (the one being checked)."""
    present: dict[str, int] = {}
    for record in map(TrialRecord, trials):
        if record.number != besides and (record.is_final() or record.is_pending()):
            present.setdefault(record.point_key(), record.number)
    return present


def finished_count(trials: list[FrozenTrial]) -> int:
    """Trials finished for good (TrialRecord.is_final)."""
    return sum(TrialRecord(t).is_final() for t in trials)


def over_budget(trials: list[FrozenTrial], number: int, planned: int) -> bool:
    """Whether trial `number` is beyond the budget: `planned` counted trials (finished,
    running or queued) have lower numbers. The storage numbers trials in the order they
    are created, so runners sharing a study agree on which trials are in, without a lock;
    a queued point popped by ask() has its old, low number and always runs."""
    records = map(TrialRecord, trials)
    counted = sum(r.number < number and (r.is_final() or r.is_pending()) for r in records)
    return counted >= planned


@dataclass(frozen=True)
class Counting:
    """Which of a study's trials count toward a run of `space`: all of them, or, in a study
    extended with several spaces, those whose point lies in `space`."""

    space: SearchSpace
    extended: bool

    @classmethod
    def of(cls, study: optuna.Study, space: SearchSpace) -> Counting:
        return cls(space, StudyRecord(study).extended)

    def trials(self, study: optuna.Study) -> list[FrozenTrial]:
        trials = study.get_trials(deepcopy=False)
        if not self.extended:
            return trials
        return [t for t in trials if self.space.contains(TrialRecord(t).point)]


def fail_stale(study: optuna.Study) -> None:
    """optuna's stale check (a trial without a heartbeat past the grace period is failed, and
    its point re-queued up to STALE_RETRIES times), after writing on each such trial why it
    failed and how long it ran (optuna would give it no reason, and the time until it was
    marked as its duration). A journal file has no heartbeats: see fail_orphans."""
    if not has_heartbeats(study):
        fail_orphans(study)
        return
    stale = stale_trials(study)
    if not stale:  # the usual case, every second of a run: one query, as optuna's check alone
        return
    now = datetime.now()
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    for trial, silent_s in stale:
        last_beat = now - timedelta(seconds=silent_s)
        ran_s = max(0.0, (last_beat - trial.datetime_start).total_seconds())
        history = RetryHeartbeatStaleTrialCallback.retry_history(by_number[trial.number])
        with contextlib.suppress(UpdateFinishedTrialError):  # its runner finished it meanwhile
            TrialRecord(trial).went_stale(silent_s, ran_s, retried=len(history) < STALE_RETRIES)
    fail_as_stale(study, [trial for trial, _ in stale])  # these, not any stale since


def fail_orphans(study: optuna.Study) -> None:
    """A RUNNING trial whose runner was a process of this host that has ended (killed, so it
    could not record the trial) is failed with that reason, and its point queued again to
    resume from its checkpoint. For storages without heartbeats (journal files), where
    such a trial would otherwise stay RUNNING and every later run wait for it for ever."""
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        runner = TrialRecord(frozen).runner
        if runner is None or not has_ended(runner):
            continue
        record = TrialRecord(writable_trial(study, frozen))
        try:
            record.fail(f"stale: its runner {runner} is gone (killed or crashed)")
            record.mark_retried()
            study.tell(frozen.number, state=TrialState.FAIL)
        except (UpdateFinishedTrialError, ValueError):
            continue  # another runner failed it first, and queued it
        record.enqueue_retry(study, record.retry_of, "runner gone")
