"""The file a storage URL names, checked before it is opened: an SQLite database (another
program's, or not one, is refused before `dse run` writes to it; one that holds no results
is said so to a reader) or an optuna journal file (every line one of optuna's operations)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
from pathlib import Path

import optuna

from dse.errors import StorageError, option
from dse.search.outage import shown_url

NO_TABLES = "no dse studies, none of optuna's tables; `dse run` makes them"


def check_sqlite_path(url: str, path: Path, create: bool) -> None:
    if path.is_dir():
        raise StorageError(f"{option('storage')} {url}: {path} is a folder, not a database file")
    if not create:
        if not path.is_file():
            raise StorageError(
                f"{option('storage')} {url}: no results database at {path} (run `dse run` first)"
            )
        _check_results_database(url, path, create)
        return
    _check_writable(url, path)
    if path.is_file() and path.stat().st_size > 0:
        _check_results_database(url, path, create)


def _check_results_database(url: str, path: Path, create: bool) -> None:
    """An existing SQLite file that `dse run` would add optuna's tables to (and switch to WAL):
    refuse another program's database (tables, none of them optuna's) and a file that is not
    a database, before anything is written to it. To read (not `create`), a database without
    tables (an empty file) holds no results either; it is read, never written."""
    try:
        with contextlib.closing(
            sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=5)
        ) as db:
            rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):  # a writer holds it: optuna's open waits, or says so
            return
        raise StorageError(f"{option('storage')} {shown_url(url)}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise StorageError(
            f"{option('storage')} {shown_url(url)}: not a results database ({exc})"
        ) from None
    tables = sorted(row[0] for row in rows)
    if tables and "version_info" not in tables:
        shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        raise StorageError(
            f"{option('storage')} {shown_url(url)}: not a results database (it holds another "
            f"program's tables: {shown}); give a new file or a dse results database"
        )
    if not tables and not create:
        empty = "an empty file: " if path.stat().st_size == 0 else ""
        raise StorageError(
            f"{option('storage')} {shown_url(url)}: not a results database ({empty}{NO_TABLES})"
        )


def _check_writable(url: str, path: Path) -> None:
    """The folder of a database or journal file to be written: made, and writable."""
    parent = path.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"{option('storage')} {url}: cannot create {parent}: {exc.strerror}"
        ) from None
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise StorageError(f"{option('storage')} {url}: {parent} is not writable")


def open_journal(url: str, path: Path, create: bool) -> optuna.storages.BaseStorage:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if path.is_dir():
        raise StorageError(f"{option('storage')} {url}: {path} is a directory, not a journal file")
    if not create and not path.is_file():
        raise StorageError(
            f"{option('storage')} {url}: no journal file at {path} (run `dse run` first)"
        )
    if path.exists():
        _check_journal_lines(url, path)
    if create:
        _check_writable(url, path)
    try:
        return JournalStorage(JournalFileBackend(str(path)))
    except OSError as exc:  # a pseudo file system (/proc) answers "no such file" to root
        reason = "not writable" if exc.errno == errno.ENOENT else exc.strerror
        raise StorageError(f"{option('storage')} {url}: cannot create {path}: {reason}") from None
    except ValueError as exc:  # changed since the check
        raise _not_a_journal(url, str(exc)) from None


def _check_journal_lines(url: str, path: Path) -> None:
    """Every complete line of a journal file is one of optuna's operations, as JSON: optuna
    would raise on a damaged one in every command, and `dse run` would append to the file
    first. A last line without its newline may be one being written (optuna waits for it),
    if it begins as one does."""
    try:
        with path.open("rb") as file:
            for number, line in enumerate(file, start=1):
                if not line.endswith(b"\n") and line.startswith(b"{"):
                    return
                try:
                    operation = json.loads(line)
                except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
                    raise _not_a_journal(url, f"line {number}: {exc}") from None
                if not isinstance(operation, dict) or "op_code" not in operation:
                    raise _not_a_journal(url, f"line {number}: not one of optuna's operations")
    except OSError as exc:
        raise StorageError(
            f"{option('storage')} {url}: cannot read {path}: {exc.strerror}"
        ) from None


def _not_a_journal(url: str, detail: str) -> StorageError:
    return StorageError(f"{option('storage')} {url}: not a journal file optuna can read ({detail})")
