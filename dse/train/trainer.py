"""The training loop: one TrialConfig in, one TrialResult out, for the config's one seed
(several seeds, config.repeats > 1: dse.train.seeds.train_seeds).

It reads top to bottom in execution order: data onto the device, model, optimizer, the plan of
batch sizes and learning rates, then per epoch: shuffle, train steps (timed, device-synchronized),
validate; finally the test accuracy of the best-validation weights.
No host synchronization inside the step loop except a finiteness check every CHECK_EVERY steps.
Fault injection for tests and drills (off unless set): dse.train.faults.

Per-epoch checkpoints (dse.train.resume): with `resumable`, the run resumes from its state
when it has one, and writes the state after each epoch (before the observer hears of it).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dse.config import TrialConfig
from dse.data.batching import center_crops, random_crops, to_float
from dse.data.datasets import DeviceDataset, Split, load_dataset
from dse.errors import ConfigError, NonFiniteLossError, option
from dse.model import ModelSummary, build_model, summarize
from dse.model.costs import TRAIN_FLOPS_FACTOR
from dse.train.allocator import tune_malloc
from dse.train.checkpoint import save_checkpoint
from dse.train.clock import StepsClock
from dse.train.compiled import ForwardLoss, forward_loss
from dse.train.denormals import flush_denormals
from dse.train.environment import (
    device_name,
    environment,
    native_bf16,
    peak_memory_mb,
    reset_peak_memory,
)
from dse.train.faults import inject_oom, injected_kill, injected_oom_limit, kill_if_due
from dse.train.precision import autocast
from dse.train.result import EpochRecord, TrialResult
from dse.train.resume import ResumeState, SeedCheckpoints, restore_training, restoring, rng_states
from dse.train.schedules import TrainingPlan, make_plan

CHECK_EVERY = 50  # steps between finiteness checks (one host sync each)


class Observer:
    """Hooks for progress displays and early stopping.

    should_stop is asked after each epoch's on_epoch: True ends training there, and the result
    (best weights so far, their test accuracy) records the epoch it stopped at. A run resumed
    from a checkpoint tells on_resume the epochs it restored, after on_start.
    """

    def on_start(self, plan: TrainingPlan) -> None: ...
    def on_step(self, epoch: int, step_in_epoch: int) -> None: ...
    def on_epoch(self, record: EpochRecord, elapsed_train_s: float) -> None: ...
    def on_resume(self, history: list[EpochRecord]) -> None:
        """The epochs restored from a checkpoint; by default each is told as on_epoch."""
        elapsed = 0.0
        for record in history:
            elapsed += record.epoch_time_s
            self.on_epoch(record, elapsed)

    def should_stop(self) -> bool:
        return False


def resolve_device(name: str) -> torch.device:
    """'cpu', 'cuda' or 'cuda:N'; an unusable choice is a ConfigError naming it."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"{option('device')} {name!r}: expected cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = device.index or 0
        if index >= count:
            raise ConfigError(
                f"{option('device')} {name}: no such GPU ({count} CUDA devices visible)"
            )
        return torch.device("cuda", index)
    if device.type != "cpu":
        raise ConfigError(f"{option('device')} {name!r}: expected cpu, cuda or cuda:N")
    return device


