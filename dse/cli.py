"""The `dse` command line: parse, call one library function, print. No logic lives here."""

from __future__ import annotations

import functools
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from dse.errors import ConfigError, DseError
from dse.measure.calibrate import DEFAULT_PATH as CALIBRATION_PATH
from dse.output import Format, Output
from dse.search.study import DEFAULT_STORAGE, SAMPLERS


class OneLineUsageErrors(TyperGroup):
    """Usage errors (an unknown option, a value out of range) as one line on stderr, exit 2,
    like every other user error; typer would print a usage block and a framed message."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as exc:  # typer's click exceptions derive from it
            if type(exc).__name__ == "NoArgsIsHelpError":  # `dse` alone: the help, as typer has it
                return super().main(args, prog_name, complete_var, standalone_mode=True, **extra)
            message = " ".join(exc.format_message().split())
            sys.stderr.write(f"error: {message}\n")
            sys.exit(getattr(exc, "exit_code", 2))
        except typer.Abort:
            sys.stderr.write("Aborted!\n")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(cls=OneLineUsageErrors, no_args_is_help=True, add_completion=False, help=__doc__)
config_app = typer.Typer(no_args_is_help=True, help="Show resolved configurations and presets.")
app.add_typer(config_app, name="config")

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


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def handles_errors(command):
    """The error boundary: a DseError becomes one line on stderr and exit code 2.

    DSE_DEBUG=1 re-raises it with its traceback. Bugs are not DseErrors and still raise.
    """

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        warnings.formatwarning = _one_line_warning
        try:
            return command(*args, **kwargs)
        except DseError as exc:
            if os.environ.get("DSE_DEBUG") == "1":
                raise
            message = exc.cli_message()
            sys.stderr.write(f"error: {message}\n")
            raise typer.Exit(2) from None

    return wrapper


@app.command()
@handles_errors
def train(
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    set_: SetOpt = None,
    device: DeviceOpt = "cpu",
    data_dir: DataDirOpt = None,
    save: Annotated[str | None, typer.Option("--save", help="Write the best weights here.")] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads.")] = None,
    format: FormatOpt = Format.table,
) -> None:
    """Train one configuration and print its metrics (json: one object on the last line)."""
    from dse.commands import train_command

    result = train_command(
        config, preset, set_ or [], device, data_dir, save, threads, progress=format is Format.table
    )
    out = Output(format)
    if format is Format.json:
        out.json(result.to_dict())
        return
    history = [
        {k: v for k, v in record.__dict__.items() if k != "loss_parts"} | record.loss_parts
        for record in result.history
    ]
    out.rows(history, title="history")
    out.rows([{"metric": k, "value": v} for k, v in result.metrics().items()], title="result")
    if save:
        out.text(f"saved {save}")


@app.command()
@handles_errors
def summary(
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    set_: SetOpt = None,
    format: FormatOpt = Format.table,
) -> None:
    """Per-layer parameters and forward FLOPs per sample of the configured model."""
    from dse.commands import summary_command

    resolved, summary_ = summary_command(config, preset, set_ or [])
    rows = [
        {"layer": r.name, "params": r.params, "mflops_per_sample": r.flops / 1e6}
        for r in summary_.layers
    ]
    rows.append(
        {
            "layer": "total",
            "params": summary_.params,
            "mflops_per_sample": summary_.flops_per_sample / 1e6,
        }
    )
    data = {
        "name": resolved.name,
        "params": summary_.params,
        "flops_per_sample": summary_.flops_per_sample,
        "layers": [
            {"name": r.name, "params": r.params, "flops_per_sample": r.flops}
            for r in summary_.layers
        ],
    }
    Output(format).rows(rows, title=f"{resolved.model.name} on {resolved.dataset.name}", data=data)


@config_app.command("show")
@handles_errors
def config_show(config: ConfigOpt = None, preset: PresetOpt = None, set_: SetOpt = None) -> None:
    """Print the resolved TrialConfig as YAML (a file or preset, then --set overrides)."""
    from dse.presets import resolve_config

    Output().text(resolve_config(config, preset, set_ or []).to_yaml())


@config_app.command("presets")
@handles_errors
def config_presets(format: FormatOpt = Format.table) -> None:
    """List the named presets (the paper's eight points)."""
    from dse.presets import preset, preset_names

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
    Output(format).rows(rows)


@app.command()
@handles_errors
def bench(
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    set_: SetOpt = None,
    device: DeviceOpt = "cpu",
    batch: Annotated[int, typer.Option("--batch", min=1, help="Batch size.")] = 128,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Timed steps per variant.")] = 5,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed steps first.")] = 2,
    compare: Annotated[
        list[str] | None,
        typer.Option(
            "--compare", help="KEY=V1,V2: variants to step side by side (repeatable, crossed)."
        ),
    ] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads.")] = None,
    format: FormatOpt = Format.table,
) -> None:
    """Time full training steps (median ms/step, samples/s, GFLOP/s, share of the ceiling)."""
    from dataclasses import asdict

    from dse.measure.bench import run_bench, variants_from
    from dse.presets import resolve_config
    from dse.train.trainer import resolve_device

    base = resolve_config(config, preset, set_ or [])
    torch_device = resolve_device(device)
    variants = variants_from(base, compare or [])
    if threads:
        import torch

        torch.set_num_threads(threads)
    report = run_bench(variants, torch_device, batch, steps, warmup)
    rows = [asdict(t) for t in report.timings]
    if format is Format.table:
        ceilings = ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in report.ceilings.items())
        sys.stderr.write(
            f"{report.device}, {report.threads} threads, batch {batch}; "
            f"matmul ceiling: {ceilings}; process peak RSS {report.rss_mb:.0f} MB\n"
        )
    Output(format).rows(rows, title="training step")


