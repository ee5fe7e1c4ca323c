"""Repeats: one configuration trained with k seeds as one TrialResult; and the run's per-epoch
checkpoint file (dse.train.resume), which says which seed it is at.

The first seed always trains alone, so the trial's costs (train_time_s, time_to_best_s,
peak_mem_mb) are those of one standalone run. With k >= 3 seeds of a CapsNet the other k - 1
train fused, as one model (dse.train.fused): nearly the time of one run instead of k - 1. With
k = 2, or another model, the seeds train one after another (one fused model gains nothing).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import replace
from pathlib import Path

import torch

from dse.config import TrialConfig
from dse.data.datasets import DeviceDataset, load_dataset
from dse.errors import ConfigError
from dse.train.fused import can_fuse, resumable_state, train_fused
from dse.train.result import TrialResult
from dse.train.resume import ResumeFile, ResumeState, SeedCheckpoints
from dse.train.schedules import make_plan
from dse.train.trainer import Observer, resolve_device, train

FUSE_FROM = 3  # repeats from which the seeds after the first train fused (CapsNet only)
# Where fusing pays. auto: on CUDA, where a small model's step is launch-bound. On CPU it did
# not pay: two seeds of quick.yaml's width as one fused step against two steps one after
# another, side by side on 2 AVX-512 cores: 54 against 47 ms (batch 16) and 177 against 172
# ms (batch 64) with 1 thread, 34 against 34 and 111 against 109 with 2 (the arithmetic is
# the same and the per-op overhead saved is small there); a `dse run --space quick --repeats 3`
# took 2.9x the wall time of --repeats 1 with fused seeds. 1: always; 0: never.
FUSE_ENV = "DSE_FUSE_SEEDS"
FUSE_CHOICES = ("auto", "1", "0")


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

    repeats = 1 is exactly `train`. With k > 1 the dataset loads once, the seeds train on the
    device (the first alone; the others one after another, or fused: see the module's note),
    and the result holds the means, the per-seed metrics and their std (TrialResult.mean_of;
    with fused seeds the costs are the first seed's); the observer and the checkpoint follow
    the first seed.

    `resume`: the run's per-epoch checkpoint file. The run resumes from it when it holds a
    state of this config, writes it after every epoch of every seed, and removes it once the
    run completes (unless kept); the result then says where it resumed.
    """
    state = resume.load(config) if resume is not None else None
    if config.repeats == 1:
        epochs = SeedCheckpoints(resume, config.to_dict(), start=state) if resume else None
        result = train(config, device, data_dir, observer, checkpoint, data, epochs)
    else:
        fuse = first_fused(config, device) is not None
        if state is not None and state.seed_index >= 1 and fuse != resumable_state(state):
            state = _restart_after_first(state, fuse)  # saved fused, or not, and now the other
        result = _train_repeats(config, device, data_dir, observer, checkpoint, data, resume, state)
        if state is not None:
            result = replace(result, resumed_from_epoch=state.epoch, resumed_seed=state.seed_index)
    if resume is not None:
        resume.finish()
    return result


def fuses_on(device: str | torch.device) -> bool:
    """Whether seeds train fused on `device` (FUSE_ENV: auto, 1 or 0)."""
    choice = os.environ.get(FUSE_ENV, "auto")
    if choice not in FUSE_CHOICES:
        raise ConfigError(f"{FUSE_ENV}={choice}: expected one of {', '.join(FUSE_CHOICES)}")
    return choice == "1" or (choice == "auto" and torch.device(device).type == "cuda")


def first_fused(config: TrialConfig, device: str | torch.device) -> int | None:
    """The index of the first seed that trains fused (the others after it too); None: none."""
    fused = config.repeats >= FUSE_FROM and can_fuse(config) and fuses_on(device)
    return 1 if fused else None


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
    """The seeds alone one after another, or the first alone and the rest fused (FUSE_FROM);
    resumed at the checkpoint's seed (or fused group), the seeds before it taken from the
    checkpoint (the observer hears the first seed's epochs as restored)."""
    device = resolve_device(str(device)) if not isinstance(device, torch.device) else device
    data = data or load_dataset(config.dataset, device, data_dir)
    fuse = first_fused(config, device) is not None
    alone = 1 if fuse else config.repeats
    results = [TrialResult.from_dict(done) for done in state.finished] if state else []
    if results and observer is not None:
        observer.on_start(make_plan(_seed(config, 0), len(data.train)))
        observer.on_resume(results[0].history)

    def checkpoints(i: int) -> SeedCheckpoints | None:
        if resume is None:
            return None
        # epoch 0: only the seeds before it resume (_restart_after_first)
        start = state if state is not None and state.seed_index == i and state.epoch else None
        finished = [r.to_dict() for r in results]
        return SeedCheckpoints(resume, config.to_dict(), i, finished, start)

    def train_alone(i: int) -> TrialResult:
        first = i == 0
        return train(
            _seed(config, i),
            device,
            data_dir,
            observer if first else None,
            checkpoint if first else None,
            data,
            checkpoints(i),
        )

    for i in range(len(results), alone):
        results.append(train_alone(i))
    if fuse and len(results) < config.repeats:
        seeds = [_seed(config, i) for i in range(alone, config.repeats)]
        results += _fused_unless_oom(seeds, device, data, checkpoints(alone)) or []
        state = None  # seeds left (out of memory fused) start afresh, one after another
    for i in range(len(results), config.repeats):
        results.append(train_alone(i))
    return TrialResult.mean_of(results, config.to_dict())


def _fused_unless_oom(
    seeds: list[TrialConfig],
    device: torch.device,
    data: DeviceDataset,
    epochs: SeedCheckpoints | None,
) -> list[TrialResult] | None:
    """train_fused; None (a warning) when the group runs out of device memory, which its
    seeds alone may not: they then train one after another."""
    try:
        return train_fused(seeds, device, data, epochs)
    except torch.OutOfMemoryError as exc:  # handled outside: its traceback holds the tensors
        reason = str(exc).splitlines()[0] if str(exc) else "out of memory"
    if device.type == "cuda":
        torch.cuda.empty_cache()
    warnings.warn(
        f"{len(seeds)} seeds fused: {reason}; training them one after another", stacklevel=4
    )
    return None


def _restart_after_first(state: ResumeState, fuse: bool) -> ResumeState:
    """A checkpoint of the seeds after the first trained one by one where they now train
    fused (or the other way round: another device, or FUSE_ENV): the first seed's result is
    kept, the seeds after it start afresh (epoch 0)."""
    saved, now = ("alone", "fused") if fuse else ("fused", "one after another")
    warnings.warn(
        f"the checkpoint holds seed {state.seed_index + 1} trained {saved}; the seeds after "
        f"the first now train {now}: they start afresh",
        stacklevel=3,
    )
    return replace(state, seed_index=1, finished=state.finished[:1], epoch=0)


def _seed(config: TrialConfig, index: int) -> TrialConfig:
    """The run's `index`-th seed as a config of its own."""
    return config.with_overrides([f"seed={config.seed + index}", "repeats=1"])
