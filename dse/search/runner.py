"""`dse run`: explore a search space with one trial worker per device slot.

The runner is the only process that talks to the study: it asks for trials, hands each
TrialConfig to an idle worker, and records what comes back (values, constraints, metrics,
history, environment, or the error). Decisions use the study as stored, not local memory, so
running the same command again resumes, and several runners can share one study:

- the budget (`planned`) counts finished trials (complete, or failed for a reason of their
  own) plus trials running or queued; finished trials are never redone;
- a grid enqueues each point once (skipping points already finished, running or queued), and
  workers pop queued trials: no duplicates, in parallel;
- a trial whose worker process died is recorded FAIL and retried once; a trial left RUNNING by
  a killed runner goes stale (no heartbeat) and optuna re-queues it.

Written by hand rather than with `Study.optimize(n_jobs=...)` (threads, one device) or a
joblib pool (no way to pin a process to a GPU before CUDA starts in it).
"""

from __future__ import annotations

import socket
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Protocol

import optuna
from optuna.trial import TrialState

from dse.data.sources import locate
from dse.errors import ConfigError, DseError
from dse.search.devices import Slot, cpu_count, plan_slots
from dse.search.study import (
    DEFAULT_STORAGE,
    create_study,
    is_final,
    is_pending,
    make_sampler,
    open_storage,
    param_key,
)
from dse.search.workers import WorkerPool
from dse.space import SearchSpace

POLL_S = 0.5
MAX_WORKER_DEATHS = 1  # retries of a trial whose worker died


class Reporter(Protocol):
    """What a progress display hears from the runner."""

    def start(self, study: str, planned: int, done: int, slots: list[Slot]) -> None: ...
    def trial_started(self, number: int, slot: Slot, params: dict[str, Any]) -> None: ...
    def trial_epoch(self, number: int, epoch: int, epochs: int, val_accuracy: float) -> None: ...
    def trial_finished(
        self, trial: optuna.trial.FrozenTrial, done: int, pareto_size: int
    ) -> None: ...
    def stop(self) -> None: ...


class SilentReporter:
    def start(self, study, planned, done, slots): ...
    def trial_started(self, number, slot, params): ...
    def trial_epoch(self, number, epoch, epochs, val_accuracy): ...
    def trial_finished(self, trial, done, pareto_size): ...
    def stop(self): ...


@dataclass
class RunSummary:
    study: str
    storage: str
    planned: int
    complete: int
    failed: int
    pareto_size: int
    elapsed_s: float
    failures: list[str] = field(default_factory=list)


@dataclass
class _InFlight:
    trial: optuna.Trial
    slot: Slot
    started: float


def choose_sampler(space: SearchSpace, sampler: str | None, n_trials: int | None) -> str:
    """grid for a finite space whose grid fits the budget, else tpe."""
    if sampler is not None:
        if sampler == "grid" and not space.finite:
            raise ConfigError(f"--sampler grid: {space.source} has continuous ranges (no grid)")
        return sampler
    if space.finite:
        budget = n_trials or space.n_trials
        if budget is None or budget >= (space.grid_size() or 0):
            return "grid"
    return "tpe"


def run_study(
    space: SearchSpace,
    storage: str = DEFAULT_STORAGE,
    study_name: str | None = None,
    sampler: str | None = None,
    n_trials: int | None = None,
    seed: int = 0,
    gpus: str | None = None,
    workers: int | None = None,
    data_dir: str | None = None,
    reporter: Reporter | None = None,
    gpu_count: int | None = None,
) -> RunSummary:
    """Run (or resume) the study of `space` until `planned` trials have finished."""
    with warnings.catch_warnings():
        # Heartbeats with ask/tell and fail_stale_trials are what we mean to use.
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        return _run(
            space,
            storage,
            study_name,
            sampler,
            n_trials,
            seed,
            gpus,
            workers,
            data_dir,
            reporter or SilentReporter(),
            gpu_count,
        )