@app.command()
@handles_errors
def reproduce(
    space: Annotated[
        str, typer.Option("--space", help="A space over the `preset` axis (paper, paper_cpu).")
    ] = "paper",
    storage: StorageOpt = DEFAULT_STORAGE,
    study: StudyOpt = None,
    gpus: Annotated[
        str | None, typer.Option("--gpus", help="GPU indices like 0,1 (or cpu).")
    ] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="CPU worker processes.")] = None,
    data_dir: DataDirOpt = None,
    run: Annotated[
        bool, typer.Option("--run/--no-run", help="Run (or resume) the study first.")
    ] = True,
    out: Annotated[str, typer.Option("--out", help="Folder for the HTML page.")] = "results",
    format: FormatOpt = Format.table,
) -> None:
    """The paper's table beside this study's: accuracy, time and their changes vs baseline."""
    from dataclasses import asdict

    from dse.commands import check_output_dir
    from dse.report import reproduce as rep
    from dse.search.progress import LineReporter
    from dse.search.results import open_view
    from dse.search.runner import RunOptions, run_study
    from dse.space import load_space

    check_output_dir(out, "--out")
    loaded = load_space(space)
    name = study or loaded.name
    if run:
        options = RunOptions(storage, name, None, None, 0, gpus, workers, data_dir)
        run_study(loaded, options, LineReporter())
    view = open_view(storage, name)
    rows = rep.report_rows(rep.measured_by_preset(view))
    if not rows:
        raise ConfigError(
            f"study {name}: no complete trials with a `preset` parameter of the paper's eight"
        )
    page = rep.write_html(rows, name, Path(out) / f"reproduce-{name}.html")
    if format is Format.json:
        Output(format).json({"rows": rows, "orderings": [asdict(o) for o in rep.orderings(rows)]})
    elif format is Format.csv:
        Output(format).rows(rows)
    else:
        Output(format).text(rep.markdown(rows, name))
    sys.stderr.write(f"report: {page}\n")


