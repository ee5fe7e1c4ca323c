"""Opening a storage (dse/search/storage.py): a storage that cannot be opened is one line
naming the cause, exit code 2, with the file left as it was and no password shown."""

from __future__ import annotations

import importlib.util
import sqlite3
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dse.cli import app
from tests.conftest import dse_command, write_space

runner = CliRunner()

READING = [["studies"], ["trials"], ["pareto"], ["export", "--pick", "knee"]]
NEEDS_PSYCOPG = pytest.mark.skipif(
    importlib.util.find_spec("psycopg") is None, reason="psycopg not installed"
)


def _one_line_error(args: list[str], message: str) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not result.stdout.strip()
    return lines[0]


def _other_programs_database(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (text TEXT)")


@pytest.mark.parametrize("command", READING, ids=[c[0] for c in READING])
def test_reading_commands_name_why_a_database_cannot_be_opened(workdir, command):
    write_space(workdir, name="some")
    _other_programs_database(workdir / "other.db")
    before = {p.name: p.read_bytes() for p in workdir.iterdir() if p.is_file()}
    _one_line_error([*command, "--storage", "sqlite:///some.yaml"], "file is not a database")
    _one_line_error(
        [*command, "--storage", "sqlite:///other.db"],
        "--storage sqlite:///other.db: not a results database (no such table: version_info)",
    )
    for memory in ("sqlite://", "sqlite:///:memory:"):
        _one_line_error(
            [*command, "--storage", memory], "an in-memory database holds nothing to read"
        )
    assert {p.name: p.read_bytes() for p in workdir.iterdir() if p.is_file()} == before


@NEEDS_PSYCOPG
@pytest.mark.parametrize("command", READING, ids=[c[0] for c in READING])
def test_reading_commands_name_an_unreachable_server_without_its_password(workdir, command):
    line = _one_line_error(
        [*command, "--storage", "postgresql://u:secret@127.0.0.1:1/db"],
        "--storage postgresql://u:***@127.0.0.1:1/db: cannot open the database: ",
    )
    assert "Connection refused" in line and "secret" not in line


@NEEDS_PSYCOPG
def test_run_never_shows_the_password_of_an_unreachable_server(workdir):
    """The warning while it waits (a process of its own: pytest takes in-process warnings)
    and the error after it both mask the password."""
    write_space(workdir)
    command, env = dse_command(
        *("run", "--space", "tiny.yaml", "--db-outage-limit", "0.5"),
        *("--storage", "postgresql://u:secret@127.0.0.1:1/db"),
    )
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("warning: the database"), lines
    assert "u:***@127.0.0.1:1/db is unreachable" in lines[0]
    assert lines[1].startswith("error: --storage postgresql+psycopg://u:***@127.0.0.1:1/db")
    assert "Connection refused" in lines[1]
    assert "secret" not in result.stderr


def test_an_unknown_url_is_shown_without_its_password(workdir):
    write_space(workdir)
    line = _one_line_error(
        ["run", "--space", "tiny.yaml", "--storage", "foo://u:secret@host/db"],
        "--storage foo://u:***@host/db: unknown storage URL",
    )
    assert "secret" not in line
