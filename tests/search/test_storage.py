"""Opening a storage (dse/search/storage.py): a storage that cannot be opened is one line
naming the cause, exit code 2, with the file left as it was and no password shown."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dse.cli import app
from dse.search.storage import normalized_url
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


DAMAGED_JOURNALS = {
    "binary": (bytes(range(128, 256)) * 20, "line 1: 'utf-8' codec can't decode"),
    "binary-lines": (b"\x80\n\x81\n" * 100, "line 1: 'utf-8' codec can't decode"),
    "text": (b"not json\n", "line 1: Expecting value"),
    "second-line": (
        b'{"op_code":0,"worker_id":"w","study_name":"s","directions":[1]}\n[1, 2]\n',
        "line 2: not one of optuna's operations",
    ),
}


@pytest.mark.parametrize("kind", DAMAGED_JOURNALS)
@pytest.mark.parametrize("command", [["run", "--space", "tiny.yaml"], *READING[:2]])
def test_a_damaged_journal_is_one_line_and_left_as_it_was(workdir, kind, command):
    write_space(workdir)
    content, reason = DAMAGED_JOURNALS[kind]
    journal = workdir / "damaged.log"
    journal.write_bytes(content)
    line = _one_line_error(
        [*command, "--storage", "damaged.log"],
        "--storage damaged.log: not a journal file optuna can read",
    )
    assert reason in line
    assert journal.read_bytes() == content
    assert sorted(p.name for p in workdir.iterdir()) == ["damaged.log", "data", "tiny.yaml"]


@pytest.mark.parametrize("command", [["run", "--space", "tiny.yaml"], ["studies"]])
def test_a_journal_that_is_a_directory(workdir, command):
    write_space(workdir)
    (workdir / "dir.log").mkdir()
    _one_line_error([*command, "--storage", "dir.log"], "dir.log is a directory")
    assert not any((workdir / "dir.log").iterdir())


def test_a_journal_in_a_pseudo_file_system_that_takes_no_files(workdir):
    write_space(workdir)
    _one_line_error(["run", "--space", "tiny.yaml", "--storage", "/proc/dse.log"], "not writable")


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("chattr") is None, reason="needs root and chattr"
)
@pytest.mark.parametrize("existing", [False, True], ids=["new-journal", "existing-journal"])
def test_a_journal_in_a_read_only_folder(workdir, existing):
    write_space(workdir)
    folder = workdir / "ro"
    folder.mkdir()
    if existing:
        (folder / "x.log").write_text("")
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("this file system has no immutable flag")
    try:
        before = sorted(folder.iterdir())
        _one_line_error(
            ["run", "--space", "tiny.yaml", "--storage", "ro/x.log"],
            f"--storage ro/x.log: {folder} is not writable",
        )
        assert sorted(folder.iterdir()) == before
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


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
        "--storage sqlite:///other.db: not a results database "
        "(it holds another program's tables: notes)",
    )
    for memory in ("sqlite://", "sqlite:///:memory:"):
        _one_line_error(
            [*command, "--storage", memory], "an in-memory database holds nothing to read"
        )
    assert {p.name: p.read_bytes() for p in workdir.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("command", READING, ids=[c[0] for c in READING])
def test_reading_a_file_that_holds_no_results_says_so_and_leaves_it(workdir, command):
    """An empty file, random bytes, an SQLite database without tables, an empty journal:
    one line naming the file, exit 2, and the file as it was (no tables made, no WAL files)."""
    (workdir / "empty.db").write_bytes(b"")
    (workdir / "random.db").write_bytes(bytes(range(256)) * 16)
    with sqlite3.connect(workdir / "tableless.db") as db:
        db.execute("CREATE TABLE gone (x INT)")
        db.execute("DROP TABLE gone")
    (workdir / "empty.log").write_bytes(b"")
    before = {p.name: p.read_bytes() for p in workdir.iterdir() if p.is_file()}
    no_tables = "no dse studies, none of optuna's tables; `dse run` makes them"
    expected = {
        "sqlite:///empty.db": f"not a results database (an empty file: {no_tables})",
        "sqlite:///random.db": "not a results database (file is not a database)",
        "sqlite:///tableless.db": f"not a results database ({no_tables})",
        "empty.log": "no studies in it yet (run `dse run` first)",
    }
    for url, message in expected.items():
        assert _one_line_error([*command, "--storage", url], message) == (
            f"error: --storage {url}: {message}"
        )
    assert {p.name: p.read_bytes() for p in workdir.iterdir() if p.is_file()} == before


def test_run_refuses_an_in_memory_database(workdir):
    """Each worker process would open a database of its own, and nothing would be kept."""
    write_space(workdir)
    for memory in ("sqlite://", "sqlite:///:memory:"):
        _one_line_error(
            ["run", "--space", "tiny.yaml", "--storage", memory],
            f"--storage {memory}: an in-memory database lives in one process",
        )
    assert not list(workdir.glob("*.db"))


def test_run_leaves_another_programs_sqlite_file_as_it_was(workdir):
    """`dse run` would have added optuna's tables to it and switched it to WAL."""
    write_space(workdir)
    _other_programs_database(workdir / "other.db")
    (workdir / "notes.txt").write_text("a note, not a database\n" * 20)
    before = {p.name: p.read_bytes() for p in workdir.iterdir() if p.is_file()}
    _one_line_error(
        ["run", "--space", "tiny.yaml", "--storage", "sqlite:///other.db"],
        "--storage sqlite:///other.db: not a results database "
        "(it holds another program's tables: notes)",
    )
    _one_line_error(
        ["run", "--space", "tiny.yaml", "--storage", "sqlite:///notes.txt"],
        "--storage sqlite:///notes.txt: not a results database (file is not a database)",
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
    assert lines[1].startswith("error: --storage postgresql://u:***@127.0.0.1:1/db")  # as given
    assert "Connection refused" in lines[1]
    assert "secret" not in result.stderr


def test_an_unknown_url_is_shown_without_its_password(workdir):
    write_space(workdir)
    line = _one_line_error(
        ["run", "--space", "tiny.yaml", "--storage", "foo://u:secret@host/db"],
        "--storage foo://u:***@host/db: unknown storage URL",
    )
    assert "secret" not in line


@pytest.mark.parametrize(
    ("given", "opened"),
    [
        ("postgresql://u@host/db", "postgresql+psycopg://u@host/db"),
        ("postgres://u@host/db", "postgresql+psycopg://u@host/db"),
        ("mysql://u@host/db", "mysql+pymysql://u@host/db"),
        ("mariadb://u@host/db", "mysql+pymysql://u@host/db"),
        ("mariadb+mysqldb://u@host/db", "mysql+mysqldb://u@host/db"),  # optuna knows "mysql"
        ("postgresql+psycopg2://u@host/db", "postgresql+psycopg2://u@host/db"),
        ("sqlite:///results/dse.db", "sqlite:///results/dse.db"),
    ],
)
def test_a_server_url_without_a_driver_gets_the_one_dse_installs(given, opened):
    assert normalized_url(given) == opened


@pytest.mark.parametrize("command", [["trials"], ["run", "--space", "tiny.yaml"]])
def test_a_mysql_url_without_a_database_is_one_line(workdir, command):
    """MySQL needs the database named (SQLAlchemy failed on an assertion without one)."""
    write_space(workdir)
    line = _one_line_error(
        [*command, "--storage", "mysql://u:secret@127.0.0.1:1"],
        "--storage mysql://u:***@127.0.0.1:1: name the database on the server: "
        "mysql://USER@HOST/DATABASE",
    )
    assert "secret" not in line
