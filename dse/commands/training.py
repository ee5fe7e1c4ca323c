"""One configuration: train it, evaluate a saved model, summarize the model, show configs."""

from __future__ import annotations

from dataclasses import asdict

from dse.commands.paths import check_writable
from dse.errors import ConfigError, choose_from, option
from dse.output import Rows, Shown
from dse.presets import preset, preset_names, resolve_config


def train(
    config: str | None,
    preset_name: str | None,
    overrides: list[str],
    device: str = "cpu",
    data_dir: str | None = None,
    save: str | None = None,
    threads: int | None = None,
    progress: bool = False,
) -> Shown:
    """Train a config (every seed of its repeats) and show its history and metrics."""
    import torch

    from dse.train.seeds import train_seeds
    from dse.train.trainer import resolve_device

    resolved = resolve_config(config, preset_name, overrides)
    torch_device = resolve_device(device)
    if save:
        check_writable(save, "save")
    if threads:
        torch.set_num_threads(threads)
    if progress:
        from dse.progress import TrainingProgress

        with TrainingProgress(resolved.name or "train") as observer:
            result = train_seeds(resolved, torch_device, data_dir, observer, checkpoint=save)
    else:
        result = train_seeds(resolved, torch_device, data_dir, checkpoint=save)
    history = [
        {k: v for k, v in asdict(record).items() if k != "loss_parts"} | record.loss_parts
        for record in result.history
    ]
    metrics = [{"metric": k, "value": v} for k, v in result.metrics().items()]
    return Shown(
        tables=[Rows(history, "history"), Rows(metrics, "result")],
        data=result.to_dict(),
        footer=f"saved {save}" if save else None,
    )


SPLITS = ("test", "val")


def evaluate(
    checkpoint: str, split: str = "test", device: str = "cpu", data_dir: str | None = None
) -> Shown:
    """Accuracy of a checkpoint's weights on a split of its dataset (same split as training)."""
    from dse.data.datasets import load_dataset
    from dse.train.checkpoint import load_checkpoint
    from dse.train.trainer import evaluate as accuracy_on
    from dse.train.trainer import resolve_device

    if split not in SPLITS:
        raise ConfigError(choose_from(option("split"), split, SPLITS))
    loaded = load_checkpoint(checkpoint)
    torch_device = resolve_device(device)
    model = loaded.model(torch_device)
    data = load_dataset(loaded.config.dataset, torch_device, data_dir)
    part = data.test if split == "test" else data.val
    accuracy = accuracy_on(model, part, data.info.crop, loaded.config, torch_device)
    row = {
        "checkpoint": checkpoint,
        "dataset": loaded.config.dataset.name,
        "split": split,
        "accuracy": accuracy,
    }
    return Shown(tables=[Rows([row])], data=row)


def summary(config: str | None, preset_name: str | None, overrides: list[str]) -> Shown:
    """Per-layer parameters and forward FLOPs per sample of the configured model."""
    from dse.data.datasets import INFO
    from dse.model import build_model, summarize

    resolved = resolve_config(config, preset_name, overrides)
    info = INFO[resolved.dataset.name]
    model = build_model(resolved.model, (info.channels, info.crop, info.crop), info.n_classes)
    layers = summarize(model)
    rows = [
        {"layer": r.name, "n_params": r.params, "mflops_per_sample": r.flops / 1e6}
        for r in layers.layers
    ]
    rows.append(
        {
            "layer": "total",
            "n_params": layers.params,
            "mflops_per_sample": layers.flops_per_sample / 1e6,
        }
    )
    data = {
        "name": resolved.name,
        "n_params": layers.params,
        "flops_per_sample": layers.flops_per_sample,
        "layers": [
            {"name": r.name, "n_params": r.params, "flops_per_sample": r.flops}
            for r in layers.layers
        ],
    }
    title = f"{resolved.model.name} on {resolved.dataset.name}"
    return Shown(tables=[Rows(rows, title)], data=data)


def show_config(config: str | None, preset_name: str | None, overrides: list[str]) -> Shown:
    """The resolved TrialConfig as YAML (a file or preset, then overrides)."""
    return Shown(text=resolve_config(config, preset_name, overrides).to_yaml())


def presets() -> Shown:
    """The named presets (the paper's eight points)."""
    rows = []
    for name in preset_names():
        c = preset(name)
        rows.append(
            {
                "preset": name,
                "lr_policy": c.lr_policy.name,
                "batch_schedule": c.batch_schedule.name,
                "weight_sharing": getattr(c.model, "weight_sharing", "-"),
                "decoder": getattr(c.model, "decoder", "-"),
            }
        )
    return Shown(tables=[Rows(rows)])
