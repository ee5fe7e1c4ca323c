"""Recording a run's trials in the study: results, failures, retries, dead workers, and the
summary at the end. Every write goes through TrialRecord (records.py)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Protocol

import optuna
from optuna.trial import FrozenTrial, TrialState

from dse.errors import WorkersCannotStart
from dse.search.devices import Slot
from dse.search.messages import TrialDone, TrialFailed
from dse.search.pareto import FrontSet
from dse.search.records import TrialRecord
from dse.search.results import finite, meets_constraints
from dse.search.study import Counting, finished_count
from dse.search.unvisited import repeat_error
from dse.space import SearchSpace

MAX_WORKER_DEATHS = 1  # retries of a trial whose worker died
MAX_FAILED_STARTS = 3  # local workers dead at start, before any trial reached one: the run ends
OUT_OF_MEMORY = "out of memory"  # TrialFailed.kind of a trial that ran out of device memory


class Reporter(Protocol):
    """What a progress display hears from a run (implemented in dse/progress.py)."""

    def start(
        self,
        study: str,
        planned: int,
        done: int,
        slots: list[Slot],
        objectives: list[str],  # the study's metric names, in order of its values
        seconds_per_epoch: float | None = None,  # of the study's finished trials, if any
    ) -> None: ...
    def trial_started(
        self, number: int, slot: Slot, params: dict[str, Any], epochs: int
    ) -> None: ...
    def trial_epoch(self, number: int, epoch: int, epochs: int, val_accuracy: float) -> None: ...
    def trial_finished(self, trial: FrozenTrial, done: int, pareto_size: int) -> None: ...
    def stop(self) -> None: ...


class SilentReporter:
    def start(self, study, planned, done, slots, objectives, seconds_per_epoch=None): ...
    def trial_started(self, number, slot, params, epochs): ...
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
    exhausted: bool = False  # every valid point of the finite space ran: nothing left to sample
    started: int = 0  # trials this run started (retries included)
    started_failed: int = 0  # of them, those that failed
    first_failure: str = ""  # the first of this run's failures, as `failures` gives it

    @property
    def every_start_failed(self) -> bool:
        """This run started trials and not one of them completed or stopped early."""
        return self.started > 0 and self.started_failed == self.started


class Recorder:
    """Tells the study how each trial of this run ended, and queues the retries."""

    def __init__(
        self,
        study: optuna.Study,
        space: SearchSpace,
        counting: Counting,
        retry_oom: bool,
        reporter: Reporter,
    ):
        self.study, self.space, self.counting = study, space, counting
        self.retry_oom, self.reporter = retry_oom, reporter
        self.deaths: dict[int, int] = {}  # worker deaths by the first run's trial number
        self.front = FrontSet(space.directions)  # the study's, as `dse pareto` takes it
        self.taken_in: set[int] = set()  # the complete trials the front has seen

    def done(self, trial: optuna.Trial, message: TrialDone) -> None:
        """A finished run: its values, or PRUNED with its values kept when stopped early."""
        record = TrialRecord(trial)
        metrics = record.finish(message.result, message.wall_s, message.placement)
        values = [metrics[m] for m in self.space.metric_names]
        if message.result.stopped_at is not None:
            record.stopped(message.result.stopped_at, values)
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            for constraint in self.space.constraints:
                trial.set_constraint(str(constraint), constraint.violation(metrics))
            self.study.tell(trial, values)
        self.report_finished(trial.number)

    def failed(self, trial: optuna.Trial, message: TrialFailed) -> None:
        """A run that raised; out of memory with retry_oom: once more at half the batch."""
        record = TrialRecord(trial)
        record.fail(f"{message.kind}: {message.message}")
        retry = message.kind == OUT_OF_MEMORY and self.retry_oom and not record.half_batch
        if retry:
            record.mark_retried()
        self.study.tell(trial, state=TrialState.FAIL)
        if retry:
            record.enqueue_retry(self.study, trial.number, OUT_OF_MEMORY, half_batch=True)
        self.report_finished(trial.number)

    def worker_died(
        self, trial: optuna.Trial, slot: Slot, reason: str, lost_s: float, at_start: bool = False
    ) -> None:
        """FAIL with the reason; queued again unless its point already killed a worker (the
        retry resumes from the trial's checkpoint; `lost_s`: seconds it ran past it).
        `at_start`: the worker died as it started, before it took the trial (`not_started`)."""
        if at_start:
            self.not_started(trial, slot, reason)
            return
        record = TrialRecord(trial)
        origin = record.retry_of
        self.deaths[origin] = self.deaths.get(origin, 0) + 1
        record.fail(f"worker died ({reason}) on {record.slot or slot.label}")
        record.add_lost(lost_s)
        retry = self.deaths[origin] <= MAX_WORKER_DEATHS
        if retry:
            record.mark_retried()
        self.study.tell(trial, state=TrialState.FAIL)
        if retry:
            record.enqueue_retry(self.study, origin, "worker died")
        self.report_finished(trial.number)

    def not_started(self, trial: optuna.Trial, slot: Slot, reason: str) -> None:
        """Its worker died before it took the trial (it could not start): FAIL, queued again
        without counting as a death of the trial's own, which never ran."""
        record = TrialRecord(trial)
        record.fail(f"not started: worker died at start ({reason}) on {slot.label}")
        record.mark_retried()
        self.study.tell(trial, state=TrialState.FAIL)
        record.enqueue_retry(self.study, record.retry_of, "not started")
        self.report_finished(trial.number)

    def interrupted(self, trial: optuna.Trial, signal_name: str, lost_s: float) -> None:
        """Stopped in flight by a signal: FAIL now (no stale wait), its point queued again (to
        resume from its checkpoint; `lost_s`: seconds it ran past it)."""
        record = TrialRecord(trial)
        record.fail(f"interrupted ({signal_name})")
        record.add_lost(lost_s)
        record.mark_retried()
        self.study.tell(trial, state=TrialState.FAIL)
        record.enqueue_retry(self.study, record.retry_of, "interrupted")

    def invalid(self, trial: optuna.Trial, error: str) -> None:
        """A sampled combination the config rejects: recorded, not counted against the budget."""
        TrialRecord(trial).mark_invalid(error)
        self.study.tell(trial, state=TrialState.FAIL)

    def repeat(self, trial: optuna.Trial, of: int) -> None:
        """A sampled point trial `of` has run: not trained, not counted (unvisited.py)."""
        TrialRecord(trial).mark_invalid(repeat_error(of))
        self.study.tell(trial, state=TrialState.FAIL)

    def withdrawn(self, trial: optuna.Trial) -> None:
        """Asked beyond the budget (another runner took the last place): not counted."""
        TrialRecord(trial).mark_withdrawn()
        self.study.tell(trial, state=TrialState.FAIL)

    def report_finished(self, number: int) -> None:
        trials = self.study.get_trials(deepcopy=False)
        frozen = next(t for t in trials if t.number == number)
        done = finished_count(self.counting.trials(self.study))
        self.reporter.trial_finished(frozen, done, self.pareto_size(trials))

    def pareto_size(self, trials: list[FrozenTrial]) -> int:
        """The size of the study's front as `dse pareto` reads it (its feasible complete trials
        with finite values; other runners' too), taking in the trials completed since the last
        call: `study.best_trials` sorted every trial again at each finish (0.24 s at 10,000)."""
        for trial in trials:
            if trial.state == TrialState.COMPLETE and trial.number not in self.taken_in:
                self.taken_in.add(trial.number)
                if finite(trial) and meets_constraints(trial):
                    self.front.add(trial.values)
        return len(self.front)

    def summary(
        self, storage: str, planned: int, elapsed: float, started: Collection[int] = ()
    ) -> RunSummary:
        """What this run's trials came to (in an extended study: the run's own points');
        `started`: the numbers of the trials this run started."""
        trials = self.counting.trials(self.study)
        ours = [t for t in self.study.get_trials(deepcopy=False) if t.number in started]
        failures = [
            failure(t) for t in trials if t.state == TrialState.FAIL and TrialRecord(t).is_final()
        ]
        ours_failed = [t for t in ours if t.state == TrialState.FAIL]
        return RunSummary(
            study=self.study.study_name,
            storage=storage,
            planned=planned,
            complete=sum(t.state == TrialState.COMPLETE for t in trials),
            stopped=sum(t.state == TrialState.PRUNED for t in trials),
            failed=len(failures),
            pareto_size=self.pareto_size(self.study.get_trials(deepcopy=False)),
            elapsed_s=elapsed,
            failures=failures,
            started=len(ours),
            started_failed=len(ours_failed),
            first_failure=failure(ours_failed[0]) if ours_failed else "",
        )


@dataclass
class StartFailures:
    """Local workers that died before any trial of the run reached one. A worker that cannot
    start (torch will not import, say) would be restarted for each trial and its retry, every
    few seconds; after MAX_FAILED_STARTS such deaths the run ends with the cause instead."""

    deaths: int = 0
    landed: bool = False  # a trial reached a worker: later deaths are retried as the trial's

    def died(self) -> bool:
        """A worker died: whether at start (no trial has reached a worker yet)."""
        if not self.landed:
            self.deaths += 1
        return not self.landed

    def given_up(self, slot: Slot, reason: str) -> WorkersCannotStart | None:
        """The run's end once MAX_FAILED_STARTS workers died at start; the last's cause."""
        if self.landed or self.deaths < MAX_FAILED_STARTS:
            return None
        return WorkersCannotStart(
            f"the local workers cannot start: {self.deaths} died in a row before taking a "
            f"trial, the last on {slot.label} ({reason}); the run stopped and its trials are "
            "queued again: fix the cause, then run the same command"
        )


def failure(trial: FrozenTrial) -> str:
    return f"trial {trial.number}: {TrialRecord(trial).error}"


def seconds_per_epoch(trials: list[FrozenTrial]) -> float | None:
    """Wall seconds per epoch of the complete trials (loading and evaluating included): how
    long the rest of a resumed study may take."""
    spans = []
    for trial in trials:
        epochs = len(TrialRecord(trial).history)
        if trial.state == TrialState.COMPLETE and trial.duration and epochs:
            spans.append(trial.duration.total_seconds() / epochs)
    return sum(spans) / len(spans) if spans else None
