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
  a killed runner goes stale (no heartbeat) and optuna re-queues it;
- with retry_oom, a trial that ran out of device memory is recorded FAIL and retried once at
  half the batch size (`TrialConfig.with_half_batch`); the retry's `retry_of` names it;
- setting up (schema, study, queued points) happens under a lock on the storage (locks.py),
  so runners started at the same instant on several hosts queue each grid point once;
- every epoch is kept in the trial's `curve` attribute; with early stopping (MO-ASHA, see
  moasha.py) the runner decides at each rung from the `rungs` records of the study's trials,
  stores its decision in the trial's `rungs` attribute (so a resumed or shared study ranks
  against it), and answers the waiting worker. A stopped trial is told PRUNED, its last
  objective values kept in `values_at_stop`: optuna takes no values with PRUNED, and keeps
  PRUNED trials off the Pareto front.

Trials run on local worker processes (workers.py, `--backend local`) or on a Dask cluster
(dask_pool.py, `--backend dask`): two pools with one interface, driven by the same loop.

Written by hand rather than with `Study.optimize(n_jobs=...)` (threads, one device) or a
joblib pool (no way to pin a process to a GPU before CUDA starts in it).
"""

from __future__ import annotations

import contextlib
import socket
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Protocol

import optuna
from optuna.trial import TrialState

from dse.errors import ConfigError, DseError
from dse.search.devices import Slot, cpu_count, plan_slots
from dse.search.locks import setup_lock
from dse.search.moasha import EarlyStop, EpochPoint, RungRecord, decide, rung_values
from dse.search.study import (
    DEFAULT_STORAGE,
    close_storage,
    create_study,
    is_final,
    is_pending,
    make_sampler,
    open_storage,
    param_key,
    point_key,
)
from dse.search.workers import WorkerPool
from dse.space import Choice, SearchSpace
from dse.train.result import METRICS
from dse.train.schedules import batch_size_at

POLL_S = 0.5
MAX_WORKER_DEATHS = 1  # retries of a trial whose worker died
MAX_INVALID_SAMPLES = 50  # sampled points in a row that are not valid configs


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
    stopped: int = 0  # stopped early at a rung (PRUNED)


@dataclass
class _InFlight:
    trial: optuna.Trial
    slot: Slot
    started: float
    batch_sizes: tuple[int, ...] = ()  # per epoch, from the trial's batch schedule
    curve: list[EpochPoint] = field(default_factory=list)
    rungs: dict[str, dict[str, Any]] = field(default_factory=dict)  # decisions, by rung


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


@dataclass(frozen=True)
class RunOptions:
    """What `dse run` was asked, besides the space."""

    storage: str = DEFAULT_STORAGE
    study_name: str | None = None
    sampler: str | None = None
    n_trials: int | None = None
    seed: int = 0
    gpus: str | None = None
    workers: int | None = None
    data_dir: str | None = None
    calibration: dict[str, Any] | None = None  # from `dse calibrate`, stored with the study
    retry_oom: bool = False  # retry an out-of-memory trial once at half the batch size
    backend: str = "local"  # local | dask
    scheduler: str | None = None  # the Dask scheduler's address, for backend dask
    gpus_per_trial: int | None = None  # dask: GPUs a trial asks for (default: 1 if declared)
    early_stop: EarlyStop | None = None  # MO-ASHA rungs and eta; None runs every trial in full


def run_study(
    space: SearchSpace,
    options: RunOptions | None = None,
    reporter: Reporter | None = None,
    gpu_count: int | None = None,
    **kwargs: Any,
) -> RunSummary:
    """Run (or resume) the study of `space` until its planned trials have finished.

    Options come as a RunOptions or as its fields by keyword. `gpu_count` overrides the
    number of CUDA devices seen (tests of GPU slot planning).
    """
    options = options or RunOptions(**kwargs)
    if gpu_count is None:
        import torch

        gpu_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with warnings.catch_warnings():
        # Heartbeats with ask/tell and fail_stale_trials are what we mean to use.
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        runner = _Runner(space, options, reporter or SilentReporter(), gpu_count)
        return runner.run()


class _Runner:
    def __init__(self, space: SearchSpace, options: RunOptions, reporter: Reporter, gpu_count: int):
        # Everything a user can get wrong is checked before the database is touched.
        self.space, self.options, self.reporter = space, options, reporter
        self.pool: Any = None
        self.storage: optuna.storages.BaseStorage | None = None
        _check_backend(options)
        if options.backend == "local":
            self.slots = plan_slots(options.gpus, options.workers, gpu_count, cpu_count())
        self.early_stop = options.early_stop
        if self.early_stop is not None:
            self.early_stop.check(space.metric_names, space.source)
            if space.config_for({}).repeats > 1:
                raise ConfigError(
                    f"{space.source}: --early-stop with repeats: rungs compare one training "
                    "curve per trial; use one or the other"
                )
        sampler = choose_sampler(space, options.sampler, options.n_trials)
        self.grid = space.grid() if sampler == "grid" else None
        if self.grid is not None:
            budget = options.n_trials or space.n_trials or len(self.grid)
            self.planned = min(budget, len(self.grid))
        else:
            self.planned = space.planned_trials(options.n_trials)
        self.sampler = make_sampler(sampler, options.seed, self.planned)
        if options.backend == "local":
            from dse.data.datasets import check_files  # imports torch

            for dataset in _datasets(space):
                check_files(dataset, options.data_dir)
        else:  # the cluster trains: its workers need the data, this host need not have it
            from dse.search.dask_pool import DaskPool

            self.pool = DaskPool.connect(
                options.scheduler, options.gpus_per_trial, options.data_dir, _datasets(space)
            )
            self.slots = self.pool.slots
        self.in_flight: dict[int, _InFlight] = {}
        self.deaths: dict[int, int] = {}  # worker deaths by original trial number
        self.invalid_in_a_row = 0

    def run(self) -> RunSummary:
        try:
            return self._run()
        finally:
            if self.pool is not None:
                self.pool.close()
            if self.storage is not None:
                close_storage(self.storage)

    def _run(self) -> RunSummary:
        name = self.options.study_name or self.space.name
        with setup_lock(self.options.storage):
            self.storage = open_storage(self.options.storage, create=True)
            self.study = create_study(self.storage, name, self.space, self.sampler)
            if self.options.calibration is not None:  # the latest measured noise, for pareto
                self.study.set_user_attr("calibration", self.options.calibration)
            optuna.storages.fail_stale_trials(self.study)
            if self.early_stop is not None:
                rule = {"rule": "moasha", "rungs": list(self.early_stop.rungs)}
                self.study.set_user_attr("early_stop", {**rule, "eta": self.early_stop.eta})
            if self.grid is not None:
                _enqueue_missing(self.study, self.space, self.grid[: self.planned], kind="grid")
            _enqueue_missing(self.study, self.space, list(self.space.points), kind="point")

        start = time.monotonic()
        if self.pool is None:
            self.pool = WorkerPool(self.slots, self.options.data_dir)
        done = sum(is_final(t) for t in self.study.get_trials(deepcopy=False))
        self.reporter.start(name, self.planned, done, self.slots)
        try:
            self._loop()
        finally:
            self.reporter.stop()
        return _summary(self.study, self.options.storage, self.planned, time.monotonic() - start)

    def _loop(self) -> None:
        last_heartbeat = 0.0
        while True:
            trials = self.study.get_trials(deepcopy=False)
            done = sum(is_final(t) for t in trials)
            ours = {f.trial._trial_id for f in self.in_flight.values()}
            waiting = sum(t.state == TrialState.WAITING for t in trials)
            elsewhere = sum(
                t.state == TrialState.RUNNING and t._trial_id not in ours for t in trials
            )
            if done >= self.planned and not self.in_flight:
                return
            # New trials may be asked for only while the budget has room beyond what is
            # finished, running (here or elsewhere) or queued; queued trials always run.
            room = self.planned - done - len(self.in_flight) - elsewhere - waiting
            room = self._fill_idle_slots(waiting, room)
            if not self.in_flight and not elsewhere and not waiting and room <= 0:
                return  # nothing left to run (a grid smaller than the budget, say)
            # A trial of ours that a stale check already failed (our heartbeats stalled past
            # the grace period: a starved host, a database pause) has a retry queued, which
            # runs instead: its late result is dropped, not a crash.
            for message in self.pool.poll(POLL_S):
                with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                    self._handle(message)
            for _slot, number, reason in self.pool.replace_dead():
                if number is not None and number in self.in_flight:
                    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                        self._worker_died(self.in_flight.pop(number), reason)
            if time.monotonic() - last_heartbeat > 1.0:
                self._heartbeat()
                optuna.storages.fail_stale_trials(self.study)
                last_heartbeat = time.monotonic()

    def _fill_idle_slots(self, waiting: int, room: int) -> int:
        """Start a trial on each idle slot while there is queued work or budget; returns room."""
        for slot in self.pool.idle():
            if waiting > 0:
                waiting -= 1
            elif room > 0:
                room -= 1
            else:
                break
            if self._dispatch(slot):
                self.invalid_in_a_row = 0
                continue
            self.invalid_in_a_row += 1
            if self.invalid_in_a_row >= MAX_INVALID_SAMPLES:
                raise ConfigError(
                    f"{self.space.source}: {self.invalid_in_a_row} sampled points in a row were "
                    "not valid configs (see `dse trials`): constrain the axes"
                )
            break  # re-read the study before asking again
        return room

    def _dispatch(self, slot: Slot) -> bool:
        """Ask for a trial and start it on `slot`; False when the sample is not a valid config."""
        trial = self.study.ask()
        flight = _InFlight(trial, slot, time.monotonic())
        self._heartbeat([flight])  # a trial that never had a heartbeat never goes stale
        if self._over_budget(trial.number):
            # Another runner took the last place in the budget between our count and our ask.
            trial.set_user_attr("withdrawn", True)
            self.study.tell(trial, state=TrialState.FAIL)
            return True
        try:
            values = self.space.suggest(trial)
            config = self.space.config_for(values, name=f"{self.study.study_name}-{trial.number}")
            if trial.user_attrs.get("half_batch"):
                config = config.with_half_batch()
        except DseError as exc:
            # A sampled combination the config rejects (say warm_adabatch with a fixed batch):
            # recorded, not counted against the budget; the sampler draws again.
            trial.set_user_attr("error", f"ConfigError: {exc}")
            trial.set_user_attr("invalid", True)
            self.study.tell(trial, state=TrialState.FAIL)
            return False
        try:
            trial.set_user_attr("config", config.to_dict())
            trial.set_user_attr("device", slot.device)
            trial.set_user_attr("slot", slot.label)
            trial.set_user_attr("host", socket.gethostname())
            for key in ("curve", "rungs"):  # a retry is enqueued with its failed run's attributes
                if key in trial.user_attrs:
                    trial.set_user_attr(key, [] if key == "curve" else {})
        except optuna.exceptions.UpdateFinishedTrialError:
            return True  # failed as stale by another runner meanwhile, and queued again
        flight.batch_sizes = tuple(
            batch_size_at(config.batch_schedule, e) for e in range(config.epochs)
        )
        rungs = ()
        if self.early_stop is not None:
            rungs = tuple(r for r in self.early_stop.rungs if r < config.epochs)
        self.pool.submit(slot, trial.number, config.to_dict(), rungs)
        self.in_flight[trial.number] = flight
        self.reporter.trial_started(trial.number, slot, values)
        return True

    def _over_budget(self, number: int) -> bool:
        """Whether trial `number` is beyond the budget: `planned` counted trials (finished,
        running or queued) have lower numbers. The storage numbers trials in the order they
        are created, so runners sharing a study agree on which trials are in, without a lock;
        a queued point popped by ask() has its old, low number and always runs."""
        trials = self.study.get_trials(deepcopy=False)
        counted = sum(t.number < number and (is_final(t) or is_pending(t)) for t in trials)
        return counted >= self.planned

    def _handle(self, message: tuple) -> None:
        kind = message[0]
        if kind == "started":  # a Dask trial landed: record its worker, host and device
            flight = self.in_flight.get(message[2])
            if flight is not None:
                for key, value in message[3].items():
                    flight.trial.set_user_attr(key, value)
            return
        if kind == "epoch":
            self._epoch(message)
            return
        if kind not in ("done", "error"):
            return
        flight = self.in_flight.pop(message[2], None)
        if flight is None:
            return
        try:
            self._record(flight.trial, message)
        except optuna.exceptions.UpdateFinishedTrialError:
            return  # failed as stale by another runner meanwhile, and queued again: it reruns
        self._report_finished(flight.trial.number)

    def _record(self, trial: optuna.Trial, message: tuple) -> None:
        if message[0] == "done":
            result = message[3]
            metrics = {name: result[name] for name in METRICS}
            trial.set_user_attr("metrics", metrics)
            trial.set_user_attr("history", result["history"])
            trial.set_user_attr("environment", result["environment"])
            if result.get("per_seed"):  # repeats: each seed's metrics, and their std
                trial.set_user_attr("per_seed", result["per_seed"])
                trial.set_user_attr("seed_std", result["seed_std"])
            if "dask_worker" in result["environment"]:  # where it ran, should the start be missed
                for key in ("slot", "device", "host", "dask_worker"):
                    trial.set_user_attr(key, result["environment"][key])
            values = [metrics[m] for m in self.space.metric_names]
            if result.get("stopped_at") is not None:
                trial.set_user_attr("stopped_at", result["stopped_at"])
                trial.set_user_attr("values_at_stop", values)
                self.study.tell(trial, state=TrialState.PRUNED)
            else:
                for constraint in self.space.constraints:
                    trial.set_constraint(str(constraint), constraint.violation(metrics))
                self.study.tell(trial, values)
        else:
            _, _, _, error_kind, text = message
            trial.set_user_attr("error", f"{error_kind}: {text}")
            retry = (
                error_kind == "out of memory"
                and self.options.retry_oom
                and not trial.user_attrs.get("half_batch")  # once
            )
            if retry:
                trial.set_user_attr("retried", True)
            self.study.tell(trial, state=TrialState.FAIL)
            if retry:
                self._enqueue_retry(
                    trial, trial.number, retry_reason="out of memory", half_batch=True
                )

    # --- early stopping (MO-ASHA) ---------------------------------------------------------------

    def _epoch(self, message: tuple) -> None:
        """Keep the epoch in the trial's curve; at a rung, decide and answer the worker."""
        _, slot_index, number, epoch, epochs, val_accuracy, elapsed, epoch_time, batch = message
        self.reporter.trial_epoch(number, epoch, epochs, val_accuracy)
        waits = self.early_stop is not None and self.early_stop.decides_at(epoch, epochs)
        flight = self.in_flight.get(number)
        if flight is None:  # not ours any more (its worker was replaced): let it stop
            if waits:
                self.pool.decide(slot_index, proceed=False)
            return
        flight.curve.append(EpochPoint(epoch, batch, epoch_time, elapsed, val_accuracy))
        try:
            flight.trial.set_user_attr("curve", [p.to_dict() for p in flight.curve])
        except optuna.exceptions.UpdateFinishedTrialError:
            # Failed as stale meanwhile (its heartbeat lapsed) and re-queued: no longer ours.
            self.in_flight.pop(number)
            if waits:
                self.pool.decide(slot_index, proceed=False)
            return
        if waits:
            self.pool.decide(slot_index, self._rung_decision(flight, epoch))

    def _rung_decision(self, flight: _InFlight, rung: int) -> bool:
        """Rank the trial among the study's records at `rung`; store the decision with it."""
        assert self.early_stop is not None
        key = str(rung)
        trials = [
            t
            for t in self.study.get_trials(deepcopy=False)
            # not a failed run's numbers, nor a queued retry's copy of them
            if t.state in (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)
            and t.number != flight.trial.number
        ]
        earlier = [
            RungRecord(t.number, tuple(t.user_attrs["rungs"][key]["values"]))
            for t in trials
            if key in t.user_attrs.get("rungs", {})
        ]
        others = [[EpochPoint(**p) for p in t.user_attrs.get("curve", [])] for t in trials]
        values = rung_values(self.space.metric_names, flight.curve, flight.batch_sizes, others)
        newcomer = RungRecord(flight.trial.number, values)
        decision = decide(rung, newcomer, earlier, self.space.directions, self.early_stop.eta)
        flight.rungs[key] = decision.to_attr()
        flight.trial.set_user_attr("rungs", flight.rungs)
        return decision.proceed

    def _report_finished(self, number: int) -> None:
        trials = self.study.get_trials(deepcopy=False)
        frozen = next(t for t in trials if t.number == number)
        done = sum(is_final(t) for t in trials)
        self.reporter.trial_finished(frozen, done, len(self.study.best_trials))

    def _worker_died(self, flight: _InFlight, reason: str) -> None:
        """Record the trial FAIL with the reason; queue it again unless it already killed one."""
        trial = flight.trial
        origin = trial.user_attrs.get("retry_of", trial.number)
        self.deaths[origin] = self.deaths.get(origin, 0) + 1
        where = trial.user_attrs.get("slot", flight.slot.label)
        trial.set_user_attr("error", f"worker died ({reason}) on {where}")
        retry = self.deaths[origin] <= MAX_WORKER_DEATHS
        if retry:
            trial.set_user_attr("retried", True)
        self.study.tell(trial, state=TrialState.FAIL)
        if retry:
            self._enqueue_retry(trial, origin, retry_reason="worker died")
        self._report_finished(trial.number)

    def _enqueue_retry(self, trial: optuna.Trial, origin: int, **attrs: Any) -> None:
        """Queue the trial's point again; the retry's attributes link it to `origin`."""
        attrs = {"origin": "retry", "retry_of": origin, "point": dict(trial.params), **attrs}
        self.study.enqueue_trial(trial.params, user_attrs=attrs)

    def _heartbeat(self, flights: list[_InFlight] | None = None) -> None:
        """Tell the storage our trials are alive (optuna starts no heartbeat for ask/tell)."""
        storage = self.study._storage  # optuna exposes no public handle, nor trial ids
        if not hasattr(storage, "record_heartbeat"):
            return  # journal storages have no heartbeats
        for flight in flights if flights is not None else list(self.in_flight.values()):
            storage.record_heartbeat(flight.trial._trial_id)


