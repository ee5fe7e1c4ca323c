"""One configuration: train it, evaluate a saved model, summarize the model, show configs."""

from __future__ import annotations

import contextlib
import shlex
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dse.commands.paths import check_output_dir, check_writable
from dse.config import TrialConfig
from dse.errors import ConfigError, Interrupted, choose_from, option
from dse.output import Rows, Shown, csv_text, file_stem
from dse.presets import config_source, preset, preset_names, resolve_config
from dse.search.devices import check_threads, set_torch_threads
from dse.search.signals import signal_of, sigterm_as_interrupt


def train(
    config: str | None,
    preset_name: str | None,
    overrides: list[str],
    device: str = "cpu",
    data_dir: str | None = None,
    save: str | None = None,
    threads: int | None = None,
    progress: bool = False,
    resume: str | None = None,
    checkpoint_dir: str | None = None,
    keep_checkpoints: bool = False,
) -> Shown:
    """Train a config (every seed of its repeats) and show its history and metrics.

    After each epoch the run writes its checkpoint (`checkpoint_dir`, default
    results/checkpoints, as train-NAME.pt), removed once it completes unless
    `keep_checkpoints`. `resume`: a checkpoint to go on from, with its configuration; it is
    the user's file, so it is kept (and rewritten after each epoch). Ctrl-C (or SIGTERM)
    leaves the checkpoint and raises Interrupted, its line the command that resumes."""
    check_threads(threads)
    given = {"device": device if device != "cpu" else None, "data_dir": data_dir}
    given |= {"threads": threads, "save": save, "keep_checkpoints": keep_checkpoints}
    file = resolved = None
    # Ctrl-C or SIGTERM from the first moment on (importing torch takes seconds)
    with sigterm_as_interrupt():
        try:
            _check_flags(device, save)  # the flags before the configuration and its data
            file, resolved = _checkpoint_file(
                config, preset_name, overrides, resume, checkpoint_dir, keep_checkpoints, data_dir
            )
            result, busy = _train_run(resolved, file, device, data_dir, save, threads, progress)
        except KeyboardInterrupt as exc:
            line = _resume_line(file, resolved, resume, given)
            raise Interrupted(line, signal_of(exc)) from None
    if checkpoint_dir is None and resume is None:  # the default folder, if nothing else is in it
        with contextlib.suppress(OSError):
            file.path.parent.rmdir()
    history = [
        {k: v for k, v in asdict(record).items() if k != "loss_parts"} | record.loss_parts
        for record in result.history
    ]
    metrics = [{"metric": k, "value": v} for k, v in result.metrics().items()]
    if result.config.get("compile"):  # set-up seconds, apart from train_time_s
        metrics.append({"metric": "compile_s", "value": result.compile_s})
    return Shown(
        tables=[Rows(history, "history"), Rows(metrics, "result")],
        data=result.to_dict(),
        csv=csv_text(history),  # one table: the history (its metrics: table or json)
        footer=_saved_line(save, result) if save else None,
        notes=_train_notes(file, resolved, resume, busy),
    )


def _check_flags(device: str, save: str | None) -> None:
    """The device and the weights' file, refused before the config is read."""
    from dse.train.trainer import resolve_device

    resolve_device(device)
    if save:
        check_writable(save, "save")


def _train_notes(file: Any, config: TrialConfig, resume: str | None, busy: str | None) -> list[str]:
    """After the result: a resumed checkpoint that was already complete (nothing trained, the
    result is the checkpoint's), whether the checkpoint is kept, busy CPUs."""
    if resume is not None and file.trained == 0:
        seeds = f" of {config.repeats} seeds" if config.repeats > 1 else ""
        done = f"{config.epochs} of {config.epochs} epochs{seeds}"
        return [
            f"{resume}: already complete ({done}): nothing trained; the result is the checkpoint's"
        ]
    return [*([f"checkpoint kept: {file.path}"] if file.keep else []), *([busy] if busy else [])]


def _saved_line(save: str, result: Any) -> str:
    """Where the weights went; with repeats, whose they are: the first seed's, whose test
    accuracy (what dse evaluate finds) is not the seeds' mean shown above."""
    if not result.per_seed:
        return f"saved {save}"
    first = result.per_seed[0]
    return (
        f"saved {save}: seed {first['seed']}'s weights (test_accuracy {first['test_accuracy']}; "
        f"above, the mean of {len(result.per_seed)} seeds)"
    )


DEFAULT_CHECKPOINT_DIR = "results/checkpoints"