@app.command()
@handles_errors
def calibrate(
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    set_: SetOpt = None,
    runs: Annotated[int, typer.Option("--runs", min=2, help="Training runs (seeds).")] = 3,
    device: DeviceOpt = "cpu",
    data_dir: DataDirOpt = None,
    out: Annotated[
        str, typer.Option("--out", help="Where to write the calibration (dse run reads it).")
    ] = CALIBRATION_PATH,
    format: FormatOpt = Format.table,
) -> None:
    """Train one configuration N times: the CV of epoch time and the spread of accuracy."""
    from dse.commands import check_output_dir
    from dse.measure.calibrate import run_calibration
    from dse.presets import resolve_config

    base = resolve_config(config, preset, set_ or [])
    check_output_dir(Path(out).parent, "--out")

    def on_run(i: int, result: dict) -> None:
        sys.stderr.write(
            f"run {i + 1}/{runs}: seed {result['config']['seed']}, train "
            f"{result['train_time_s']:.1f} s, val_accuracy {result['val_accuracy']:.4f}\n"
        )

    result = run_calibration(base, runs, device, data_dir, on_run)
    result.save(out)
    if format is Format.json:
        Output(format).json(result.to_dict())
        return
    rows = [
        {"measure": "epoch time CV", "value": result.epoch_time_cv},
        {"measure": "train time CV", "value": result.train_time_cv},
        {"measure": "mean epoch time s", "value": result.epoch_time_mean_s},
        {"measure": "val accuracy mean", "value": result.val_accuracy_mean},
        {"measure": "val accuracy std", "value": result.val_accuracy_std},
        {"measure": "val accuracy spread", "value": result.val_accuracy_spread},
    ]
    Output(format).rows(rows, title=f"calibration of {result.config} on {result.device}")
    sys.stderr.write(f"wrote {out}\n")


@app.command()
@handles_errors
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
    from dse.commands import evaluate_command

    if split not in ("test", "val"):
        raise ConfigError(f"--split {split}: choose test or val")
    accuracy, config = evaluate_command(checkpoint, split, device, data_dir)
    row = {
        "checkpoint": checkpoint,
        "dataset": config.dataset.name,
        "split": split,
        "accuracy": accuracy,
    }
    Output(format).rows([row], data=row)


@app.command()
@handles_errors
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
    from dataclasses import asdict

    from dse.commands import check_output_dir
    from dse.report.inspect import capture, summarize, write_inspect_report

    check_output_dir(out, "--out")
    captured = [capture(path, samples, data_dir) for path in checkpoint]
    rows = [asdict(row) for capsules in captured for row in summarize(capsules)]
    Output(format).rows(rows, title="capsules per layer")
    sys.stderr.write(f"report: {write_inspect_report(captured, Path(out))}\n")


report_app = typer.Typer(no_args_is_help=True, help="Figures across runs.")
app.add_typer(report_app, name="report")


@report_app.command("accuracy")
@handles_errors
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
    from dataclasses import asdict

    from dse.commands import check_output_dir
    from dse.report.accuracy import from_checkpoint, from_study, write_accuracy_report

    if not checkpoint and not storage:
        raise ConfigError("give --checkpoint FILE (repeatable) and/or --storage URL [--study NAME]")
    check_output_dir(out, "--out")
    rows = [from_checkpoint(path) for path in checkpoint or []]
    if storage:
        rows += from_study(storage, study)
    Output(format).rows([asdict(r) for r in rows], title="test accuracy")
    sys.stderr.write(f"report: {write_accuracy_report(rows, Path(out))}\n")


@app.command("profile")
@handles_errors
def profile_command(
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    set_: SetOpt = None,
    device: DeviceOpt = "cpu",
    steps: Annotated[int, typer.Option("--steps", min=1, help="Profiled steps.")] = 3,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Unprofiled steps first.")] = 2,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Batch size.")] = 128,
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
    from dse.commands import check_output_dir
    from dse.measure.profile import profile_steps
    from dse.presets import resolve_config
    from dse.train.trainer import resolve_device

    if mode not in ("train", "test"):
        raise ConfigError(f"--mode {mode}: choose train or test")
    if by not in ("op", "layer"):
        raise ConfigError(f"--by {by}: choose op or layer")
    resolved = resolve_config(config, preset, set_ or [])
    torch_device = resolve_device(device)
    check_output_dir(out, "--out")
    result = profile_steps(resolved, torch_device, batch, steps, warmup, mode, Path(out))
    rows = [r.__dict__ for r in (result.ops[:top] if by == "op" else result.layers)]
    Output(format).rows(rows, title=f"{mode} step by {by}")
    sys.stderr.write(
        f"measured step {result.step_ms:.1f} ms under the profiler; layers sum to "
        f"{result.layer_sum_ms:.1f} ms ({result.layer_sum_ms / result.step_ms:.0%})\n"
        f"table: {result.ops_csv} and {result.layers_csv}\ntrace: {result.trace} "
        "(open in ui.perfetto.dev or TensorBoard)\n"
    )


