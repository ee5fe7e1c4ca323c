"""`dse run`: explore a search space with one trial worker per device slot.

The runner is the only process that talks to the study: it asks for trials, hands each
TrialConfig to an idle worker, and records what comes back (recorder.py). Decisions use the
study as stored, not local memory, so running the same command again resumes, and several
runners can share one study:

- the budget (`planned`) counts finished trials (complete, or failed for a reason of their
  own) plus trials running or queued; finished trials are never redone;
- a grid enqueues each point once (skipping points already finished, running or queued), and
  workers pop queued trials: no duplicates, in parallel;
- a trial whose worker process died is recorded FAIL and retried once; a trial left RUNNING by
  a killed runner goes stale (no heartbeat) and optuna re-queues it; either retry resumes from
  the failed run's per-epoch checkpoint (its last complete epoch), which every worker writes;
- with retry_oom, a trial that ran out of device memory is recorded FAIL and retried once at
  half the batch size (`TrialConfig.with_half_batch`); the retry's `retry_of` names it;
- setting up (schema, study, queued points) happens under a lock on the storage (locks.py),
  so runners started at the same instant on several hosts queue each grid point once;
- every epoch is kept in the trial's curve; with early stopping (MO-ASHA, moasha.py) a worker
  asks at each rung, and the runner's RungBook decides from the study's records at that rung,
  stores the decision with the trial (so a resumed or shared study ranks against it), and
  answers. A stopped trial is told PRUNED, its last objective values kept with it: optuna takes
  no values with PRUNED, and keeps PRUNED trials off the Pareto front.

Trials run on local worker processes (workers.py, backend local) or on a Dask cluster
(dask_pool.py, backend dask): two implementations of records.Pool, driven by the same loop.

Written by hand rather than with `Study.optimize(n_jobs=...)` (threads, one device) or a
joblib pool (no way to pin a process to a GPU before CUDA starts in it).
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from dse.errors import ConfigError, DseError, Interrupted
from dse.search.devices import Slot, cpu_count, leave_busy_cpus
from dse.search.locks import setup_lock
from dse.search.messages import (
    EpochDone,
    Pool,
    RungAnswer,
    RungQuestion,
    TrialDone,
    TrialFailed,
    TrialStarted,
    TrialTask,
    WorkerLost,
    WorkerMessage,
)
from dse.search.moasha import RungBook
from dse.search.options import RunOptions, RunPlan, checkpoint_folder, plan_run, tidy_checkpoints
from dse.search.optuna_private import pop_queued_trial, record_heartbeats, trial_id
from dse.search.recorder import (
    Recorder,
    Reporter,
    RunSummary,
    SilentReporter,
    StartFailures,
    seconds_per_epoch,
)
from dse.search.records import EpochPoint, Placement, StudyRecord, TrialRecord
from dse.search.resilient import watch_signals
from dse.search.signals import StopSignals
from dse.search.storage import close_storage, open_storage
from dse.search.study import Counting, fail_stale, finished_count, over_budget
from dse.search.study_setup import set_up_study
from dse.search.unvisited import Novelty, Outcome
from dse.space import SearchSpace
from dse.train.schedules import epoch_batch_sizes

POLL_S = 0.5
HEARTBEAT_EVERY_S = 1.0
MAX_INVALID_SAMPLES = 50  # sampled points in a row that are not valid configs


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
    plan = plan_run(space, options, gpu_count)  # every option checked before anything starts
    with warnings.catch_warnings(), StopSignals() as stop:
        # Heartbeats with ask/tell and fail_stale_trials are what we mean to use.
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        pool = _connect_dask(options, plan) if options.backend == "dask" else None
        if pool is None:
            plan.check_local_data(options.data_dir)
        storage = runner = None
        try:
            wait_s, stopped = options.open_wait_s, lambda: stop.received
            with setup_lock(options.storage, wait_s, stopped):
                storage = open_storage(
                    options.storage, True, options.db_outage_limit, wait_s, stopped
                )
                watch_signals(storage, stop)  # Ctrl-C while waiting for the database
                study, space = set_up_study(storage, space, options, plan)
            if note := space.one_point_note():  # said once every check has passed
                warnings.warn(note, stacklevel=2)
            if pool is None:
                from dse.search.workers import WorkerPool

                # measured now, every check passed: a refused run says one line, no more
                slots, busy = leave_busy_cpus(plan.slots, cpu_count())
                if busy:
                    warnings.warn(busy, stacklevel=2)
                pool = WorkerPool(slots, options.data_dir)
            runner = Runner(space, options, plan, study, pool, reporter or SilentReporter())
            return runner.run(stop)
        finally:
            if pool is not None:  # a run ended by a signal or an error leaves its trials
                pool.close(abandon=stop.received is not None or sys.exc_info()[0] is not None)
            if storage is not None:
                close_storage(storage)
            if runner is not None:
                tidy_checkpoints(options, runner.checkpoints)


def _connect_dask(options: RunOptions, plan: RunPlan) -> Pool:
    """The cluster trains: its workers must find the data (this host need not have it)."""
    from dse.search.dask_pool import DaskPool

    return DaskPool.connect(
        options.scheduler, options.gpus_per_trial, options.data_dir, plan.dataset_configs
    )


@dataclass
class InFlight:
    """A trial of this run, handed to a worker."""

    trial: optuna.Trial
    slot: Slot
    batch_sizes: tuple[int, ...] = ()  # per epoch, from the trial's batch schedule
    curve: list[EpochPoint] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    placement: Placement | None = None  # where it was sent (a worker's TrialStarted may differ)

    def lost_s(self) -> float:
        """Seconds since the last epoch reported (its checkpoint written), or since dispatch."""
        last = (self.curve[-1].at_s or 0.0) if self.curve else 0.0
        return time.monotonic() - self.started - last


class Runner:
    """The loop: fill idle slots, hand messages to the recorder and the rung book, beat."""

    def __init__(
        self,
        space: SearchSpace,
        options: RunOptions,
        plan: RunPlan,
        study: optuna.Study,
        pool: Pool,
        reporter: Reporter,
    ):
        self.space, self.options, self.plan = space, options, plan
        self.study, self.pool, self.reporter = study, pool, reporter
        self.counting = Counting.of(study, space)
        self.recorder = Recorder(study, space, self.counting, options.retry_oom, reporter)
        self.rung_book = (
            RungBook(options.early_stop, space.metric_names, space.directions)
            if options.early_stop is not None
            else None
        )
        self.in_flight: dict[int, InFlight] = {}
        self.started: set[int] = set()  # the trials this run started (retries included)
        self.invalid_in_a_row = 0
        self.start_failures = StartFailures()  # local workers dead before a trial reached one
        self.novelty = Novelty(study, self.counting, options.seed)  # no point trained twice
        self.checkpoints = checkpoint_folder(options, study.study_name, StudyRecord(study).uid())

    def run(self, stop: StopSignals | None = None) -> RunSummary:
        """Run until the planned trials have finished, or a signal stops the run (Interrupted:
        its trials in flight are recorded FAIL and queued again)."""
        self.stop = stop or StopSignals()
        start = time.monotonic()
        trials = self.counting.trials(self.study)
        plan, objectives = self.plan, list(self.space.metric_names)
        done, history = finished_count(trials), seconds_per_epoch(trials)
        self.reporter.start(
            plan.study_name, plan.planned, done, self.pool.slots, objectives, history
        )
        try:
            self._loop()
        finally:
            self.reporter.stop()
        if self.stop.received is not None:
            self._interrupt(self.stop.received)
        elapsed = time.monotonic() - start
        summary = self.recorder.summary(
            self.options.storage, self.plan.planned, elapsed, self.started
        )
        return replace(summary, exhausted=self.novelty.exhausted)

    def _loop(self) -> None:
        last_heartbeat = 0.0
        while self.stop.received is None:
            trials = self.counting.trials(self.study)
            done = finished_count(trials)
            ours = {trial_id(f.trial) for f in self.in_flight.values()}
            waiting = sum(t.state == TrialState.WAITING for t in trials)
            elsewhere = sum(
                t.state == TrialState.RUNNING and trial_id(t) not in ours for t in trials
            )
            if done >= self.plan.planned and not self.in_flight:
                return
            # New trials may be asked for only while the budget has room beyond what is
            # finished, running (here or elsewhere) or queued; queued trials always run.
            room = self.plan.planned - done - len(self.in_flight) - elsewhere - waiting
            if self.novelty.exhausted:
                room = 0  # nothing new left to propose: the run ends short of its budget
            room = self._fill_idle_slots(waiting, room)
            if not self.in_flight and not elsewhere and not waiting and room <= 0:
                return  # nothing left to run (a grid smaller than the budget, say)
            for message in self.pool.poll(POLL_S):
                self._handle(message)
            for lost in self.pool.replace_dead():
                if self.stop.received is None:  # else killed by the run's own signal
                    self._worker_lost(lost)
            if time.monotonic() - last_heartbeat > HEARTBEAT_EVERY_S:
                record_heartbeats(self.study, [f.trial for f in self.in_flight.values()])
                fail_stale(self.study)
                last_heartbeat = time.monotonic()

    def _worker_lost(self, lost: WorkerLost) -> None:
        """A dead worker's trial fails, retried once; dead at start, see StartFailures."""
        flight = self.in_flight.pop(lost.number, None) if lost.number is not None else None
        at_start = self.options.backend == "local" and self.start_failures.died()
        if flight is not None:
            with _unless_failed_as_stale():
                lost_s = flight.lost_s()
                self.recorder.worker_died(flight.trial, flight.slot, lost.reason, lost_s, at_start)
        error = self.start_failures.given_up(lost.slot, lost.reason) if at_start else None
        if error is not None:
            for other in self.in_flight.values():  # its worker is starting too, or trying to
                with _unless_failed_as_stale():
                    self.recorder.not_started(other.trial, other.slot, "the run stopped")
            raise error

    def _interrupt(self, number: int) -> None:
        """Record the trials in flight as stopped by the signal, and say so in one line."""
        name = signal.Signals(number).name
        stopped = 0
        for flight in list(self.in_flight.values()):
            with _unless_failed_as_stale():
                self.recorder.interrupted(flight.trial, name, flight.lost_s())
                stopped += 1
        self.in_flight.clear()
        trials = self.counting.trials(self.study)
        complete = sum(t.state == TrialState.COMPLETE for t in trials)
        raise Interrupted(
            f"interrupted: {complete} complete, {stopped} stopped in flight; run the same "
            "command to resume",
            number,
        )

    def _fill_idle_slots(self, waiting: int, room: int) -> int:
        """Start a trial on each idle slot while there is queued work or budget; returns room."""
        for slot in self.pool.idle():
            sampled = waiting <= 0
            if not sampled:
                waiting -= 1
                trial = pop_queued_trial(self.study)
                if trial is None:  # another runner took it first
                    break
            elif room > 0:
                room -= 1
                trial = self.study.ask()
            else:
                break
            outcome = self._dispatch(slot, trial)
            if outcome == Outcome.STARTED:
                self.invalid_in_a_row = 0
                self.started.add(trial.number)
                self.novelty.started()
                continue
            if sampled:
                room += 1  # a sample that does not run takes no place in the budget
            if outcome == Outcome.REPEAT:
                self.novelty.after_repeat(trial.number)
                break  # re-read the study before asking again
            self.invalid_in_a_row += 1
            if self.invalid_in_a_row >= MAX_INVALID_SAMPLES:
                raise ConfigError(
                    f"{self.space.source}: {self.invalid_in_a_row} sampled points in a row were "
                    "not valid configs (see `dse trials`): constrain the axes"
                )
            break  # re-read the study before asking again
        return room

    def _dispatch(self, slot: Slot, trial: optuna.Trial) -> Outcome:
        """Start a trial on `slot`: STARTED, or INVALID when its sample is not a valid config,
        or REPEAT when the study has run its sampled point (search/unvisited.py)."""
        record_heartbeats(self.study, [trial])  # a trial without a heartbeat never goes stale
        if over_budget(self.counting.trials(self.study), trial.number, self.plan.planned):
            self.recorder.withdrawn(trial)
            return Outcome.STARTED
        try:
            values = self.space.suggest(trial)
            config = self.space.config_for(values, name=f"{self.study.study_name}-{trial.number}")
            if TrialRecord(trial).half_batch:
                config = config.with_half_batch()
        except DseError as exc:
            # A sampled combination the config rejects (say warm_adabatch with a fixed batch):
            # recorded, not counted against the budget; the sampler draws again.
            self.recorder.invalid(trial, f"ConfigError: {exc}")
            return Outcome.INVALID
        earlier = self.novelty.repeat_of(trial, values)
        if earlier is not None:
            self.recorder.repeat(trial, earlier)
            return Outcome.REPEAT
        placement = Placement(slot.label, slot.device, socket.gethostname())
        as_dict = config.to_dict()
        with _unless_failed_as_stale():  # by another runner meanwhile, and queued again
            key = TrialRecord(trial).start(as_dict, placement)
            rungs = self.rung_book.rungs_for(config.epochs) if self.rung_book else ()
            batch_sizes = epoch_batch_sizes(config)
            checkpoint = f"{self.checkpoints.path}/{key}.pt"  # a retry's is its failed run's
            keep = self.options.keep_checkpoints
            self.pool.submit(slot, TrialTask(trial.number, as_dict, rungs, checkpoint, keep))
            self.in_flight[trial.number] = InFlight(trial, slot, batch_sizes, placement=placement)
            self.reporter.trial_started(trial.number, slot, values, config.epochs)
        return Outcome.STARTED

    def _handle(self, message: WorkerMessage) -> None:
        """A worker's message. A trial of ours that a stale check already failed (our
        heartbeats stalled past the grace period: a starved host, a database pause) has a
        retry queued, which runs instead: its late messages are dropped, not a crash."""
        if isinstance(message, RungQuestion):
            self._answer_rung(message)
            return
        flight = self.in_flight.get(message.number)
        if flight is None:
            return
        if isinstance(message, TrialStarted):  # a worker took it (Dask: where it runs)
            self.start_failures.landed = True
            if message.placement != flight.placement:
                with _unless_failed_as_stale():
                    TrialRecord(flight.trial).place(message.placement)
        elif isinstance(message, EpochDone):
            self._epoch_done(flight, message)
        elif isinstance(message, TrialDone | TrialFailed):
            del self.in_flight[message.number]
            with _unless_failed_as_stale():
                if isinstance(message, TrialDone):
                    self.recorder.done(flight.trial, message)
                else:
                    self.recorder.failed(flight.trial, message)

    def _epoch_done(self, flight: InFlight, message: EpochDone) -> None:
        """Keep the epoch in the trial's curve (MO-ASHA reads it from other runners too)."""
        point = replace(message.point, at_s=time.monotonic() - flight.started)
        self.reporter.trial_epoch(message.number, point.epoch, message.epochs, point.val_accuracy)
        flight.curve.append(point)
        try:
            TrialRecord(flight.trial).set_curve(flight.curve)
        except UpdateFinishedTrialError:  # failed as stale meanwhile, and re-queued
            del self.in_flight[message.number]

    def _answer_rung(self, question: RungQuestion) -> None:
        """Decide at a rung and store the decision; a trial no longer ours is told to stop."""
        flight = self.in_flight.get(question.number)
        proceed = False
        if flight is not None and self.rung_book is not None:
            trials = self.study.get_trials(deepcopy=False)
            decision = self.rung_book.decide(
                question.epoch, question.number, flight.curve, flight.batch_sizes, trials
            )
            try:
                TrialRecord(flight.trial).add_decision(decision)
                proceed = decision.proceed
            except UpdateFinishedTrialError:  # failed as stale meanwhile, and re-queued
                del self.in_flight[question.number]
        self.pool.answer(question.slot_index, RungAnswer(proceed))


def _unless_failed_as_stale() -> contextlib.AbstractContextManager[Any]:
    """Writes to a trial that a stale check failed meanwhile are dropped: its retry runs."""
    return contextlib.suppress(UpdateFinishedTrialError)