def _checkpoint_file(
    config: str | None,
    preset_name: str | None,
    overrides: list[str],
    resume: str | None,
    checkpoint_dir: str | None,
    keep: bool,
    data_dir: str | None,
) -> tuple[Any, TrialConfig]:
    """The run's per-epoch checkpoint file (a ResumeFile) and its configuration: the one of
    `resume`, or a new file named after the configuration in `checkpoint_dir`. Its dataset
    section is checked against the files first, naming where the configuration comes from."""
    from dse.data.datasets import check_data
    from dse.train.resume import ResumeFile

    if resume is not None:
        given = {"config": config, "preset": preset_name, "set": overrides}
        given["checkpoint_dir"] = checkpoint_dir
        extra = [name for name, value in given.items() if value]
        if extra:
            raise ConfigError(
                f"{option('resume')} {resume}: goes on with the checkpoint's configuration, "
                f"in its file (no {option(extra[0])})"
            )
        # The user named this file: dse removes only the checkpoints it made itself.
        file = ResumeFile(Path(resume), keep=True)
        resolved = file.config()
        check_data(resolved.dataset, resume, data_dir)
        return file, resolved
    resolved = resolve_config(config, preset_name, overrides)
    check_data(resolved.dataset, config_source(config, preset_name, overrides), data_dir)
    folder = checkpoint_dir or DEFAULT_CHECKPOINT_DIR
    check_output_dir(folder, "checkpoint_dir")
    name = file_stem(resolved.name or "run")
    file = ResumeFile(Path(folder) / f"train-{name}.pt", resume=False, keep=keep)
    if file.path.exists():
        warnings.warn(
            f"{file.path}: an earlier run's checkpoint, replaced after this run's first epoch "
            f"(to go on with it instead: dse train --resume {file.path})",
            stacklevel=3,
        )
    return file, resolved


def _train_run(
    config: TrialConfig,
    file: Any,
    device: str,
    data_dir: str | None,
    save: str | None,
    threads: int | None,
    progress: bool,
) -> tuple[Any, str | None]:
    """Train `config` with its per-epoch checkpoint `file` (a ResumeFile): a TrialResult, and a
    line if busy CPUs left it fewer threads (or slow the threads given)."""
    from dse.train.seeds import train_seeds
    from dse.train.trainer import resolve_device

    torch_device = resolve_device(device)
    busy = set_torch_threads(threads, torch_device.type, "trained")
    if not progress:
        return train_seeds(config, torch_device, data_dir, checkpoint=save, resume=file), busy
    from dse.progress import TrainingProgress

    with TrainingProgress(config.name or "train") as observer:
        return train_seeds(config, torch_device, data_dir, observer, save, resume=file), busy


def _resume_line(
    file: Any, config: TrialConfig | None, resume: str | None, given: dict[str, Any]
) -> str:
    """Where an interrupted run stands, and the command that resumes it."""
    latest = file.latest() if file is not None else None
    if latest is not None and config is not None:
        from dse.train.seeds import first_fused

        seed, epoch = latest
        where = f"after epoch {epoch} of {config.epochs}"
        fused = first_fused(config, given.get("device") or "cpu")
        if fused is not None and seed >= fused:
            where += f" of seeds {seed + 1}-{config.repeats} (fused) of {config.repeats}"
        elif config.repeats > 1:
            where += f" of seed {seed + 1} of {config.repeats}"
        path = str(file.path)
    elif resume is not None:  # before its checkpoint was read
        where, path = "before the run started", resume
    else:
        return "interrupted before the first epoch finished: nothing to resume"
    command = ["dse", "train", "--resume", path]
    for name, value in given.items():
        if value is True:
            command.append(f"--{name.replace('_', '-')}")
        elif value:
            command += [f"--{name.replace('_', '-')}", str(value)]
    return f"interrupted {where}; resume with: {shlex.join(command)}"


SPLITS = ("test", "val")


def evaluate(
    checkpoint: str, split: str = "test", device: str = "cpu", data_dir: str | None = None
) -> Shown:
    """Accuracy of a checkpoint's weights on a split of its dataset (same split as training)."""
    from dse.data.datasets import load_dataset
    from dse.train.checkpoint import load_checkpoint
    from dse.train.trainer import evaluate as accuracy_on
    from dse.train.trainer import prepare_device, resolve_device

    if split not in SPLITS:
        raise ConfigError(choose_from(option("split"), split, SPLITS))
    loaded = load_checkpoint(checkpoint)
    torch_device = resolve_device(device)
    prepare_device(loaded.config, torch_device)  # the arithmetic the trial evaluated in
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
