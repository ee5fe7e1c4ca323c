"""Commands on studies: run a space, read its front and trials, export a trial's config,
list the studies and the shipped spaces, set this study beside the paper's table."""

from __future__ import annotations

from typing import Annotated

import typer

from dse import commands
from dse.cli.options import (
    STORAGE,
    CheckpointDirOpt,
    DataDirOpt,
    DbOutageLimitOpt,
    EarlyStopOpt,
    EtaOpt,
    FormatOpt,
    GpusOpt,
    GpusPerTrialOpt,
    KeepCheckpointsOpt,
    RungsOpt,
    SchedulerOpt,
    StorageOpt,
    StudyOpt,
    WorkersOpt,
    choice,
)
from dse.output import Format, Output


def run(
    space: Annotated[
        str,
        typer.Option("--space", metavar="FILE", help="Search-space YAML (or a shipped name)."),
    ],
    storage: StorageOpt = STORAGE,
    study: Annotated[
        str | None,
        typer.Option("--study", metavar="NAME", help="Study name (default: the space's)."),
    ] = None,
    sampler: Annotated[
        str | None,
        choice("--sampler", commands.SAMPLERS, "How to pick trials (default: grid if it fits)."),
    ] = None,
    n_trials: Annotated[int | None, typer.Option("--n-trials", min=1, help="Trial budget.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed: sampler, grid order.")] = 0,
    gpus: GpusOpt = None,
    workers: WorkersOpt = None,
    backend: Annotated[
        str,
        choice("--backend", commands.BACKENDS, "Worker processes here, or a Dask cluster."),
    ] = "local",
    scheduler: SchedulerOpt = None,
    gpus_per_trial: GpusPerTrialOpt = None,
    data_dir: DataDirOpt = None,
    retry_oom: Annotated[
        bool,
        typer.Option("--retry-oom", help="Retry an out-of-memory trial once at half the batch."),
    ] = False,
    early_stop: EarlyStopOpt = None,
    rungs: RungsOpt = None,
    eta: EtaOpt = None,
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
            "--calibration", metavar="FILE", help="A `dse calibrate` file to store with the study."
        ),
    ] = None,
    extend: Annotated[
        bool, typer.Option("--extend", help="Add the space's points to a study of another.")
    ] = False,
    db_outage_limit: DbOutageLimitOpt = commands.DEFAULT_OUTAGE_LIMIT_S,
    checkpoint_dir: CheckpointDirOpt = None,
    keep_checkpoints: KeepCheckpointsOpt = False,
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
        db_outage_limit=db_outage_limit,
        checkpoint_dir=checkpoint_dir,
        keep_checkpoints=keep_checkpoints,
    )
    live = not quiet and format is Format.table
    shown = commands.run(space, options, repeats, calibration, live)
    Output(format).show(shown)
    if shown.exit_code:
        raise typer.Exit(shown.exit_code)


def pareto(
    storage: StorageOpt = STORAGE,
    study: StudyOpt = None,
    plot: Annotated[
        bool, typer.Option("--plot", help="Write the HTML report (and a PNG).")
    ] = False,
    out: Annotated[
        str, typer.Option("--out", metavar="DIR", help="Folder for the report.")
    ] = "results",
    color_by: Annotated[
        str | None,
        typer.Option(
            "--color-by", metavar="KEY", help="The axis that colours the report's trials."
        ),
    ] = None,
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
    Output(format).show(commands.pareto(storage, study, plot, out, robust, color_by=color_by))


def trials(
    storage: StorageOpt = STORAGE,
    study: StudyOpt = None,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns",
            metavar="A,B,...",
            help="The columns, in that order, in any format (default: what fits; csv, json: all).",
        ),
    ] = None,
    format: FormatOpt = Format.table,
) -> None:
    """Every trial: state, objectives (± std with repeats), parameters, where it ran, why it
    failed."""
    Output(format).show(commands.trials(storage, study, columns))


