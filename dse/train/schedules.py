"""Batch-size schedules and LR policies as pure functions of the position in training.

Written by hand rather than with torch's schedulers because a batch-size schedule makes the
number of steps per epoch vary: the policies here take (global step, fractional epoch) and so
stay exact across batch-size changes. one_cycle equals torch's OneCycleLR(three_phase=True,
anneal_strategy="linear", cycle_momentum=False) and warm_restarts equals
CosineAnnealingWarmRestarts stepped with fractional epochs (except at a restart that float
rounding puts a hair later, where torch keeps the old period's lr_min); the tests check both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dse.config import (
    AdaBatch,
    BatchScheduleConfig,
    ConstantLR,
    ExpDecayLR,
    LRPolicyConfig,
    OneCycleLR,
    TrialConfig,
    WarmAdaBatchLR,
    WarmRestartsLR,
)

ONE_CYCLE_PEAK = 0.45  # share of the steps spent rising to lr_max (and as many falling back)
ONE_CYCLE_FINAL_DIV = 10.0  # the last 10% anneal from lr_min to lr_min / 10
RESTART_SLACK = 1e-9  # periods: a step rounded just below a restart still starts the period


def batch_size_at(schedule: BatchScheduleConfig, epoch: int) -> int:
    """Batch size of epoch `epoch` (counted from 0)."""
    size = schedule.batch_size
    if isinstance(schedule, AdaBatch):
        for start, new_size in schedule.milestones:
            if epoch >= start:
                size = new_size
    return size


def batch_phases(schedule: BatchScheduleConfig, epochs: int) -> list[tuple[int, int]]:
    """(first epoch, end epoch) of each stretch with one batch size, within `epochs`."""
    starts = [0]
    if isinstance(schedule, AdaBatch):
        starts += [e for e, _ in schedule.milestones if 0 < e < epochs]
    return list(zip(starts, [*starts[1:], epochs], strict=True))


def cosine(lr_max: float, lr_min: float, t: float) -> float:
    """lr_max at t = 0 down to lr_min at t = 1, half a cosine."""
    return lr_min + (lr_max - lr_min) * (1.0 + math.cos(math.pi * t)) / 2.0


def one_cycle_lr(policy: OneCycleLR, step: int, total_steps: int) -> float:
    # Phase ends as torch's OneCycleLR places them: the last step reaches lr_min / 10 exactly.
    ends = [ONE_CYCLE_PEAK * total_steps - 1, 2 * ONE_CYCLE_PEAK * total_steps - 2, total_steps - 1]
    values = [policy.lr_min, policy.lr_max, policy.lr_min, policy.lr_min / ONE_CYCLE_FINAL_DIV]
    start = 0.0
    for i, end in enumerate(ends):
        if step <= end or i == len(ends) - 1:
            t = min(max((step - start) / (end - start), 0.0), 1.0) if end > start else 1.0
            return values[i] + (values[i + 1] - values[i]) * t
        start = end
    raise AssertionError("unreachable")


def sgdr_period(t0: float, mult: float, epoch_pos: float) -> tuple[float, float]:
    """(start, length) in epochs of the SGDR period holding `epoch_pos`. A step at a restart
    starts the new period although `pos % T_0` or the log of the period count rounds below it
    (0.9 % 0.3 is 0.3 - 6e-17; log3(243) is 4.9999...)."""
    if mult == 1:
        n = math.floor(epoch_pos / t0 + RESTART_SLACK)
        return n * t0, t0
    n = math.floor(math.log(epoch_pos / t0 * (mult - 1) + 1, mult) + RESTART_SLACK)
    return t0 * (mult**n - 1) / (mult - 1), t0 * mult**n


def warm_restarts_lr(policy: WarmRestartsLR, epoch_pos: float) -> float:
    """SGDR: the period number and the position in it, for T_mult = 1 and T_mult > 1."""
    start, length = sgdr_period(policy.T_0, policy.T_mult, epoch_pos)
    return cosine(policy.lr_max, policy.lr_min, max(epoch_pos - start, 0.0) / length)


def warm_adabatch_lr(
    policy: WarmAdaBatchLR, epoch_pos: float, phases: list[tuple[int, int]]
) -> float:
    """One cosine cycle per batch-size phase: restarts fall exactly on the batch-size changes."""
    for start, end in phases:
        if epoch_pos < end:
            return cosine(policy.lr_max, policy.lr_min, (epoch_pos - start) / (end - start))
    return policy.lr_min


@dataclass(frozen=True)
class TrainingPlan:
    """The step layout of a whole run and the learning rate at every step."""

    lr0: float
    policy: LRPolicyConfig
    batch_sizes: tuple[int, ...]  # per epoch
    steps: tuple[int, ...]  # optimizer steps per epoch
    phases: tuple[tuple[int, int], ...]  # batch-size phases (first epoch, end epoch)

    @property
    def total_steps(self) -> int:
        return sum(self.steps)

    def lr(self, step: int, epoch: int, step_in_epoch: int) -> float:
        """LR of global step `step` (from 0), the `step_in_epoch`-th step of epoch `epoch`."""
        epoch_pos = epoch + step_in_epoch / self.steps[epoch]
        p = self.policy
        if isinstance(p, ConstantLR):
            return self.lr0
        if isinstance(p, ExpDecayLR):
            exponent = step / p.decay_steps
            return self.lr0 * p.rate ** (math.floor(exponent) if p.staircase else exponent)
        if isinstance(p, OneCycleLR):
            return one_cycle_lr(p, step, self.total_steps)
        if isinstance(p, WarmRestartsLR):
            return warm_restarts_lr(p, epoch_pos)
        if isinstance(p, WarmAdaBatchLR):
            return warm_adabatch_lr(p, epoch_pos, list(self.phases))
        raise TypeError(f"unknown LR policy {p!r}")


def epoch_batch_sizes(config: TrialConfig) -> tuple[int, ...]:
    """The batch size of each of the trial's epochs."""
    return tuple(batch_size_at(config.batch_schedule, e) for e in range(config.epochs))


def make_plan(config: TrialConfig, n_train: int) -> TrainingPlan:
    """Batch sizes and step counts per epoch; the last batch of an epoch may be smaller."""
    sizes = epoch_batch_sizes(config)
    return TrainingPlan(
        lr0=config.optimizer.lr,
        policy=config.lr_policy,
        batch_sizes=sizes,
        steps=tuple(math.ceil(n_train / size) for size in sizes),
        phases=tuple(batch_phases(config.batch_schedule, config.epochs)),
    )
