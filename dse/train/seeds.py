"""Repeats: one configuration trained with k seeds, one after another, as one TrialResult; and
the run's per-epoch checkpoint file (dse.train.resume), which says which seed it is at."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from dse.config import TrialConfig
from dse.data.datasets import DeviceDataset, load_dataset
from dse.train.result import TrialResult
from dse.train.resume import ResumeFile, ResumeState, SeedCheckpoints
from dse.train.schedules import make_plan
from dse.train.trainer import Observer, resolve_device, train


def train_seeds(
    config: TrialConfig,
    device: str | torch.device = "cpu",
    data_dir: str | Path | None = None,
    observer: Observer | None = None,
    checkpoint: str | Path | None = None,
    data: DeviceDataset | None = None,
    resume: ResumeFile | None = None,
) -> TrialResult:
    """Train `config` with each of its config.repeats seeds: seed, seed+1, ...

    repeats = 1 is exactly `train`. With k > 1 the dataset loads once, the seeds train one
    after another on the device, and the result holds the means, the per-seed metrics and
    their std (TrialResult.mean_of); the observer and the checkpoint follow the first seed.

    `resume`: the run's per-epoch checkpoint file. The run resumes from it when it holds a
    state of this config, writes it after every epoch of every seed, and removes it once the
    run completes (unless kept); the result then says where it resumed.
    """
    state = resume.load(config) if resume is not None else None
    if config.repeats == 1:
        epochs = SeedCheckpoints(resume, config.to_dict(), start=state) if resume else None
        result = train(config, device, data_dir, observer, checkpoint, data, epochs)
    else:
        result = _train_repeats(config, device, data_dir, observer, checkpoint, data, resume, state)
        if state is not None:
            result = replace(result, resumed_from_epoch=state.epoch, resumed_seed=state.seed_index)
    if resume is not None:
        resume.finish()
    return result


def _train_repeats(
    config: TrialConfig,
    device: str | torch.device,
    data_dir: str | Path | None,
    observer: Observer | None,
    checkpoint: str | Path | None,
    data: DeviceDataset | None,
    resume: ResumeFile | None,
    state: ResumeState | None,
) -> TrialResult:
    """The seeds one after another; resumed at the checkpoint's seed, the seeds before it
    taken from the checkpoint (the observer hears the first seed's epochs as restored)."""
    device = resolve_device(str(device)) if not isinstance(device, torch.device) else device
    data = data or load_dataset(config.dataset, device, data_dir)
    results = [TrialResult.from_dict(done) for done in state.finished] if state else []
    if results and observer is not None:
        observer.on_start(make_plan(_seed(config, 0), len(data.train)))
        observer.on_resume(results[0].history)
    for i in range(len(results), config.repeats):
        first = i == 0
        epochs = None
        if resume is not None:
            start = state if state is not None and state.seed_index == i else None
            finished = [r.to_dict() for r in results]
            epochs = SeedCheckpoints(resume, config.to_dict(), i, finished, start)
        results.append(
            train(
                _seed(config, i),
                device,
                data_dir,
                observer if first else None,
                checkpoint if first else None,
                data,
                epochs,
            )
        )
    return TrialResult.mean_of(results, config.to_dict())


def _seed(config: TrialConfig, index: int) -> TrialConfig:
    """The run's `index`-th seed as a config of its own."""
    return config.with_overrides([f"seed={config.seed + index}", "repeats=1"])
