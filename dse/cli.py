"""The `dse` command line: parse, call one library function, print. No logic lives here."""

from __future__ import annotations

import functools
import os
import sys
import warnings
from typing import Annotated

import typer

from dse.errors import DseError
from dse.output import Format, Output

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
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
            message = " ".join(str(exc).split("\n"))
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
