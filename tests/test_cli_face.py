"""The CLI's face: a top-level help that says what dse is for, -h beside --help, --version,
options with a fixed set of values that list it, and flags that read as flags."""

from __future__ import annotations

import re
from importlib import metadata

import pytest
from typer.testing import CliRunner

from dse.cli import app


def _dse(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def test_the_top_level_help_describes_the_tool():
    result = _dse("-h")
    assert result.exit_code == 0
    assert "dse finds the fastest ways to train a Capsule Network" in result.stdout
    assert "Start with: dse spaces; dse run --space quick.yaml; dse pareto --plot" in result.stdout
    assert "Explore a space" in result.stdout and "One configuration" in result.stdout
    assert "No logic lives here" not in result.stdout
    bare = _dse()  # `dse` alone: the same help, once (exit 2, as click has it for a group)
    assert bare.exit_code == 2 and bare.stdout.strip() == result.stdout.strip()


def test_version():
    result = _dse("--version")
    assert result.exit_code == 0 and result.stdout == f"dse {metadata.version('dse')}\n"


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (["run"], ["grid|random|nsga2|tpe|gp", "local|dask", "moasha"]),
        (["export"], ["knee|fastest|most-accurate"]),
        (["evaluate"], ["test|val"]),
        (["profile"], ["op|layer", "train|test"]),
        (["pareto"], ["--color-by", "KEY"]),
        (["trials"], ["--columns"]),
        (["config", "show"], ["KEY=VALUE"]),
    ],
)
def test_fixed_values_are_listed_and_flags_take_none(command, shown):
    result = _dse(*command, "-h")
    assert result.exit_code == 0, result.stderr
    for text in shown:
        assert text in result.stdout
    assert "<bool>" not in result.stdout
    flags = [line for line in result.stdout.splitlines() if re.match(r"│ +--(help|plot) ", line)]
    assert flags and all(re.match(r"│ +--\w+ +(-h +)?[A-Z]", line) for line in flags)  # no type


def _commands(group, path=()):
    """Every command's path under the click group, the group's own first."""
    yield path
    for name, command in getattr(group, "commands", {}).items():
        yield from _commands(command, (*path, name))


def test_help_paragraphs_fill_the_terminal_width():
    """A docstring's line breaks are not kept: at 80 columns a paragraph wrapped at 95 in the
    source left a word or two on a line of their own ("schedule, routing" under `dse -h`)."""
    import typer.main

    for path in _commands(typer.main.get_command(app)):
        result = CliRunner().invoke(app, [*path, "-h"], env={"COLUMNS": "80"})
        assert result.exit_code == 0, (path, result.stderr)
        lines = result.stdout.splitlines()
        usage = next(i for i, line in enumerate(lines) if "Usage:" in line)
        box = next(i for i, line in enumerate(lines) if line.startswith("╭"))
        paragraphs = "\n".join(line.rstrip() for line in lines[usage + 1 : box]).split("\n\n")
        for paragraph in paragraphs:
            wrapped = [line for line in paragraph.strip("\n").splitlines() if line.strip()]
            short = [line for line in wrapped[:-1] if len(line) < 60]
            assert not short, (path, short)