def _run(
    space,
    storage,
    study_name,
    sampler,
    n_trials,
    seed,
    gpus,
    workers,
    data_dir,
    reporter,
    gpu_count,
) -> RunSummary:
    # Everything a user can get wrong is checked before the database is touched.
    if gpu_count is None:
        import torch

        gpu_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    slots = plan_slots(gpus, workers, gpu_count, cpu_count())
    sampler_name = choose_sampler(space, sampler, n_trials)
    sampler_obj = make_sampler(sampler_name, seed)
    grid = space.grid() if sampler_name == "grid" else None
    planned = (
        min(n_trials or space.n_trials or len(grid), len(grid))
        if grid
        else space.planned_trials(n_trials)
    )
    for dataset in _datasets(space):
        locate(dataset, data_dir)

    study = create_study(
        open_storage(storage, create=True), study_name or space.name, space, sampler_obj
    )
    optuna.storages.fail_stale_trials(study)
    if grid is not None:
        _enqueue_missing(study, space, grid[:planned], kind="grid")
    _enqueue_missing(study, space, list(space.points), kind="point")

    start = time.monotonic()
    pool = WorkerPool(slots, data_dir)
    in_flight: dict[int, _InFlight] = {}
    deaths: dict[int, int] = {}
    reporter.start(study.study_name, planned, _count_final(study), slots)
    last_heartbeat = 0.0
    try:
        while True:
            trials = study.get_trials(deepcopy=False)
            done = sum(is_final(t) for t in trials)
            ours = {f.trial._trial_id for f in in_flight.values()}
            waiting = sum(t.state == TrialState.WAITING for t in trials)
            running_elsewhere = sum(
                t.state == TrialState.RUNNING and t._trial_id not in ours for t in trials
            )
            if done >= planned and not in_flight:
                break
            # New trials may be asked for only while the budget has room beyond what is
            # finished, running (here or elsewhere) or queued; queued trials always run.
            room = planned - done - len(in_flight) - running_elsewhere - waiting
            for slot in pool.idle():
                if waiting > 0:
                    waiting -= 1
                elif room > 0:
                    room -= 1
                else:
                    break
                _dispatch(study, space, pool, slot, in_flight, reporter)
            if (
                not in_flight
                and running_elsewhere == 0
                and waiting == 0
                and room <= 0
                and done < planned
            ):
                # Nothing left to run here (e.g. a grid smaller than the budget): stop.
                break
            for message in pool.poll(POLL_S):
                _handle(message, study, space, in_flight, reporter, planned)
            for _slot, number, code in pool.replace_dead():
                if number is not None and number in in_flight:
                    _worker_died(study, in_flight.pop(number), code, deaths)
            if time.monotonic() - last_heartbeat > 1.0:
                _heartbeat(study, in_flight)
                optuna.storages.fail_stale_trials(study)
                last_heartbeat = time.monotonic()
    finally:
        pool.close()
        reporter.stop()
    return _summary(study, storage, planned, time.monotonic() - start)


def _datasets(space: SearchSpace) -> set[str]:
    names = {space.config_for({}).dataset.name}
    for point in space.points:
        names.add(space.config_for(point).dataset.name)
    for axis in space.axes:
        if getattr(axis, "key", None) == "dataset.name" and hasattr(axis, "values"):
            names.update(axis.values)
    return names


def _enqueue_missing(
    study: optuna.Study, space: SearchSpace, points: list[dict[str, Any]], kind: str
) -> None:
    """Queue each point once: skip points already finished, running or queued."""
    present = {
        param_key(t.params)
        for t in study.get_trials(deepcopy=False)
        if is_final(t) or is_pending(t)
    }
    for point in points:
        params = space.encoded(point)
        if param_key(params) in present:
            continue
        study.enqueue_trial(params, user_attrs={"origin": kind})
        present.add(param_key(params))


def _count_final(study: optuna.Study) -> int:
    return sum(is_final(t) for t in study.get_trials(deepcopy=False))