BACKENDS = ("local", "dask")


def _check_backend(options: RunOptions) -> None:
    """Flag combinations of --backend, before anything starts."""
    if options.backend not in BACKENDS:
        raise ConfigError(f"--backend {options.backend}: choose from {', '.join(BACKENDS)}")
    if options.backend == "local":
        if options.scheduler is not None or options.gpus_per_trial is not None:
            flag = "--scheduler" if options.scheduler is not None else "--gpus-per-trial"
            raise ConfigError(f"{flag} needs --backend dask")
        return
    if options.scheduler is None:
        raise ConfigError("--backend dask needs --scheduler tcp://HOST:8786")
    if options.early_stop is not None:
        raise ConfigError(
            "--early-stop with --backend dask: rung decisions reach local workers only "
            "(use --backend local, or several `dse run` on one PostgreSQL study)"
        )
    if options.gpus is not None or options.workers is not None:
        flag = "--gpus" if options.gpus is not None else "--workers"
        raise ConfigError(
            f"{flag} with --backend dask: the Dask workers decide (use --gpus-per-trial)"
        )


def _datasets(space: SearchSpace) -> set[str]:
    """The datasets the space's trials use, checked for presence before the run starts."""
    names = {space.config_for({}).dataset.name}
    for point in space.points:
        names.add(space.config_for(point).dataset.name)
    for axis in space.axes:
        if isinstance(axis, Choice) and axis.key == "dataset.name":
            names.update(axis.values)
    return names


def _enqueue_missing(
    study: optuna.Study, space: SearchSpace, points: list[dict[str, Any]], kind: str
) -> None:
    """Queue each point once: skip points already finished, running or queued."""
    present = {
        point_key(t) for t in study.get_trials(deepcopy=False) if is_final(t) or is_pending(t)
    }
    for point in points:
        params = space.encoded(point)
        if param_key(params) in present:
            continue
        study.enqueue_trial(params, user_attrs={"origin": kind, "point": params})
        present.add(param_key(params))


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
        stopped=sum(t.state == TrialState.PRUNED for t in trials),
        failed=len(failures),
        pareto_size=len(study.best_trials),
        elapsed_s=elapsed,
        failures=failures,
    )