@torch.no_grad()
def evaluate(
    model: nn.Module, split: Split, crop: int, config: TrialConfig, device: torch.device
) -> float:
    """Accuracy on a split: center crops, large batches, one host sync at the end."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for start in range(0, len(split), config.eval_batch_size):
        images = split.images[start : start + config.eval_batch_size]
        labels = split.labels[start : start + config.eval_batch_size]
        with autocast(config, device):
            scores = model(to_float(center_crops(images, crop)), reconstruct=False).scores
        correct += (scores.argmax(1) == labels).sum()
    model.train(was_training)
    return correct.item() / len(split)


@dataclass
class EpochTotals:
    losses: torch.Tensor  # per-step total loss, on the device ([steps, K] for K fused models)
    parts: dict[str, torch.Tensor]  # sample-weighted sums of the loss parts
    checked: int = 0  # steps already checked for finiteness
    lrs: list[float] = field(default_factory=list)  # the LR of each step
    time_s: float = 0.0  # the epoch's training steps, device-synchronized
    compile_s: float = 0.0  # torch.compile's compilations meanwhile (left out of time_s)


def check_finite(totals: EpochTotals, upto: int, epoch: int) -> None:
    window = totals.losses[totals.checked : upto]
    bad = (~torch.isfinite(window)).nonzero()
    if bad.numel():
        raise NonFiniteLossError(epoch=epoch + 1, step=totals.checked + int(bad[0, 0]) + 1)
    totals.checked = upto


def train(
    config: TrialConfig,
    device: str | torch.device = "cpu",
    data_dir: str | Path | None = None,
    observer: Observer | None = None,
    checkpoint: str | Path | None = None,
    data: DeviceDataset | None = None,
    resumable: SeedCheckpoints | None = None,
) -> TrialResult:
    """Train `config` with its one seed on `device`; save the best-validation weights to
    `checkpoint` if given. With `resumable`: resume from its state if it has one, and write
    the state after each epoch. Several seeds (config.repeats > 1): dse.train.seeds.
    """
    device = resolve_device(str(device)) if not isinstance(device, torch.device) else device
    if config.repeats > 1:
        raise ValueError(
            f"train trains one seed, not repeats={config.repeats}: call train_seeds for repeats"
        )
    observer = observer or Observer()
    prepare_device(config, device)

    # Data and model, seeded: the same config on the same CPU gives the same numbers.
    data = data or load_dataset(config.dataset, device, data_dir)
    run = setup(config, device, data)
    progress = Progress()
    if resumable is not None and resumable.start is not None:
        _restore(run, progress, resumable.start, resumable.file.path)
    observer.on_start(run.plan)
    if progress.history:
        observer.on_resume(progress.history)

    run.model.train()
    for epoch in range(len(progress.history), config.epochs):
        totals = _train_epoch(run, data, epoch, progress.step, observer)
        progress.step += run.plan.steps[epoch]
        progress.train_time += totals.time_s
        progress.samples_seen += len(data.train)

        val_accuracy = evaluate(run.model, data.val, data.info.crop, config, device)
        record = epoch_record(run.plan, epoch, totals, val_accuracy, len(data.train))
        progress.history.append(record)
        if val_accuracy > progress.best[0]:
            progress.best = (val_accuracy, epoch + 1, progress.train_time)
            progress.best_state = {
                k: v.detach().to("cpu", copy=True) for k, v in run.model.state_dict().items()
            }
        if resumable is not None:  # outside the timed steps
            rng = rng_states(run.generator, device)
            state = progress_state(progress, epoch + 1)
            resumable.write(epoch + 1, run.model, run.optimizer, rng, state)
        observer.on_epoch(record, progress.train_time)
        if observer.should_stop() and epoch + 1 < config.epochs:
            progress.stopped_at = epoch + 1
            break

    # Report test accuracy of the weights selected by validation accuracy.
    assert progress.best_state is not None
    run.model.load_state_dict(progress.best_state)
    test_accuracy = evaluate(run.model, data.test, data.info.crop, config, device)
    result = trial_result(run, progress, test_accuracy)
    if checkpoint is not None:
        save_checkpoint(checkpoint, config, progress.best_state, result)
    return result


def prepare_device(config: TrialConfig, device: torch.device) -> None:
    """Warn about emulated bf16; CUDA: cuDNN autotuning; CPU: the allocator's tuning and
    denormals flushed to zero; either: the run's peak memory measured afresh."""
    if config.precision == "bf16" and not native_bf16(device):
        warnings.warn(
            f"precision bf16 on {device_name(device)}: no native bf16 here (AVX512-BF16/AMX), "
            "so bf16 matmuls are emulated and far slower than fp32",
            stacklevel=3,  # the caller of train
        )
    set_up_for_speed(device)
    reset_peak_memory(device)