def _dispatch(study, space, pool, slot, in_flight, reporter) -> None:
    trial = study.ask()
    _heartbeat(
        study, {0: _InFlight(trial, slot, 0.0)}
    )  # a trial with no heartbeat never goes stale
    try:
        values = space.suggest(trial)
        config = space.config_for(values, name=f"{study.study_name}-{trial.number}")
    except DseError as exc:  # a sampled combination the config rejects
        trial.set_user_attr("error", f"ConfigError: {exc}")
        study.tell(trial, state=TrialState.FAIL)
        return
    trial.set_user_attr("config", config.to_dict())
    trial.set_user_attr("device", slot.device)
    trial.set_user_attr("slot", slot.label)
    trial.set_user_attr("host", socket.gethostname())
    pool.submit(slot, trial.number, config.to_dict())
    in_flight[trial.number] = _InFlight(trial, slot, time.monotonic())
    reporter.trial_started(trial.number, slot, values)


def _handle(message, study, space, in_flight, reporter, planned) -> None:
    kind = message[0]
    if kind == "epoch":
        _, _, number, epoch, epochs, val_accuracy = message
        reporter.trial_epoch(number, epoch, epochs, val_accuracy)
        return
    if kind not in ("done", "error"):
        return
    number = message[2]
    flight = in_flight.pop(number, None)
    if flight is None:
        return
    trial = flight.trial
    if kind == "done":
        result = message[3]
        metrics = {name: result[name] for name in _metric_names(result)}
        trial.set_user_attr("metrics", metrics)
        trial.set_user_attr("history", result["history"])
        trial.set_user_attr("environment", result["environment"])
        for constraint in space.constraints:
            trial.set_constraint(str(constraint), constraint.violation(metrics))
        study.tell(trial, [metrics[m] for m in space.metric_names])
    else:
        _, _, _, error_kind, text = message
        trial.set_user_attr("error", f"{error_kind}: {text}")
        study.tell(trial, state=TrialState.FAIL)
    trials = study.get_trials(deepcopy=False)
    frozen = next(t for t in trials if t.number == number)
    reporter.trial_finished(frozen, sum(is_final(t) for t in trials), len(study.best_trials))


def _metric_names(result: dict[str, Any]) -> list[str]:
    from dse.train.result import METRICS

    return [m for m in METRICS if m in result]


def _worker_died(study, flight: _InFlight, code: int | None, deaths: dict[int, int]) -> None:
    """Record the trial FAIL with the reason; queue it once more unless it already killed one."""
    trial = flight.trial
    origin = trial.user_attrs.get("retry_of", trial.number)
    deaths[origin] = deaths.get(origin, 0) + 1
    trial.set_user_attr("error", f"worker died (exit code {code}) on {flight.slot.label}")
    retry = deaths[origin] <= MAX_WORKER_DEATHS
    if retry:
        trial.set_user_attr("retried", True)
    study.tell(trial, state=TrialState.FAIL)
    if retry:
        study.enqueue_trial(trial.params, user_attrs={"origin": "retry", "retry_of": origin})


def _heartbeat(study: optuna.Study, in_flight: dict[int, _InFlight]) -> None:
    """Tell the storage our trials are alive (optuna starts no heartbeat for ask/tell)."""
    storage = study._storage  # optuna exposes no public handle; trial ids likewise
    if not hasattr(storage, "record_heartbeat"):
        return
    for flight in in_flight.values():
        storage.record_heartbeat(flight.trial._trial_id)


def _summary(study: optuna.Study, storage: str, planned: int, elapsed: float) -> RunSummary:
    trials = study.get_trials(deepcopy=False)
    failures = [
        f"trial {t.number}: {t.user_attrs.get('error')}"
        for t in trials
        if t.state == TrialState.FAIL and is_final(t)
    ]
    return RunSummary(
        study=study.study_name,
        storage=storage,
        planned=planned,
        complete=sum(t.state == TrialState.COMPLETE for t in trials),
        failed=len(failures),
        pareto_size=len(study.best_trials),
        elapsed_s=elapsed,
        failures=failures,
    )