StorageOpt = Annotated[
    str, typer.Option("--storage", help="Results database: SQLAlchemy URL or journal file.")
]
StudyOpt = Annotated[
    str | None, typer.Option("--study", help="Study name (default: the only one).")
]


@app.command()
@handles_errors
def run(
    space: Annotated[str, typer.Option("--space", help="Search-space YAML (or a shipped name).")],
    storage: StorageOpt = DEFAULT_STORAGE,
    study: Annotated[
        str | None, typer.Option("--study", help="Study name (default: the space's).")
    ] = None,
    sampler: Annotated[
        str | None,
        typer.Option("--sampler", help="grid|random|nsga2|tpe|gp (default: grid if it fits)."),
    ] = None,
    n_trials: Annotated[int | None, typer.Option("--n-trials", min=1, help="Trial budget.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Sampler seed.")] = 0,
    gpus: Annotated[
        str | None, typer.Option("--gpus", help="GPU indices like 0,1 (or cpu).")
    ] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="CPU worker processes.")] = None,
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
        typer.Option(
            "--calibration",
            help=f"A `dse calibrate` file to store with the study (default: {CALIBRATION_PATH} "
            "when it exists).",
        ),
    ] = None,
    format: FormatOpt = Format.table,
) -> None:
    """Explore a search space: trials in parallel, results in the database, then the front."""
    from dse.measure.calibrate import load_calibration
    from dse.search.moasha import EarlyStop, check_eta, parse_rungs
    from dse.search.progress import LineReporter, LiveReporter
    from dse.search.results import open_view, pareto_rows
    from dse.search.runner import RunOptions, run_study
    from dse.space import load_space

    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers}: must be at least 1")
    if early_stop not in (None, "moasha"):
        raise ConfigError(f"--early-stop {early_stop}: unknown rule; choose moasha")
    stopping = EarlyStop(parse_rungs(rungs), check_eta(eta)) if early_stop else None
    if sampler is not None and sampler not in SAMPLERS:
        raise ConfigError(
            f"--sampler {sampler}: unknown sampler; choose from {', '.join(SAMPLERS)}"
        )
    loaded = load_space(space)
    if repeats is not None:
        loaded = loaded.with_repeats(repeats)
    if calibration is None and Path(CALIBRATION_PATH).is_file():
        calibration = CALIBRATION_PATH
    noise = load_calibration(calibration) if calibration else None
    reporter = LineReporter() if quiet or format is not Format.table else LiveReporter()
    options = RunOptions(
        storage,
        study,
        sampler,
        n_trials,
        seed,
        gpus,
        workers,
        data_dir,
        backend=backend,
        scheduler=scheduler,
        gpus_per_trial=gpus_per_trial,
        calibration=noise,
        retry_oom=retry_oom,
        early_stop=stopping,
    )
    summary = run_study(loaded, options, reporter)
    rows = pareto_rows(open_view(storage, summary.study))
    sys.stderr.write(
        f"study {summary.study}: {summary.complete} complete, "
        + (f"{summary.stopped} stopped early, " if summary.stopped else "")
        + f"{summary.failed} failed of "
        f"{summary.planned} planned; {summary.pareto_size} on the Pareto front "
        f"({summary.elapsed_s:.0f}s)\n"
    )
    for failure in summary.failures[:5]:
        sys.stderr.write(f"  {failure[:200]}\n")
    _print_front(rows, format, f"Pareto front of {summary.study}")


def _warn_noise_ties(rows: list[dict], view) -> None:
    """Front neighbours closer than the study's stored calibration: their order is noise."""
    from dse.measure.calibrate import noise_ties

    calibration = view.study.user_attrs.get("calibration")
    if not calibration:
        return
    for a, b, reason in noise_ties(rows, view.metric_names, calibration):
        sys.stderr.write(
            f"warning: front members {a} and {b} differ by less than the measured noise "
            f"({reason}; calibration on {calibration['device']})\n"
        )