def studies(storage: StorageOpt = STORAGE, format: FormatOpt = Format.table) -> None:
    """The studies in a results database, with trial counts."""
    Output(format).show(commands.studies(storage))


def export(
    trial: Annotated[int | None, typer.Option("--trial", help="A trial number.")] = None,
    pick: Annotated[str | None, choice("--pick", commands.PICKS, "A member of the front.")] = None,
    storage: StorageOpt = STORAGE,
    study: StudyOpt = None,
    out: Annotated[
        str | None,
        typer.Option("--out", metavar="FILE", help="Write the config here (else stdout)."),
    ] = None,
) -> None:
    """Write the complete TrialConfig of a trial, to retrain it with `dse train --config`."""
    Output().show(commands.export(trial, pick, storage, study, out))


def spaces(format: FormatOpt = Format.table) -> None:
    """The search spaces shipped with dse (usable by file name: --space quick.yaml)."""
    Output(format).show(commands.spaces())


def reproduce(
    space: Annotated[
        str,
        typer.Option(
            "--space", metavar="FILE", help="A space over the `preset` axis (paper, paper_cpu)."
        ),
    ] = "paper",
    storage: StorageOpt = STORAGE,
    study: StudyOpt = None,
    gpus: GpusOpt = None,
    workers: WorkersOpt = None,
    data_dir: DataDirOpt = None,
    run: Annotated[
        bool, typer.Option("--run/--no-run", help="Run (or resume) the study first.")
    ] = True,
    out: Annotated[
        str, typer.Option("--out", metavar="DIR", help="Folder for the HTML page.")
    ] = "results",
    dataset: Annotated[
        str | None,
        choice("--dataset", commands.DATASETS, "Its trials on this dataset only (of several)."),
    ] = None,
    format: FormatOpt = Format.table,
) -> None:
    """The paper's table beside this study's: accuracy, time and their changes vs baseline."""
    options = commands.RunOptions(
        storage=storage, study_name=study, gpus=gpus, workers=workers, data_dir=data_dir
    )
    shown = commands.reproduce(space, options, run_first=run, out=out, dataset=dataset)
    Output(format).show(shown)


def replay(
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            metavar="URL",
            help=f"Results database of the recorded grid (default: {STORAGE}).",
        ),
    ] = None,
    study: StudyOpt = None,
    record: Annotated[
        str | None,
        typer.Option("--record", metavar="FILE", help="A saved record (.json.gz) instead."),
    ] = None,
    methods: Annotated[
        str | None,
        typer.Option(
            "--methods",
            metavar="LIST",
            help="Among grid,random,nsga2,tpe,gp,moasha,moasha-shuffled,moasha-oracle "
            f"(default: {','.join(commands.REPLAY_METHODS)}; moasha only where it can "
            "estimate the objectives at a rung).",
        ),
    ] = None,
    budget: Annotated[
        int | None,
        typer.Option("--budget", min=1, help="Trials of random/nsga2/tpe/gp (default: grid/3)."),
    ] = None,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Seeds per method.")] = 30,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Virtual workers, as in dse run.")
    ] = 2,
    rungs: RungsOpt = None,
    eta: EtaOpt = None,
    plot: Annotated[
        bool, typer.Option("--plot", help="Write the HTML figure: hypervolume vs compute.")
    ] = False,
    out: Annotated[
        str, typer.Option("--out", metavar="DIR", help="Folder for the figure.")
    ] = "results",
    save_record: Annotated[
        str | None,
        typer.Option("--save-record", metavar="FILE", help="Write the study's record (.json.gz)."),
    ] = None,
    format: FormatOpt = Format.table,
) -> None:
    """Replay search methods over a recorded grid: hypervolume and compute shares over seeds.

    Each method runs as `dse run` would, on a simulated clock fed by the recorded epoch times;
    the JSON (last line) lists each method's hv_share and compute_share with 95% intervals.
    """
    shown = commands.replay(
        storage, study, record, methods, budget, seeds, workers, rungs, eta, plot, out, save_record
    )
    Output(format).show(shown)
