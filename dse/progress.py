"""A rich progress display for one training run (stderr), driven by the trainer's Observer hooks."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from dse.train.result import EpochRecord
from dse.train.schedules import TrainingPlan
from dse.train.trainer import Observer


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
