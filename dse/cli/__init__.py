"""dse finds the fastest ways to train a Capsule Network that still reach your accuracy.

Describe a search space in YAML (axes such as the LR policy, the batch-size schedule, routing
iterations, weight sharing); `dse run` trains every combination as a trial on your GPUs or CPU
cores, keeps time and accuracy in a results database and prints the Pareto front; `dse pareto
--plot` draws it; `dse export` writes the chosen configuration to train again.

Start with: dse spaces; dse run --space quick.yaml; dse pareto --plot
"""

# The command line only parses, calls one function of dse.commands and prints what it shows.

from __future__ import annotations

import inspect
import os
import sys
import warnings
from importlib import metadata
from typing import Annotated

import typer
from typer.core import TyperCommand, TyperGroup

from dse import commands
from dse.cli import explore, single
from dse.errors import INTERRUPTED_EXIT, DseError, Interrupted, as_cli

EXPLORE = "Explore a space"
ONE_CONFIG = "One configuration"
STOPPED = "interrupted: the command stopped before it finished"  # a signal, no better line


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {as_cli(str(message))}\n"  # inputs named by their options, as errors are


class _FlagsAsFlags:
    """typer prints a type beside every option, `--plot <bool>` too, which reads as if the
    flag took a value: flags show none."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False):
                param.metavar = ""
        return params


class Command(_FlagsAsFlags, TyperCommand):
    pass


class Group(_FlagsAsFlags, TyperGroup):
    pass


class OneLineErrors(Group):
    """The error boundary of the whole app. What a user can get wrong is one line on stderr
    and exit code 2: a DseError from any command (DSE_DEBUG=1 re-raises it with its
    traceback), running out of memory (dse.train.memory: the batch or the model is too
    large), and a usage error (an unknown option, a value out of range), for which typer
    would print a usage block and a framed message. Bugs still raise."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        warnings.formatwarning = _one_line_warning
        if not standalone_mode:  # the caller handles every exception itself
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            with commands.sigterm_as_interrupt():  # every command: SIGTERM ends it as Ctrl-C does
                code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except DseError as exc:
            _fail(exc, exc)
        except typer.TyperException as exc:  # typer's click exceptions derive from it
            if type(exc).__name__ == "NoArgsIsHelpError":  # `dse` alone: its help, printed once
                sys.stdout.write(exc.format_message().strip("\n") and exc.format_message())
                sys.exit(2)  # click's rule for a group called without a command
            sys.stderr.write(f"error: {' '.join(exc.format_message().split())}\n")
            sys.exit(getattr(exc, "exit_code", 2))
        except typer.Abort:
            sys.stderr.write("Aborted!\n")
            sys.exit(1)
        except Exception as exc:  # out of memory is the user's batch or model, not a bug
            error = commands.out_of_memory_error(exc)
            if error is None:
                raise
            _fail(error, exc)
        if code == INTERRUPTED_EXIT:  # typer's answer to a Ctrl-C while it parsed the command
            sys.stderr.write(f"{STOPPED}\n")
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx):
        """Ctrl-C or SIGTERM that no command turned into a line of its own (train's says where
        its checkpoint is, run's how to resume): one line and exit code 130 or 143."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise Interrupted(STOPPED, commands.signal_of(exc)) from None


def _fail(error: DseError, raised: BaseException) -> None:
    """One line and the error's exit code; DSE_DEBUG=1: what was raised, with its traceback."""
    if os.environ.get("DSE_DEBUG") == "1":
        raise raised
    sys.stderr.write(f"{error.label}{error.cli_message()}\n")
    sys.exit(error.exit_code)


def _flowing(text: str) -> str:
    """A docstring as help text: its paragraphs each one line, for rich to wrap to the
    terminal (typer keeps a docstring's line breaks, so at 80 columns a line wrapped at 95
    left a word or two on a line of its own)."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(paragraph.split("\n")) for paragraph in paragraphs)


def _typer(help: str, cls: type = Group) -> typer.Typer:
    return typer.Typer(
        cls=cls,
        no_args_is_help=True,
        add_completion=False,
        help=_flowing(help),
        context_settings={"help_option_names": ["-h", "--help"]},
    )


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"dse {metadata.version('dse')}\n")
        raise typer.Exit()


app = _typer(__doc__, OneLineErrors)


@app.callback()
def _app(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = None,
) -> None:
    pass


def _add(target: typer.Typer, function, name: str | None = None, panel: str | None = None):
    help = _flowing(function.__doc__ or "")
    target.command(name, cls=Command, rich_help_panel=panel, help=help)(function)


for function in (
    explore.run,
    explore.pareto,
    explore.trials,
    explore.studies,
    explore.export,
    explore.spaces,
    explore.reproduce,
    explore.replay,
):
    _add(app, function, panel=EXPLORE)
for function in (
    single.train,
    single.evaluate,
    single.summary,
    single.bench,
    single.profile,
    single.calibrate,
    single.inspect,
):
    _add(app, function, panel=ONE_CONFIG)

config_app = _typer("Show resolved configurations and presets.")
_add(config_app, single.config_show, "show")
_add(config_app, single.config_presets, "presets")
app.add_typer(config_app, name="config", rich_help_panel=ONE_CONFIG)
report_app = _typer("Figures across runs.")
_add(report_app, single.report_accuracy, "accuracy")
app.add_typer(report_app, name="report", rich_help_panel=ONE_CONFIG)

main = app  # the console script
