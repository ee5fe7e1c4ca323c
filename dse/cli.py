"""The `dse` command line: parse, call one library function, print. No logic lives here."""

from __future__ import annotations

import os
import sys
import warnings
from typing import Annotated

import typer
from typer.core import TyperGroup

from dse import commands
from dse.errors import DseError
from dse.output import Format, Output


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


class OneLineErrors(TyperGroup):
    """The error boundary of the whole app. What a user can get wrong is one line on stderr
    and exit code 2: a DseError from any command (DSE_DEBUG=1 re-raises it with its
    traceback), and a usage error (an unknown option, a value out of range), for which typer
    would print a usage block and a framed message. Bugs still raise."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        warnings.formatwarning = _one_line_warning
        if not standalone_mode:  # the caller handles every exception itself
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except DseError as exc:
            if os.environ.get("DSE_DEBUG") == "1":
                raise
            sys.stderr.write(f"{exc.label}{exc.cli_message()}\n")
            sys.exit(exc.exit_code)
        except typer.TyperException as exc:  # typer's click exceptions derive from it
            if type(exc).__name__ == "NoArgsIsHelpError":  # `dse` alone: the help, as typer has it
                return super().main(args, prog_name, complete_var, standalone_mode=True, **extra)
            sys.stderr.write(f"error: {' '.join(exc.format_message().split())}\n")
            sys.exit(getattr(exc, "exit_code", 2))
        except typer.Abort:
            sys.stderr.write("Aborted!\n")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(cls=OneLineErrors, no_args_is_help=True, add_completion=False, help=__doc__)
config_app = typer.Typer(no_args_is_help=True, help="Show resolved configurations and presets.")
app.add_typer(config_app, name="config")
report_app = typer.Typer(no_args_is_help=True, help="Figures across runs.")
app.add_typer(report_app, name="report")

# Reusable options.
ConfigOpt = Annotated[str | None, typer.Option("--config", "-c", help="TrialConfig YAML file.")]
PresetOpt = Annotated[
    str | None, typer.Option("--preset", "-p", help="A named preset (dse config presets).")
]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", "-s", help="Override: key.sub=value (repeatable).")
]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
DeviceOpt = Annotated[str, typer.Option("--device", "-d", help="cpu, cuda or cuda:N.")]
DataDirOpt = Annotated[
    str | None, typer.Option("--data-dir", help="Folder with the dataset files (or its parent).")
]
StorageOpt = Annotated[
    str, typer.Option("--storage", help="Results database: SQLAlchemy URL or journal file.")
]
StudyOpt = Annotated[str | None, typer.Option("--study", help="Study (default: the only one).")]
GpusOpt = Annotated[str | None, typer.Option("--gpus", help="GPU indices like 0,1 (or cpu).")]
WorkersOpt = Annotated[int | None, typer.Option("--workers", help="CPU worker processes.")]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads.")]
BatchOpt = Annotated[int, typer.Option("--batch", min=1, help="Batch size.")]
STORAGE = commands.DEFAULT_STORAGE
ExtendOpt = Annotated[bool, typer.Option("--extend", help="Add the space to a study of another.")]


@app.command()
def train(
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    set_: SetOpt = None,
    device: DeviceOpt = "cpu",
    data_dir: DataDirOpt = None,
    save: Annotated[str | None, typer.Option("--save", help="Write the best weights here.")] = None,
    threads: ThreadsOpt = None,
    format: FormatOpt = Format.table,
) -> None:
    """Train one configuration and print its metrics (json: one object on the last line)."""
    progress = format is Format.table
    shown = commands.train(config, preset, set_ or [], device, data_dir, save, threads, progress)
    Output(format).show(shown)


@app.command()
def summary(
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    set_: SetOpt = None,
    format: FormatOpt = Format.table,
) -> None:
    """Per-layer parameters and forward FLOPs per sample of the configured model."""
    Output(format).show(commands.summary(config, preset, set_ or []))


@config_app.command("show")
def config_show(config: ConfigOpt = None, preset: PresetOpt = None, set_: SetOpt = None) -> None:
    """Print the resolved TrialConfig as YAML (a file or preset, then --set overrides)."""
    Output().show(commands.show_config(config, preset, set_ or []))


@config_app.command("presets")
def config_presets(format: FormatOpt = Format.table) -> None:
    """List the named presets (the paper's eight points)."""
    Output(format).show(commands.presets())


@app.command()
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
            "--compare", help="KEY=V1,V2: variants to step side by side (repeatable, crossed)."
        ),
    ] = None,
    threads: ThreadsOpt = None,
    format: FormatOpt = Format.table,
) -> None:
    """Time full training steps (median ms/step, samples/s, GFLOP/s, share of the ceiling)."""
    header = format is Format.table
    shown = commands.bench(
        config, preset, set_ or [], device, batch, steps, warmup, compare, threads, header
    )
    Output(format).show(shown)


