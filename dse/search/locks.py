"""One runner at a time while a study is set up: schema, study, queued points.

Several `dse run` on one study (hosts sharing a PostgreSQL database, processes sharing a
SQLite or journal file) would otherwise race at the start: two create the schema or the
study at once (one crashes), or both read the trials, see the same grid point missing and
both queue it (it runs twice). Holding this lock while the runner opens the storage, creates
or loads the study and queues missing points makes that read-then-write one step.

- PostgreSQL: a session-level advisory lock (`pg_advisory_lock`) on its own connection;
  the server releases it if the runner dies.
- MySQL and MariaDB: a named user-level lock (`GET_LOCK`) on its own connection, released
  by the server too if the runner dies. Without it, six runners starting at once on a new
  MariaDB database queued the 8 points of a grid 37 times, and one crashed creating a table
  another had just made.
- SQLite and journal files: an exclusive `flock` on the database's folder (study.folder_lock:
  no lock file is left behind, and the kernel releases it when the process dies).
- Other databases: no lock; start their runners one after another.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dse.errors import DseError, Interrupted
from dse.search.storage import (
    check_names_database,
    first_answer,
    folder_lock,
    journal_path,
    normalized_url,
    open_error,
    sqlite_path,
)

# One lock per database for every dse study in it: set-up takes milliseconds.
ADVISORY_KEY = zlib.crc32(b"dse: study set-up")
# MySQL's named locks are server-wide (names of at most 64 characters): the database's name,
# hashed, keeps other databases' runners apart.
NAMED_LOCK = "dse: study set-up {database_crc32}"
NAMED_LOCK_WAIT_S = 5  # each GET_LOCK's wait (MariaDB takes no negative, endless, wait)


@dataclass(frozen=True)
class _ServerLock:
    """The SQL that takes and gives back a lock the database server holds for a connection."""

    take: str
    give_back: str
    taken: Callable[[object], bool]  # whether take's answer means the lock is held


_POSTGRES_LOCK = _ServerLock(
    "SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)", lambda _answer: True
)
_MYSQL_LOCK = _ServerLock(
    f"SELECT GET_LOCK(:name, {NAMED_LOCK_WAIT_S})",
    "SELECT RELEASE_LOCK(:name)",
    lambda answer: answer == 1,  # 0: another runner still holds it; wait again
)


@contextlib.contextmanager
def setup_lock(
    url: str, wait_s: float = 0.0, stop: Callable[[], int | None] | None = None
) -> Iterator[None]:
    """`wait_s`: how long a database server that does not answer yet is waited for."""
    given, url = url, normalized_url(url)
    server_lock = _server_lock(url)
    if server_lock is not None:
        check_names_database(given)
        with _held_on_server(server_lock, given, wait_s, stop):
            yield
        return
    path = journal_path(url) or sqlite_path(url)
    if path is None:
        yield
        return
    folder = Path(path).resolve().parent
    with contextlib.suppress(OSError):  # unwritable: opening the storage says so, in its words
        folder.mkdir(parents=True, exist_ok=True)
    with folder_lock(folder):
        yield


def _server_lock(url: str) -> _ServerLock | None:
    if url.startswith("postgresql"):
        return _POSTGRES_LOCK
    if url.startswith("mysql"):  # MariaDB's URLs too, once normalized
        return _MYSQL_LOCK
    return None


@contextlib.contextmanager
def _held_on_server(
    lock: _ServerLock, url: str, wait_s: float, stop: Callable[[], int | None] | None
) -> Iterator[None]:
    """`url` as the user gave it (errors name it so)."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    try:
        engine = sqlalchemy.create_engine(normalized_url(url), poolclass=NullPool)
        connection = first_answer(engine.connect, url, wait_s, stop)
    except DseError:  # a signal ended the wait
        raise
    except Exception as exc:  # unreachable server, refused login, missing driver
        raise open_error(url, exc) from None
    database_crc32 = zlib.crc32((engine.url.database or "").encode())
    names = {"key": ADVISORY_KEY, "name": NAMED_LOCK.format(database_crc32=database_crc32)}
    try:
        while not lock.taken(connection.execute(sqlalchemy.text(lock.take), names).scalar()):
            signal_number = stop() if stop is not None else None
            if signal_number is not None:
                raise Interrupted(
                    "interrupted while waiting for another runner to set up the study; "
                    "nothing was started",
                    signal_number,
                )
        connection.commit()
        yield
    finally:
        with contextlib.suppress(Exception):  # a lost connection has released it already
            connection.execute(sqlalchemy.text(lock.give_back), names)
            connection.commit()
        connection.close()
        engine.dispose()
