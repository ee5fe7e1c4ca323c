"""Progress on stderr: of one training run (a bar per epoch), and of `dse run` (a live view of
the study, or one line per finished trial)."""

from __future__ import annotations

import sys
import time
from typing import Any

from optuna.trial import FrozenTrial, TrialState
from rich.console import Console, Group
from rich.live import Live
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
from dse.train.result import EpochRecord
from dse.train.schedules import TrainingPlan
from dse.train.trainer import Observer

# --- one training run -------------------------------------------------------------------------


class TrainingProgress(Observer):
    """A bar per epoch (steps done, ETA) and a line per finished epoch."""

    def __init__(self, label: str = "train"):
        self.label = label
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=True,
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
        return f"{self.label} epoch {epoch + 1}/{self.epochs} (batch {batch})"

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


def describe_trial(trial: FrozenTrial) -> str:
    record = TrialRecord(trial)
    if trial.state == TrialState.COMPLETE:
        metrics = record.metrics
        return (
            f"trial {trial.number} complete: val_accuracy {metrics.get('val_accuracy', 0):.4f}, "
            f"train_time_s {metrics.get('train_time_s', 0):.1f} on {record.slot}"
        )
    if trial.state == TrialState.PRUNED:
        stopped = record.stopped_at
        decision = record.decision(stopped) if stopped is not None else None
        rank = (
            f"rank {decision.position} of {decision.of} at the rung (top {decision.cutoff} go on)"
            if decision is not None
            else "rank None of None at the rung (top None go on)"
        )
        return f"trial {trial.number} stopped at epoch {stopped}: {rank} on {record.slot}"
    return f"trial {trial.number} {trial.state.name.lower()}: {record.error or ''}"


class LineReporter:
    """--quiet: one line per finished trial."""

    def __init__(self) -> None:
        self.planned = 0

    def start(self, study: str, planned: int, done: int, slots: list[Slot]) -> None:
        self.planned = planned
        workers = ", ".join(s.label for s in slots)
        sys.stderr.write(f"study {study}: {done}/{planned} done; workers {workers}\n")

    def trial_started(self, number: int, slot: Slot, params: dict[str, Any]) -> None: ...
    def trial_epoch(self, number: int, epoch: int, epochs: int, val_accuracy: float) -> None: ...

    def trial_finished(self, trial, done: int, pareto_size: int) -> None:
        sys.stderr.write(
            f"[{done}/{self.planned}] {describe_trial(trial)}; Pareto size {pareto_size}\n"
        )

    def stop(self) -> None: ...


class LiveReporter:
    """Trials done / planned with an ETA, the running trials (device, epoch), the Pareto size."""

    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("ETA {task.fields[eta]}  Pareto {task.fields[pareto]}"),
        )
        self.running: dict[int, dict[str, Any]] = {}
        self.durations: list[float] = []
        self.slots = 1
        self.live = Live(self._render(), console=self.console, refresh_per_second=2, transient=True)

    def _render(self) -> Group:
        table = Table(box=None, show_header=True, header_style="bold")
        for column in ("trial", "device", "epoch", "val_acc", "running", "params"):
            table.add_column(column)
        now = time.monotonic()
        for number, info in sorted(self.running.items()):
            table.add_row(
                str(number),
                info["slot"],
                info["epoch"],
                info["val"],
                f"{now - info['start']:.0f}s",
                info["params"],
            )
        return Group(self.progress, table)

    def start(self, study: str, planned: int, done: int, slots: list[Slot]) -> None:
        self.slots = len(slots)
        self.task = self.progress.add_task(
            f"study {study}", total=planned, completed=done, eta="?", pareto="-"
        )
        self.live.start()

    def trial_started(self, number: int, slot: Slot, params: dict[str, Any]) -> None:
        text = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in params.items())
        self.running[number] = {
            "slot": slot.label,
            "epoch": "-",
            "val": "-",
            "start": time.monotonic(),
            "params": text[:70],
        }
        self.live.update(self._render())

    def trial_epoch(self, number: int, epoch: int, epochs: int, val_accuracy: float) -> None:
        if number in self.running:
            self.running[number].update(epoch=f"{epoch}/{epochs}", val=f"{val_accuracy:.4f}")
            self.live.update(self._render())

    def trial_finished(self, trial, done: int, pareto_size: int) -> None:
        info = self.running.pop(trial.number, None)
        if info is not None:
            self.durations.append(time.monotonic() - info["start"])
        task = self.progress.tasks[0]
        remaining = max(0, int(task.total or 0) - done)
        eta = "?"
        if self.durations:
            seconds = sum(self.durations) / len(self.durations) * remaining / self.slots
            eta = time.strftime("%H:%M:%S", time.gmtime(seconds))
        self.progress.update(self.task, completed=done, eta=eta, pareto=pareto_size)
        self.live.console.print(describe_trial(trial))
        self.live.update(self._render())

    def stop(self) -> None:
        self.live.stop()