def set_up_for_speed(device: torch.device) -> None:
    """What training sets for speed, and `dse bench` and `dse profile` as training does: on a
    CPU the allocator's tuning and denormals flushed to zero (on the calling thread: the mode
    is a thread's), on a GPU cuDNN choosing its fastest kernels."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    else:
        tune_malloc()
        flush_denormals()


@dataclass
class Run:
    """What one training run steps: the seeded model, its optimizer, the shuffling generator."""

    config: TrialConfig
    device: torch.device
    model: nn.Module
    summary: ModelSummary
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    plan: TrainingPlan
    step_loss: ForwardLoss  # (x, labels) -> loss parts: the forward, compiled if the config says
    oom_limit: int | None  # DSE_FAULT_OOM_ABOVE_BATCH, when set
    kill_at: tuple[int, int] | None  # DSE_FAULT_KILL_AT (epoch, step), when set


def build_optimizer(model: nn.Module, config: TrialConfig) -> torch.optim.Optimizer:
    """The run's Adam (also what `dse bench` steps, and the fused seeds' one Adam)."""
    opt_cfg = config.optimizer
    return torch.optim.Adam(
        model.parameters(),
        lr=opt_cfg.lr,
        betas=opt_cfg.betas,
        eps=opt_cfg.eps,
        weight_decay=opt_cfg.weight_decay,
        fused=True,  # one kernel per parameter, not seven: a quarter of a small model's step
    )


def setup(config: TrialConfig, device: torch.device, data: DeviceDataset) -> Run:
    """Model (seeded), Adam, the data-order generator (seeded) and the plan, in that order."""
    torch.manual_seed(config.seed)
    model = build_model(config.model, data.input_shape, data.info.n_classes).to(device)
    summary = summarize(model)
    optimizer = build_optimizer(model, config)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    plan = make_plan(config, len(data.train))
    step_loss = forward_loss(model, config, device, batch_sizes=plan.batch_sizes)
    faults = injected_oom_limit(), injected_kill()
    return Run(config, device, model, summary, optimizer, generator, plan, step_loss, *faults)


@dataclass
class Progress:
    """Where training stands after each epoch: the records, time, the best weights so far."""

    history: list[EpochRecord] = field(default_factory=list)
    train_time: float = 0.0
    best: tuple[float, int, float] = (-1.0, 0, 0.0)  # (val accuracy, epoch, train time at its end)
    best_state: dict[str, torch.Tensor] | None = None
    samples_seen: int = 0
    step: int = 0  # optimizer steps so far: the LR schedule's clock
    stopped_at: int | None = None
    resumed_from: int | None = None  # complete epochs restored from a checkpoint


def progress_state(progress: Progress, epoch: int) -> dict[str, Any]:
    """The progress after `epoch` epochs, as a checkpoint holds it. The best weights are
    left out when they are the model's own (the best epoch is the last): they are then
    the checkpoint's model weights."""
    best_is_current = progress.best[1] == epoch
    return {
        "history": [asdict(record) for record in progress.history],
        "train_time": progress.train_time,
        "best": list(progress.best),
        "best_state": None if best_is_current else progress.best_state,
        "samples_seen": progress.samples_seen,
        "step": progress.step,
    }


def _restore(run: Run, progress: Progress, state: ResumeState, path: Path) -> None:
    """Continue from the checkpoint at `path`: weights, Adam, RNGs, the plan's clock, history."""
    restore_training(path, state, run.model, run.optimizer, run.generator, run.device)
    with restoring(path, "history"):
        restore_progress(progress, state.progress, state.model, state.epoch)
    run.kill_at = None  # a fault of the first attempt: the retry resumes past it


def restore_progress(
    progress: Progress, saved: dict[str, Any], weights: dict[str, torch.Tensor], epoch: int
) -> None:
    """The progress of a checkpoint (progress_state's dict); `weights`: the model's there."""
    progress.history = [EpochRecord(**record) for record in saved["history"]]
    progress.train_time = saved["train_time"]
    val_accuracy, best_epoch, time_at_best = saved["best"]
    progress.best = (val_accuracy, best_epoch, time_at_best)
    best_state = saved["best_state"]
    if best_state is None:  # the best epoch is the last one: its weights are the model's
        best_state = {k: v.detach().to("cpu", copy=True) for k, v in weights.items()}
    progress.best_state = best_state
    progress.samples_seen, progress.step = saved["samples_seen"], saved["step"]
    progress.resumed_from = epoch


