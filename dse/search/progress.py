"""Progress of `dse run` on stderr: a live display, or one line per finished trial (--quiet)."""

from __future__ import annotations

import sys
import time
from typing import Any

import optuna
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from dse.search.devices import Slot


def describe_trial(trial: optuna.trial.FrozenTrial) -> str:
    if trial.state == optuna.trial.TrialState.COMPLETE:
        metrics = trial.user_attrs.get("metrics", {})
        return (
            f"trial {trial.number} complete: val_accuracy {metrics.get('val_accuracy', 0):.4f}, "
            f"train_time_s {metrics.get('train_time_s', 0):.1f} on {trial.user_attrs.get('slot')}"
        )
    if trial.state == optuna.trial.TrialState.PRUNED:
        rung = trial.user_attrs.get("rungs", {}).get(str(trial.user_attrs.get("stopped_at")), {})
        return (
            f"trial {trial.number} stopped at epoch {trial.user_attrs.get('stopped_at')}: "
            f"rank {rung.get('position')} of {rung.get('of')} at the rung "
            f"(top {rung.get('cutoff')} go on) on {trial.user_attrs.get('slot')}"
        )
    return f"trial {trial.number} {trial.state.name.lower()}: {trial.user_attrs.get('error', '')}"


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
