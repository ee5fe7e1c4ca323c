"""Progress on stderr: of one training run (a bar per epoch), and of `dse run` (a live view of
the study, or one line per finished trial)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

from optuna.trial import FrozenTrial, TrialState
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from dse.search.devices import Slot
from dse.search.records import TrialRecord
from dse.search.results import failed_constraints, named_values, values_text
from dse.train.result import EpochRecord
from dse.train.schedules import TrainingPlan
from dse.train.trainer import Observer

# --- one training run -------------------------------------------------------------------------


class TrainingProgress(Observer):
    """A bar per epoch (steps done, ETA) and a line per finished epoch."""

    def __init__(self, label: str = "train"):
        self.label = label
        console = Console(stderr=True)  # progress, not data: stdout has the results only
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,  # the bar would leave an empty line in a file
        )
        self.task = None
        self.epochs = 0

    def __enter__(self) -> TrainingProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def on_start(self, plan: TrainingPlan) -> None:
        self.plan = plan
        self.epochs = len(plan.steps)
        self.task = self.progress.add_task(self._title(0), total=plan.steps[0])

    def _title(self, epoch: int) -> str:
        batch = self.plan.batch_sizes[epoch]
        return f"{escape(self.label)} epoch {epoch + 1}/{self.epochs} (batch {batch})"

    def on_step(self, epoch: int, step_in_epoch: int) -> None:
        self.progress.advance(self.task)

    def on_epoch(self, record: EpochRecord, elapsed_train_s: float) -> None:
        self.progress.console.print(
            f"epoch {record.epoch}/{self.epochs}  batch {record.batch_size}  "
            f"lr {record.lr_last:.3g}  loss {record.train_loss:.4f}  "
            f"val {record.val_accuracy:.4f}  {record.epoch_time_s:.1f}s"
        )
        if record.epoch < self.epochs:
            steps, title = self.plan.steps[record.epoch], self._title(record.epoch)
            self.progress.reset(self.task, total=steps, description=title)


# --- a study being run ------------------------------------------------------------------------


def describe_trial(trial: FrozenTrial, objectives: list[str]) -> str:
    """A finished trial in one line: a complete one with the study's own objectives (and the
    constraints it fails), a stopped one with its rank at the rung, a failed one with its error."""
    record = TrialRecord(trial)
    if trial.state == TrialState.COMPLETE:
        values = values_text(named_values(objectives, trial.values))
        line = f"trial {trial.number} complete: {values} on {record.slot}"
        failed = failed_constraints(trial)
        return f"{line}; infeasible ({', '.join(failed)} fails)" if failed else line
    if trial.state == TrialState.PRUNED:
        stopped = record.stopped_at
        decision = record.decision(stopped) if stopped is not None else None
        where = (
            "the rung"
            if decision is None or decision.ranked_at is None
            else (f"epoch {decision.ranked_at}'s rung now")
        )
        rank = (
            f"rank {decision.position} of {decision.of} at {where} (top {decision.cutoff} go on)"
            if decision is not None
            else "rank None of None at the rung (top None go on)"
        )
        return f"trial {trial.number} stopped at epoch {stopped}: {rank} on {record.slot}"
    return f"trial {trial.number} {trial.state.name.lower()}: {record.error or ''}"


class LineReporter:
    """--quiet: one line per finished trial."""

    def __init__(self) -> None:
        self.planned = 0
        self.objectives: list[str] = []

    def start(
        self,
        study: str,
        planned: int,
        done: int,
        slots: list[Slot],
        objectives: list[str],
        seconds_per_epoch: float | None = None,
    ) -> None:
        self.planned, self.objectives = planned, objectives
        workers = ", ".join(s.label for s in slots)
        sys.stderr.write(f"study {study}: {done}/{planned} done; workers {workers}\n")

    def trial_started(
        self, number: int, slot: Slot, params: dict[str, Any], epochs: int
    ) -> None: ...
    def trial_epoch(self, number: int, epoch: int, epochs: int, val_accuracy: float) -> None: ...

    def trial_finished(self, trial, done: int, pareto_size: int) -> None:
        line = describe_trial(trial, self.objectives)
        sys.stderr.write(f"[{done}/{self.planned}] {line}; Pareto size {pareto_size}\n")

    def stop(self) -> None: ...


@dataclass
class Running:
    """A trial in flight, as the live view shows it."""

    slot: str
    params: str
    epochs: int
    started: float
    epochs_done: int = 0
    val_accuracy: float | None = None
    last_epoch_at: float | None = None


@dataclass
class EtaModel:
    """Seconds left, from the wall seconds per epoch seen so far in this run (each trial's own
    once it has finished an epoch), else the study's history (a resumed study), else unknown."""

    slots: int = 1
    history_s_per_epoch: float | None = None  # of the study's trials finished before this run
    epoch_seconds: list[float] = field(default_factory=list)
    trial_epochs: list[int] = field(default_factory=list)  # epochs of the trials started

    def per_epoch(self, trial: Running | None = None) -> float | None:
        if trial is not None and trial.epochs_done and trial.last_epoch_at is not None:
            return (trial.last_epoch_at - trial.started) / trial.epochs_done
        if self.epoch_seconds:
            return sum(self.epoch_seconds) / len(self.epoch_seconds)
        return self.history_s_per_epoch

    def trial_left(self, trial: Running, now: float) -> float | None:
        per_epoch = self.per_epoch(trial)
        if per_epoch is None:
            return None
        into_epoch = now - (trial.last_epoch_at or trial.started)
        return max(0.0, (trial.epochs - trial.epochs_done) * per_epoch - into_epoch)

    def study_left(self, running: list[Running], not_started: int, now: float) -> float | None:
        per_epoch = self.per_epoch()
        if per_epoch is None:
            return None
        epochs = sum(self.trial_epochs) / len(self.trial_epochs) if self.trial_epochs else 1
        in_flight = sum(self.trial_left(t, now) or 0.0 for t in running)
        return (in_flight + not_started * epochs * per_epoch) / max(1, self.slots)


