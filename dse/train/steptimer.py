"""Time full training steps (batch, forward, loss, backward, update) of a config on a device.

Used by bench/ scripts; variants are timed alternately in one process so that machine noise
hits them alike and their ratio means something.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from dse.config import TrialConfig
from dse.data.datasets import INFO
from dse.model import build_model, summarize
from dse.model.costs import TRAIN_FLOPS_FACTOR
from dse.train.environment import synchronize
from dse.train.trainer import _autocast


@dataclass
class StepTiming:
    name: str
    batch: int
    ms_per_step: float  # median
    samples_per_s: float
    gflops: float  # achieved, from the analytic count


class StepRunner:
    """One model + optimizer + a random batch of the right shape, ready to be stepped."""

    def __init__(self, name: str, config: TrialConfig, device: torch.device, batch: int):
        info = INFO[config.dataset.name]
        torch.manual_seed(config.seed)
        self.name, self.config, self.device, self.batch = name, config, device, batch
        shape = (info.channels, info.crop, info.crop)
        self.model = build_model(config.model, shape, info.n_classes).to(device)
        self.flops = TRAIN_FLOPS_FACTOR * summarize(self.model).flops_per_sample * batch
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.optimizer.lr)
        self.x = torch.rand(batch, *shape, device=device)
        self.y = torch.randint(0, info.n_classes, (batch,), device=device)
        self.times: list[float] = []

    def step(self) -> float:
        synchronize(self.device)
        start = time.perf_counter()
        with _autocast(self.config, self.device):
            out = self.model(self.x, self.y)
        loss = self.model.loss(out, self.x, self.y)["loss"]
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        synchronize(self.device)
        return time.perf_counter() - start

    def timing(self) -> StepTiming:
        median = statistics.median(self.times)
        return StepTiming(
            self.name, self.batch, median * 1e3, self.batch / median, self.flops / median / 1e9
        )


def time_steps(
    variants: dict[str, TrialConfig], device: torch.device, batch: int, steps: int, warmup: int
) -> list[StepTiming]:
    """Median step time of each variant, stepping the variants in turn (round robin)."""
    runners = [StepRunner(name, config, device, batch) for name, config in variants.items()]
    for _ in range(warmup):
        for runner in runners:
            runner.step()
    for _ in range(steps):
        for runner in runners:
            runner.times.append(runner.step())
    return [runner.timing() for runner in runners]