@app.command()
def reproduce(
    space: Annotated[
        str, typer.Option("--space", help="A space over the `preset` axis (paper, paper_cpu).")
    ] = "paper",
    storage: StorageOpt = STORAGE,
    study: StudyOpt = None,
    gpus: GpusOpt = None,
    workers: WorkersOpt = None,
    data_dir: DataDirOpt = None,
    run: Annotated[
        bool, typer.Option("--run/--no-run", help="Run (or resume) the study first.")
    ] = True,
    out: Annotated[str, typer.Option("--out", help="Folder for the HTML page.")] = "results",
    format: FormatOpt = Format.table,
) -> None:
    """The paper's table beside this study's: accuracy, time and their changes vs baseline."""
    options = commands.RunOptions(
        storage=storage, study_name=study, gpus=gpus, workers=workers, data_dir=data_dir
    )
    Output(format).show(commands.reproduce(space, options, run_first=run, out=out))


@app.command()
def calibrate(
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    set_: SetOpt = None,
    runs: Annotated[int, typer.Option("--runs", min=2, help="Training runs (seeds).")] = 3,
    device: DeviceOpt = "cpu",
    data_dir: DataDirOpt = None,
    out: Annotated[
        str, typer.Option("--out", help="Where to write the calibration (dse run reads it).")
    ] = commands.CALIBRATION_PATH,
    format: FormatOpt = Format.table,
) -> None:
    """Train one configuration N times: the CV of epoch time and the spread of accuracy."""
    wrote = format is not Format.json
    Output(format).show(
        commands.calibrate(config, preset, set_ or [], runs, device, data_dir, out, wrote)
    )


@app.command()
def evaluate(
    checkpoint: Annotated[
        str, typer.Option("--checkpoint", help="A checkpoint from dse train --save.")
    ],
    split: Annotated[str, typer.Option("--split", help="test or val.")] = "test",
    device: DeviceOpt = "cpu",
    data_dir: DataDirOpt = None,
    format: FormatOpt = Format.table,
) -> None:
    """Accuracy of a saved model on the test (or validation) split of its dataset."""
    Output(format).show(commands.evaluate(checkpoint, split, device, data_dir))


@app.command()
def inspect(
    checkpoint: Annotated[
        list[str], typer.Option("--checkpoint", help="A CapsNet checkpoint (repeat to overlay).")
    ],
    samples: Annotated[
        int, typer.Option("--samples", min=1, help="Test images per checkpoint.")
    ] = 500,
    out: Annotated[str, typer.Option("--out", help="Folder for inspect.html.")] = "results",
    data_dir: DataDirOpt = None,
    format: FormatOpt = Format.table,
) -> None:
    """Histograms of capsule activations and poses per layer; sparsity and pose spread."""
    Output(format).show(commands.inspect(checkpoint, samples, out, data_dir))


@report_app.command("accuracy")
def report_accuracy(
    checkpoint: Annotated[
        list[str] | None, typer.Option("--checkpoint", help="Checkpoints.")
    ] = None,
    storage: Annotated[str | None, typer.Option("--storage", help="A results database.")] = None,
    study: StudyOpt = None,
    out: Annotated[str, typer.Option("--out", help="Folder for accuracy.html.")] = "results",
    format: FormatOpt = Format.table,
) -> None:
    """Test accuracy per dataset, CapsNet next to the CNN baseline (checkpoints and/or a study)."""
    Output(format).show(commands.accuracy_report(checkpoint, storage, study, out))


@app.command("profile")
def profile_command(
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    set_: SetOpt = None,
    device: DeviceOpt = "cpu",
    steps: Annotated[int, typer.Option("--steps", min=1, help="Profiled steps.")] = 3,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Unprofiled steps first.")] = 2,
    batch: BatchOpt = 128,
    mode: Annotated[
        str, typer.Option("--mode", help="train (a full step) or test (forward).")
    ] = "train",
    by: Annotated[str, typer.Option("--by", help="op or layer.")] = "op",
    top: Annotated[int, typer.Option("--top", min=1, help="Rows of the op table.")] = 15,
    out: Annotated[
        str, typer.Option("--out", help="Folder for the CSV and the trace.")
    ] = "results/profile",
    format: FormatOpt = Format.table,
) -> None:
    """Op-by-op (or layer-by-layer) time and memory of a training or test step."""
    shown = commands.profile(
        config, preset, set_ or [], device, steps, warmup, batch, mode, by, top, out
    )
    Output(format).show(shown)


