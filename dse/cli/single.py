"""Commands on one configuration: train it, evaluate, summarize, time, profile, calibrate,
inspect; show configurations and presets; the accuracy figure across runs."""

from __future__ import annotations

from typing import Annotated

import typer

from dse import commands
from dse.cli.options import (
    STORAGE,
    BatchOpt,
    CheckpointDirOpt,
    ConfigOpt,
    DataDirOpt,
    DeviceOpt,
    FormatOpt,
    KeepCheckpointsOpt,
    PresetOpt,
    SetOpt,
    StudyOpt,
    ThreadsOpt,
    choice,
)
from dse.output import Format, Output


def train(
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    set_: SetOpt = None,
    device: DeviceOpt = "cpu",
    data_dir: DataDirOpt = None,
    save: Annotated[
        str | None,
        typer.Option(
            "--save",
            metavar="FILE",
            help="Write the best weights here (repeats: the first seed's).",
        ),
    ] = None,
    threads: ThreadsOpt = None,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume", metavar="FILE", help="Go on from a per-epoch checkpoint (its config)."
        ),
    ] = None,
    checkpoint_dir: CheckpointDirOpt = None,
    keep_checkpoints: KeepCheckpointsOpt = False,
    format: FormatOpt = Format.table,
) -> None:
    """Train one configuration and print its history and metrics (json: one object on the
    last line, history included; csv: the history alone, a row per epoch). Progress goes to
    stderr. Ctrl-C leaves the last epoch's checkpoint and prints the command that resumes it."""
    progress = format is Format.table
    shown = commands.train(
        config,
        preset,
        set_ or [],
        device,
        data_dir,
        save,
        threads,
        progress,
        resume=resume,
        checkpoint_dir=checkpoint_dir,
        keep_checkpoints=keep_checkpoints,
    )
    Output(format).show(shown)


def summary(
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    set_: SetOpt = None,
    format: FormatOpt = Format.table,
) -> None:
    """Per-layer parameters and forward FLOPs per sample of the configured model."""
    Output(format).show(commands.summary(config, preset, set_ or []))


def config_show(config: ConfigOpt = None, preset: PresetOpt = None, set_: SetOpt = None) -> None:
    """Print the resolved TrialConfig as YAML (a file or preset, then --set overrides)."""
    Output().show(commands.show_config(config, preset, set_ or []))


def config_presets(format: FormatOpt = Format.table) -> None:
    """List the named presets (the paper's eight points)."""
    Output(format).show(commands.presets())


def bench(
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    set_: SetOpt = None,
    device: DeviceOpt = "cpu",
    batch: BatchOpt = 128,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Timed steps per variant.")] = 5,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed steps first.")] = 2,
    compare: Annotated[
        list[str] | None,
        typer.Option(
            "--compare",
            metavar="KEY=V1,V2",
            help="Variants to step side by side (repeatable, crossed).",
        ),
    ] = None,
    threads: ThreadsOpt = None,
    compile_: Annotated[
        bool,
        typer.Option(
            "--compile", help="Each variant also under torch.compile (compile_s: its compile time)."
        ),
    ] = False,
    fused: Annotated[
        int | None,
        typer.Option(
            "--fused",
            metavar="K",
            help="Each CapsNet variant also as K seeds fused (as repeats K+1 trains seeds 1..K).",
        ),
    ] = None,
    format: FormatOpt = Format.table,
) -> None:
    """Time full training steps (median ms/step, samples/s, GFLOP/s, share of the ceiling)."""
    header = format is Format.table
    shown = commands.bench(
        config,
        preset,
        set_ or [],
        device,
        batch,
        steps,
        warmup,
        compare,
        threads,
        header,
        compile_,
        fused,
    )
    Output(format).show(shown)


def calibrate(
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    set_: SetOpt = None,
    runs: Annotated[int, typer.Option("--runs", min=2, help="Training runs (seeds).")] = 3,
    device: DeviceOpt = "cpu",
    data_dir: DataDirOpt = None,
    out: Annotated[
        str,
        typer.Option(
            "--out", metavar="FILE", help="Where to write the calibration (dse run reads it)."
        ),
    ] = commands.CALIBRATION_PATH,
    threads: ThreadsOpt = None,
    format: FormatOpt = Format.table,
) -> None:
    """Train one configuration N times: the CV of epoch time and the spread of accuracy."""
    wrote = format is not Format.json
    shown = commands.calibrate(
        config, preset, set_ or [], runs, device, data_dir, out, wrote, threads=threads
    )
    Output(format).show(shown)


def evaluate(
    checkpoint: Annotated[
        str,
        typer.Option("--checkpoint", metavar="FILE", help="A checkpoint from dse train --save."),
    ],
    split: Annotated[str, choice("--split", commands.SPLITS, "The dataset's split.")] = "test",
    device: DeviceOpt = "cpu",
    data_dir: DataDirOpt = None,
    format: FormatOpt = Format.table,
) -> None:
    """Accuracy of a saved model on the test (or validation) split of its dataset."""
    Output(format).show(commands.evaluate(checkpoint, split, device, data_dir))


def inspect(
    checkpoint: Annotated[
        list[str],
        typer.Option(
            "--checkpoint", metavar="FILE", help="A CapsNet checkpoint (repeat to overlay)."
        ),
    ],
    samples: Annotated[
        int, typer.Option("--samples", min=1, help="Test images per checkpoint.")
    ] = 500,
    out: Annotated[
        str, typer.Option("--out", metavar="DIR", help="Folder for inspect.html.")
    ] = "results",
    data_dir: DataDirOpt = None,
    format: FormatOpt = Format.table,
) -> None:
    """Histograms of capsule activations and poses per layer; sparsity and pose spread."""
    Output(format).show(commands.inspect(checkpoint, samples, out, data_dir))


def report_accuracy(
    checkpoint: Annotated[
        list[str] | None, typer.Option("--checkpoint", metavar="FILE", help="Checkpoints.")
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            metavar="URL",
            help=f"A results database (without --checkpoint, by default {STORAGE}).",
        ),
    ] = None,
    study: StudyOpt = None,
    out: Annotated[
        str, typer.Option("--out", metavar="DIR", help="Folder for accuracy.html.")
    ] = "results",
    format: FormatOpt = Format.table,
) -> None:
    """Test accuracy per dataset, CapsNet next to the CNN baseline (checkpoints and/or a study)."""
    Output(format).show(commands.accuracy_report(checkpoint, storage, study, out))


def profile(
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    set_: SetOpt = None,
    device: DeviceOpt = "cpu",
    steps: Annotated[int, typer.Option("--steps", min=1, help="Profiled steps.")] = 3,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Unprofiled steps first.")] = 2,
    batch: BatchOpt = 128,
    mode: Annotated[
        str, choice("--mode", commands.MODES, "A full training step, or the forward pass.")
    ] = "train",
    by: Annotated[str, choice("--by", commands.PROFILE_VIEWS, "Rows per op or per layer.")] = "op",
    top: Annotated[int, typer.Option("--top", min=1, help="Rows of the op table.")] = 15,
    out: Annotated[
        str, typer.Option("--out", metavar="DIR", help="Folder for the CSV and the trace.")
    ] = "results/profile",
    threads: ThreadsOpt = None,
    format: FormatOpt = Format.table,
) -> None:
    """Op-by-op (or layer-by-layer) time and memory of a training or test step."""
    shown = commands.profile(
        config, preset, set_ or [], device, steps, warmup, batch, mode, by, top, out, threads
    )
    Output(format).show(shown)