def clock_text(seconds: float | None) -> str:
    return "?" if seconds is None else time.strftime("%H:%M:%S", time.gmtime(seconds))


class LiveReporter:
    """Trials done / planned with the study's ETA and the Pareto size; each running trial with
    its device, epoch, validation accuracy, time running and its own ETA. The clock ticks."""

    def __init__(self, console: Console | None = None, clock=time.monotonic) -> None:
        self.console = console or Console(stderr=True)
        self.clock = clock
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("ETA {task.fields[eta]}  Pareto {task.fields[pareto]}"),
        )
        self.running: dict[int, Running] = {}
        self.eta = EtaModel()
        self.planned = self.done = 0
        self.objectives: list[str] = []
        self.task = self.progress.add_task("study", total=0, eta="?", pareto="-", visible=False)
        self.live = Live(
            get_renderable=self.renderable,
            console=self.console,
            refresh_per_second=2,
            transient=True,
        )

    def renderable(self) -> Group:
        now = self.clock()
        not_started = max(0, self.planned - self.done - len(self.running))
        left = self.eta.study_left(list(self.running.values()), not_started, now)
        self.progress.update(self.task, eta=clock_text(left))
        table = Table(box=None, show_header=True, header_style="bold")
        for column in ("trial", "device", "epoch", "val_acc", "running", "eta", "params"):
            table.add_column(column)
        for number, trial in sorted(self.running.items()):
            val = "-" if trial.val_accuracy is None else f"{trial.val_accuracy:.4f}"
            table.add_row(
                str(number),
                trial.slot,
                f"{trial.epochs_done}/{trial.epochs}",
                val,
                f"{now - trial.started:.0f}s",
                clock_text(self.eta.trial_left(trial, now)),
                escape(trial.params),
            )
        return Group(self.progress, table)

    def start(
        self,
        study: str,
        planned: int,
        done: int,
        slots: list[Slot],
        objectives: list[str],
        seconds_per_epoch: float | None = None,
    ) -> None:
        self.planned, self.done, self.objectives = planned, done, objectives
        self.eta = EtaModel(slots=len(slots), history_s_per_epoch=seconds_per_epoch)
        self.progress.update(
            self.task,
            description=f"study {escape(study)}",
            total=planned,
            completed=done,
            visible=True,
        )
        self.live.start()

    def trial_started(self, number: int, slot: Slot, params: dict[str, Any], epochs: int) -> None:
        text = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in params.items())
        self.running[number] = Running(slot.label, text[:70], epochs, self.clock())
        self.eta.trial_epochs.append(epochs)

    def trial_epoch(self, number: int, epoch: int, epochs: int, val_accuracy: float) -> None:
        trial = self.running.get(number)
        if trial is None:
            return
        now = self.clock()
        self.eta.epoch_seconds.append(now - (trial.last_epoch_at or trial.started))
        trial.epochs_done, trial.epochs, trial.val_accuracy = epoch, epochs, val_accuracy
        trial.last_epoch_at = now

    def trial_finished(self, trial: FrozenTrial, done: int, pareto_size: int) -> None:
        self.running.pop(trial.number, None)
        self.done = done
        self.progress.update(self.task, completed=done, pareto=pareto_size)
        self.live.console.print(escape(describe_trial(trial, self.objectives)))  # an error is text

    def stop(self) -> None:
        self.live.stop()