def _print_front(rows: list[dict], format: Format, title: str) -> None:
    if format is Format.table or format is Format.csv:
        flat = [
            {k: v for k, v in r.items() if k != "params"}
            | {f"params_{k}": v for k, v in r["params"].items()}
            for r in rows
        ]
        Output(format).rows(flat, title=title)
    else:
        Output(format).json(rows)


@app.command()
@handles_errors
def pareto(
    storage: StorageOpt = DEFAULT_STORAGE,
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
    from dse.search.results import hypervolume_summary, open_view, pareto_rows

    view = open_view(storage, study)
    if plot:
        from dse.commands import check_output_dir
        from dse.report.pareto_report import write_report

        check_output_dir(out, "--out")
    rows = pareto_rows(view, robust)
    _warn_noise_ties(rows, view)
    _print_front(rows, format, f"Pareto front of {view.study.study_name}")
    sys.stderr.write(hypervolume_summary(view).describe(view.metric_names) + "\n")
    if plot:
        files = write_report(view, Path(out))
        sys.stderr.write(f"report: {files.html}\n")
        sys.stderr.write(
            f"png: {files.png}\n" if files.png else f"png skipped: {files.png_skipped}\n"
        )


@app.command()
@handles_errors
def trials(
    storage: StorageOpt = DEFAULT_STORAGE, study: StudyOpt = None, format: FormatOpt = Format.table
) -> None:
    """Every trial: state, metrics by name, params_* columns, device, error."""
    from dse.search.results import open_view, trials_frame

    frame = trials_frame(open_view(storage, study))
    if format is Format.csv:
        sys.stdout.write(frame.to_csv(index=False))
    elif format is Format.json:
        Output(format).json(json.loads(frame.to_json(orient="records")))
    else:
        shown = frame.drop(columns=["host", "error"], errors="ignore")
        Output(format).rows(shown.astype(object).where(shown.notna(), None).to_dict("records"))


@app.command()
@handles_errors
def studies(storage: StorageOpt = DEFAULT_STORAGE, format: FormatOpt = Format.table) -> None:
    """The studies in a results database, with trial counts."""
    from dse.search.results import study_rows

    Output(format).rows(study_rows(storage))


@app.command()
@handles_errors
def export(
    trial: Annotated[int | None, typer.Option("--trial", help="A trial number.")] = None,
    pick: Annotated[
        str | None, typer.Option("--pick", help="knee | fastest | most-accurate")
    ] = None,
    storage: StorageOpt = DEFAULT_STORAGE,
    study: StudyOpt = None,
    out: Annotated[
        str | None, typer.Option("--out", help="Write the config here (else stdout).")
    ] = None,
) -> None:
    """Write the complete TrialConfig of a trial, to retrain it with `dse train --config`."""
    from dse.search import results

    if (trial is None) == (pick is None):
        raise ConfigError("give exactly one of --trial N or --pick knee|fastest|most-accurate")
    if pick is not None and pick not in results.PICKS:
        raise ConfigError(f"--pick {pick}: choose from {', '.join(results.PICKS)}")
    if out:
        from dse.commands import check_writable

        check_writable(out, "--out")
    view = results.open_view(storage, study)
    chosen = results.trial_by_number(view, trial) if trial is not None else results.pick(view, pick)
    text = results.exported_config(chosen).to_yaml()
    if out:
        Path(out).write_text(text, encoding="utf-8")
        sys.stderr.write(f"trial {chosen.number} -> {out}\n")
    else:
        Output().text(text)


@app.command()
@handles_errors
def spaces(format: FormatOpt = Format.table) -> None:
    """The search spaces shipped with dse (usable by file name: --space quick.yaml)."""
    from dse.space import load_space, shipped_spaces

    rows = []
    for name, path in sorted(shipped_spaces().items()):
        space = load_space(str(path))
        rows.append(
            {
                "space": name,
                "grid": space.grid_size() if space.finite else "-",
                "n_trials": space.n_trials or "grid",
                "objectives": ", ".join(space.metric_names),
                "description": space.description or "",
            }
        )
    Output(format).rows(rows)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
