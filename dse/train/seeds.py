"""Repeats: one configuration trained with k seeds, one after another, as one TrialResult."""

from __future__ import annotations

from pathlib import Path

import torch

from dse.config import TrialConfig
from dse.data.datasets import DeviceDataset, load_dataset
from dse.train.result import TrialResult
from dse.train.trainer import Observer, resolve_device, train


def train_seeds(
    config: TrialConfig,
    device: str | torch.device = "cpu",
    data_dir: str | Path | None = None,
    observer: Observer | None = None,
    checkpoint: str | Path | None = None,
    data: DeviceDataset | None = None,
) -> TrialResult:
    """Train `config` with each of its config.repeats seeds: seed, seed+1, ...

    repeats = 1 is exactly `train`. With k > 1 the dataset loads once, the seeds train one
    after another on the device, and the result holds the means, the per-seed metrics and
    their std (TrialResult.mean_of); the observer and the checkpoint follow the first seed.
    """
    if config.repeats == 1:
        return train(config, device, data_dir, observer, checkpoint, data)
    device = resolve_device(str(device)) if not isinstance(device, torch.device) else device
    data = data or load_dataset(config.dataset, device, data_dir)
    results = []
    for i in range(config.repeats):
        single = config.with_overrides([f"seed={config.seed + i}", "repeats=1"])
        first = i == 0
        results.append(
            train(
                single,
                device,
                data_dir,
                observer if first else None,
                checkpoint if first else None,
                data,
            )
        )
    return TrialResult.mean_of(results, config.to_dict())
