"""The options several commands share, and options whose value is one of a fixed set."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import typer

from dse import commands
from dse.errors import ConfigError, choose_from, option
from dse.output import Format


def choice(flag: str, choices: Sequence[str], help: str) -> Any:
    """An option whose value is one of `choices`: the help lists them, and a value outside
    them is one line naming the choices (and the nearest one), before any work starts."""

    def check(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
        if value is not None and value not in choices:
            raise ConfigError(choose_from(option(param.name or flag), value, choices))
        return value

    return typer.Option(flag, help=help, metavar="|".join(choices), callback=check)


ConfigOpt = Annotated[
    str | None, typer.Option("--config", "-c", metavar="FILE", help="TrialConfig YAML file.")
]
PresetOpt = Annotated[
    str | None,
    typer.Option("--preset", "-p", metavar="NAME", help="A named preset (dse config presets)."),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", metavar="KEY=VALUE", help="Override a key (repeatable)."),
]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
DeviceOpt = Annotated[
    str, typer.Option("--device", "-d", metavar="DEVICE", help="cpu, cuda or cuda:N.")
]
DataDirOpt = Annotated[
    str | None,
    typer.Option(
        "--data-dir", metavar="DIR", help="Folder with the dataset files (or its parent)."
    ),
]
StorageOpt = Annotated[
    str,
    typer.Option(
        "--storage", metavar="URL", help="Results database: SQLAlchemy URL or journal file."
    ),
]
StudyOpt = Annotated[
    str | None, typer.Option("--study", metavar="NAME", help="Study (default: the only one).")
]
GpusOpt = Annotated[
    str | None, typer.Option("--gpus", metavar="LIST", help="GPU indices like 0,1 (or cpu).")
]
WorkersOpt = Annotated[int | None, typer.Option("--workers", help="CPU worker processes.")]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads.")]
BatchOpt = Annotated[int, typer.Option("--batch", min=1, help="Batch size.")]
STORAGE = commands.DEFAULT_STORAGE
CheckpointDirOpt = Annotated[
    str | None,
    typer.Option(
        "--checkpoint-dir",
        metavar="DIR",
        help="Folder for the per-epoch checkpoints a run resumes from (see README).",
    ),
]
KeepCheckpointsOpt = Annotated[
    bool,
    typer.Option("--keep-checkpoints", help="Keep per-epoch checkpoints after a run ends."),
]

# dse run's options for a Dask cluster and for early stopping.
SchedulerOpt = Annotated[
    str | None,
    typer.Option("--scheduler", metavar="URL", help="Dask scheduler, like tcp://HOST:8786."),
]
GpusPerTrialOpt = Annotated[
    int | None,
    typer.Option("--gpus-per-trial", help="Dask: GPUs per trial (default 1 if declared)."),
]
EarlyStopOpt = Annotated[
    str | None,
    choice(
        "--early-stop",
        commands.EARLY_STOP_RULES,
        "Stop trials early at rungs (multi-objective ASHA).",
    ),
]
RungsOpt = Annotated[
    str | None,
    typer.Option(
        "--rungs",
        metavar="EPOCHS",
        help="Epochs at which MO-ASHA decides, like 1,3,9 (default: successive halving's for "
        "each run: 1, eta, eta^2 ... while eta times the rung fits in the run).",
    ),
]
EtaOpt = Annotated[
    float | None,
    typer.Option("--eta", help="MO-ASHA keeps the top 1/eta at each rung (default 3)."),
]
DbOutageLimitOpt = Annotated[
    float,
    typer.Option(
        "--db-outage-limit",
        metavar="SECONDS",
        min=0,
        help="How long the database may stay unreachable before the run stops (resumable).",
    ),
]