def _train_epoch(
    run: Run, data: DeviceDataset, epoch: int, first_step: int, observer: Observer
) -> EpochTotals:
    """One epoch of training steps: shuffle, then per batch crop, set the LR, step; timed
    between two device synchronizations."""
    config, device, optimizer = run.config, run.device, run.optimizer
    crop, pad = data.info.crop, data.info.pad
    batch_size, n_steps = run.plan.batch_sizes[epoch], run.plan.steps[epoch]
    inject_oom(run.oom_limit, batch_size, epoch)
    totals = EpochTotals(losses=torch.empty(n_steps, device=device), parts={})
    clock = StepsClock(device)
    order = torch.randperm(len(data.train), generator=run.generator, device=device)
    for i in range(n_steps):
        idx = order[i * batch_size : (i + 1) * batch_size]
        images = data.train.images[idx]
        images = (
            random_crops(images, pad, crop, run.generator)
            if config.dataset.augment
            else (center_crops(images, crop))
        )
        x, y = to_float(images), data.train.labels[idx]
        lr = run.plan.lr(first_step + i, epoch, i)
        for group in optimizer.param_groups:
            group["lr"] = lr
        totals.lrs.append(lr)

        parts = run.step_loss(x, y)
        optimizer.zero_grad(set_to_none=True)
        parts["loss"].backward()
        optimizer.step()

        totals.losses[i] = parts["loss"].detach()
        for name, value in parts.items():  # sample-weighted sums, kept on the device
            total = totals.parts.setdefault(name, torch.zeros((), device=device))
            total.add_(value.detach(), alpha=y.shape[0])
        if (i + 1) % CHECK_EVERY == 0:
            check_finite(totals, i + 1, epoch)
        kill_if_due(run.kill_at, epoch, i)
        observer.on_step(epoch, i)
    check_finite(totals, n_steps, epoch)
    totals.time_s = clock.seconds()
    totals.compile_s = clock.compiled_seconds()
    return totals


def epoch_record(
    plan: TrainingPlan, epoch: int, totals: EpochTotals, val_accuracy: float, n: int
) -> EpochRecord:
    """The epoch's record; its losses are means over the epoch's `n` samples (host syncs)."""
    return EpochRecord(
        epoch=epoch + 1,
        batch_size=plan.batch_sizes[epoch],
        steps=plan.steps[epoch],
        lr_first=totals.lrs[0],
        lr_last=totals.lrs[-1],
        train_loss=totals.parts["loss"].item() / n,
        loss_parts={k: v.item() / n for k, v in totals.parts.items() if k != "loss"},
        val_accuracy=val_accuracy,
        epoch_time_s=totals.time_s,
        compile_s=totals.compile_s,
    )


def trial_result(run: Run, progress: Progress, test_accuracy: float) -> TrialResult:
    seen, train_time = progress.samples_seen, progress.train_time
    return TrialResult(
        config=run.config.to_dict(),
        train_time_s=train_time,
        compile_s=math.fsum(record.compile_s for record in progress.history),
        time_to_best_s=progress.best[2],
        best_epoch=progress.best[1],
        val_accuracy=progress.best[0],
        test_accuracy=test_accuracy,
        n_params=run.summary.params,
        peak_mem_mb=peak_memory_mb(run.device),
        train_gflops=TRAIN_FLOPS_FACTOR * run.summary.flops_per_sample * seen / 1e9,
        samples_per_s=seen / train_time if train_time > 0 else 0.0,
        history=progress.history,
        environment=environment(run.device, run.config.seed),
        stopped_at=progress.stopped_at,
        resumed_from_epoch=progress.resumed_from,
    )