@app.command()
def run(
    space: Annotated[str, typer.Option("--space", help="Search-space YAML (or a shipped name).")],
    storage: StorageOpt = STORAGE,
    study: Annotated[
        str | None, typer.Option("--study", help="Study name (default: the space's).")
    ] = None,
    sampler: Annotated[
        str | None,
        typer.Option("--sampler", help="grid|random|nsga2|tpe|gp (default: grid if it fits)."),
    ] = None,
    n_trials: Annotated[int | None, typer.Option("--n-trials", min=1, help="Trial budget.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Sampler seed.")] = 0,
    gpus: GpusOpt = None,
    workers: WorkersOpt = None,
    backend: Annotated[
        str, typer.Option("--backend", help="local (worker processes here) or dask (a cluster).")
    ] = "local",
    scheduler: Annotated[
        str | None, typer.Option("--scheduler", help="Dask scheduler, like tcp://HOST:8786.")
    ] = None,
    gpus_per_trial: Annotated[
        int | None,
        typer.Option("--gpus-per-trial", help="Dask: GPUs per trial (default 1 if declared)."),
    ] = None,
    data_dir: DataDirOpt = None,
    retry_oom: Annotated[
        bool,
        typer.Option("--retry-oom", help="Retry an out-of-memory trial once at half the batch."),
    ] = False,
    early_stop: Annotated[
        str | None,
        typer.Option("--early-stop", help="moasha: stop trials at rungs (multi-objective ASHA)."),
    ] = None,
    rungs: Annotated[
        str, typer.Option("--rungs", help="Epochs at which --early-stop decides, like 1,3,9.")
    ] = "1,3,9",
    eta: Annotated[
        float, typer.Option("--eta", help="Keep the top 1/eta of the trials at each rung.")
    ] = 3.0,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="A line per finished trial.")
    ] = False,
    repeats: Annotated[
        int | None,
        typer.Option("--repeats", min=1, help="Seeds per trial; objectives are their means."),
    ] = None,
    calibration: Annotated[
        str | None,
        typer.Option("--calibration", help="A `dse calibrate` file to store with the study."),
    ] = None,
    extend: ExtendOpt = False,
    format: FormatOpt = Format.table,
) -> None:
    """Explore a search space: trials in parallel, results in the database, then the front."""
    options = commands.RunOptions(
        storage=storage,
        study_name=study,
        sampler=sampler,
        n_trials=n_trials,
        seed=seed,
        gpus=gpus,
        workers=workers,
        data_dir=data_dir,
        retry_oom=retry_oom,
        backend=backend,
        scheduler=scheduler,
        gpus_per_trial=gpus_per_trial,
        early_stop=commands.early_stop_from(early_stop, rungs, eta),
        extend=extend,
    )
    live = not quiet and format is Format.table
    Output(format).show(commands.run(space, options, repeats, calibration, live))


@app.command()
def pareto(
    storage: StorageOpt = STORAGE,
    study: StudyOpt = None,
    plot: Annotated[
        bool, typer.Option("--plot", help="Write the HTML report (and a PNG).")
    ] = False,
    out: Annotated[str, typer.Option("--out", help="Folder for the report.")] = "results",
    robust: Annotated[
        float | None,
        typer.Option(
            "--robust",
            min=0.0,
            max=1.0,
            help="With repeats: keep members non-dominated with at least this probability.",
        ),
    ] = None,
    format: FormatOpt = Format.table,
) -> None:
    """The Pareto-optimal trials: objective values and parameters; --plot writes the report.

    The study's hypervolume, its reference point and the compute spent go to stderr.
    """
    Output(format).show(commands.pareto(storage, study, plot, out, robust))


@app.command()
def trials(
    storage: StorageOpt = STORAGE,
    study: StudyOpt = None,
    format: FormatOpt = Format.table,
) -> None:
    """Every trial: state, metrics by name, params_* columns, device, error."""
    Output(format).show(commands.trials(storage, study))


@app.command()
def studies(storage: StorageOpt = STORAGE, format: FormatOpt = Format.table) -> None:
    """The studies in a results database, with trial counts."""
    Output(format).show(commands.studies(storage))


@app.command()
def export(
    trial: Annotated[int | None, typer.Option("--trial", help="A trial number.")] = None,
    pick: Annotated[
        str | None, typer.Option("--pick", help="knee | fastest | most-accurate")
    ] = None,
    storage: StorageOpt = STORAGE,
    study: StudyOpt = None,
    out: Annotated[
        str | None, typer.Option("--out", help="Write the config here (else stdout).")
    ] = None,
) -> None:
    """Write the complete TrialConfig of a trial, to retrain it with `dse train --config`."""
    Output().show(commands.export(trial, pick, storage, study, out))


@app.command()
def spaces(format: FormatOpt = Format.table) -> None:
    """The search spaces shipped with dse (usable by file name: --space quick.yaml)."""
    Output(format).show(commands.spaces())


main = app  # the console script
