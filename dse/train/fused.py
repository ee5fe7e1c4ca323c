"""Several seeds of one CapsNet config trained at once as one StackedCapsNet (dse.model.stacked).

Fused model k is seed k's standalone run (dse.train.trainer.train) done side by side: each is
built by the trainer's own `setup` for its seed (the same initial weights, the same data-order
generator, the same plan), sees the same batches and crops (drawn from its own generator), and
steps with one Adam over the stacked parameters (Adam is element-wise: K Adams in one), made
with the settings of the trainer's. The loss is the sum of the models' mean losses, so each
model's gradient is its own. The numbers equal the standalone runs' up to the summation order
of the grouped kernels (the tests bound the difference).

Each model is validated every epoch and keeps its own best weights, history and TrialResult
(marked `fused`; its times are the group's). The group checkpoints as one unit (the stacked
weights, Adam, every generator, each model's progress) through dse.train.resume.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from dse.config import TrialConfig
from dse.data.batching import center_crops, random_crops, to_float
from dse.data.datasets import DeviceDataset, Split
from dse.model.stacked import StackedCapsNet
from dse.train.clock import StepsClock
from dse.train.faults import inject_oom, kill_if_due
from dse.train.precision import autocast
from dse.train.result import TrialResult
from dse.train.resume import ResumeState, SeedCheckpoints, restore_training, restoring, rng_states
from dse.train.trainer import (
    CHECK_EVERY,
    EpochTotals,
    Progress,
    Run,
    build_optimizer,
    check_finite,
    epoch_record,
    prepare_device,
    progress_state,
    restore_progress,
    setup,
    trial_result,
)

FUSED_KEY = "fused"  # the checkpoint's progress: each model's progress_state, in seed order


def can_fuse(config: TrialConfig) -> bool:
    """Whether seeds of `config` can train fused: CapsNets only (other models train alone)."""
    return config.model.name == "capsnet"


def train_fused(
    configs: list[TrialConfig],
    device: torch.device,
    data: DeviceDataset,
    resumable: SeedCheckpoints | None = None,
) -> list[TrialResult]:
    """Train the configs (one CapsNet config, one seed each) as one fused model; each one's
    TrialResult. With `resumable`: resume the group from its state when it has one, and write
    the group's state after each epoch. Eagerly, whatever config.compile says: inductor
    failed on the stacked model (torch 2.13, CPU: a symbolic batch size in its grouped
    convolutions)."""
    prepare_device(configs[0], device)
    runs = [setup(config, device, data) for config in configs]  # seeded as standalone runs
    model = StackedCapsNet([run.model for run in runs]).to(device)
    optimizer = build_optimizer(model, configs[0])  # the trainer's, over the stacked weights
    progress = [Progress() for _ in runs]
    if resumable is not None and resumable.start is not None:
        _restore(runs, model, optimizer, progress, resumable.start, resumable.file.path)
    plan, config = runs[0].plan, configs[0]

    model.train()
    for epoch in range(len(progress[0].history), config.epochs):
        totals = _train_epoch(runs, model, optimizer, data, epoch, progress[0].step)
        val = evaluate_stacked(model, data.val, data.info.crop, config, device)
        for k, own in enumerate(progress):
            own.step += plan.steps[epoch]
            own.train_time += totals[k].time_s
            own.samples_seen += len(data.train)
            own.history.append(epoch_record(plan, epoch, totals[k], val[k], len(data.train)))
            if val[k] > own.best[0]:
                own.best = (val[k], epoch + 1, own.train_time)
                own.best_state = model.state_of(k)
        if resumable is not None:  # outside the timed steps
            rng = rng_states(runs[0].generator, device)
            rng[FUSED_KEY] = [run.generator.get_state() for run in runs]
            state = progress_state(progress[0], epoch + 1)
            state[FUSED_KEY] = [progress_state(own, epoch + 1) for own in progress]
            resumable.write(epoch + 1, model, optimizer, rng, state)

    for k, own in enumerate(progress):  # each model's best-validation weights, tested at once
        assert own.best_state is not None
        model.load_state_of(k, own.best_state)
    test = evaluate_stacked(model, data.test, data.info.crop, config, device)
    return [
        replace(trial_result(run, own, test[k]), fused=True)
        for k, (run, own) in enumerate(zip(runs, progress, strict=True))
    ]


def resumable_state(state: ResumeState) -> bool:
    """Whether a checkpoint holds a fused group's state (not a standalone seed's)."""
    return FUSED_KEY in state.progress


def _restore(
    runs: list[Run],
    model: StackedCapsNet,
    optimizer: torch.optim.Optimizer,
    progress: list[Progress],
    state: ResumeState,
    path: Path,
) -> None:
    """Continue the group from the checkpoint at `path`: weights, Adam, every RNG, each one's
    progress."""
    restore_training(path, state, model, optimizer, runs[0].generator, runs[0].device)
    for k, (run, own) in enumerate(zip(runs, progress, strict=True)):
        with restoring(path, "random states"):
            run.generator.set_state(state.rng[FUSED_KEY][k])
        with restoring(path, "history"):
            restore_progress(own, state.progress[FUSED_KEY][k], model.state_of(k), state.epoch)
        run.kill_at = None  # a fault of the first attempt: the retry resumes past it


def _train_epoch(
    runs: list[Run],
    model: StackedCapsNet,
    optimizer: torch.optim.Optimizer,
    data: DeviceDataset,
    epoch: int,
    first_step: int,
) -> list[EpochTotals]:
    """One epoch of the group, as trainer's epoch: each model its own shuffle and crops."""
    first, device = runs[0], runs[0].device
    crop, pad = data.info.crop, data.info.pad
    batch_size, n_steps = first.plan.batch_sizes[epoch], first.plan.steps[epoch]
    inject_oom(first.oom_limit, batch_size, epoch)
    totals = EpochTotals(losses=torch.empty(n_steps, len(runs), device=device), parts={})
    clock = StepsClock(device)
    n = len(data.train)
    orders = [torch.randperm(n, generator=run.generator, device=device) for run in runs]
    for i in range(n_steps):
        idx = torch.stack([order[i * batch_size : (i + 1) * batch_size] for order in orders])
        images = data.train.images[idx]  # [K, B, C, H, W]
        if first.config.dataset.augment:
            pairs = zip(images, runs, strict=True)
            images = torch.stack([random_crops(im, pad, crop, run.generator) for im, run in pairs])
        else:
            images = center_crops(images, crop)
        x, y = to_float(images), data.train.labels[idx]
        lr = first.plan.lr(first_step + i, epoch, i)
        for group in optimizer.param_groups:
            group["lr"] = lr
        totals.lrs.append(lr)

        with autocast(first.config, device):
            out = model(x, y)
        parts = model.loss(out, x, y)  # [K] each
        optimizer.zero_grad(set_to_none=True)
        parts["loss"].sum().backward()
        optimizer.step()

        totals.losses[i] = parts["loss"].detach()
        for name, value in parts.items():  # sample-weighted sums per model, on the device
            total = totals.parts.setdefault(name, torch.zeros(len(runs), device=device))
            total.add_(value.detach(), alpha=y.shape[1])
        if (i + 1) % CHECK_EVERY == 0:
            check_finite(totals, i + 1, epoch)
        kill_if_due(first.kill_at, epoch, i)
    check_finite(totals, n_steps, epoch)
    totals.time_s = clock.seconds()
    return [
        replace(
            totals, losses=totals.losses[:, k], parts={m: v[k] for m, v in totals.parts.items()}
        )
        for k in range(len(runs))
    ]


@torch.no_grad()
def evaluate_stacked(
    model: StackedCapsNet, split: Split, crop: int, config: TrialConfig, device: torch.device
) -> list[float]:
    """Each model's accuracy on a split (trainer.evaluate for K models, one host sync)."""
    was_training = model.training
    model.eval()
    correct = torch.zeros(model.k, dtype=torch.int64, device=device)
    for start in range(0, len(split), config.eval_batch_size):
        images = split.images[start : start + config.eval_batch_size]
        labels = split.labels[start : start + config.eval_batch_size]
        x = to_float(center_crops(images, crop))
        with autocast(config, device):
            scores = model(x.expand(model.k, *x.shape), reconstruct=False).scores  # [K, B, J]
        correct += (scores.argmax(-1) == labels).sum(-1)
    model.train(was_training)
    return [count / len(split) for count in correct.tolist()]
