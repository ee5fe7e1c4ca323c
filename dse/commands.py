"""The jobs behind the CLI commands, callable from Python with the same arguments."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from dse.config import TrialConfig
from dse.data.datasets import INFO
from dse.errors import ConfigError
from dse.model import ModelSummary, build_model, summarize
from dse.presets import resolve_config
from dse.train.result import TrialResult
from dse.train.seeds import train_seeds
from dse.train.trainer import Observer, resolve_device


def check_writable(path: str | Path, option: str) -> None:
    """Fail before any work when an output file cannot be written."""
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise ConfigError(f"{option} {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"{option} {path}: directory {parent} is not writable")


def check_output_dir(path: str | Path, option: str) -> None:
    """Fail before any work when a folder for outputs cannot be created or written."""
    folder = Path(path).resolve()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"{option} {path}: {existing} is not a directory")
    if not os.access(existing, os.W_OK):
        raise ConfigError(f"{option} {path}: directory {existing} is not writable")


def train_command(
    config_path: str | None,
    preset: str | None,
    overrides: list[str],
    device: str = "cpu",
    data_dir: str | None = None,
    save: str | None = None,
    threads: int | None = None,
    progress: bool = False,
) -> TrialResult:
    config = resolve_config(config_path, preset, overrides)
    torch_device = resolve_device(device)
    if save:
        check_writable(save, "--save")
    if threads:
        torch.set_num_threads(threads)
    if not progress:
        return train_seeds(config, torch_device, data_dir, checkpoint=save)
    from dse.progress import TrainingProgress

    with TrainingProgress(config.name or "train") as observer:
        return train_seeds(config, torch_device, data_dir, observer=observer, checkpoint=save)


def evaluate_command(
    checkpoint: str, split: str, device: str = "cpu", data_dir: str | None = None
) -> tuple[float, TrialConfig]:
    """Accuracy of a checkpoint's weights on a split of its dataset (same split as training)."""
    from dse.data.datasets import load_dataset
    from dse.train.checkpoint import load_checkpoint
    from dse.train.trainer import evaluate

    loaded = load_checkpoint(checkpoint)
    torch_device = resolve_device(device)
    model = loaded.model(torch_device)
    data = load_dataset(loaded.config.dataset, torch_device, data_dir)
    part = data.test if split == "test" else data.val
    return evaluate(model, part, data.info.crop, loaded.config, torch_device), loaded.config


def summary_command(
    config_path: str | None, preset: str | None, overrides: list[str]
) -> tuple[TrialConfig, ModelSummary]:
    config = resolve_config(config_path, preset, overrides)
    info = INFO[config.dataset.name]
    model = build_model(config.model, (info.channels, info.crop, info.crop), info.n_classes)
    return config, summarize(model)


__all__ = ["Observer", "check_output_dir", "check_writable", "summary_command", "train_command"]
