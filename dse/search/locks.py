"""One runner at a time while a study is set up: schema, study, queued points.

Several `dse run` on one study (hosts sharing a PostgreSQL database, processes sharing a
SQLite or journal file) would otherwise race at the start: two create the schema or the
study at once (one crashes), or both read the trials, see the same grid point missing and
both queue it (it runs twice). Holding this lock while the runner opens the storage, creates
or loads the study and queues missing points makes that read-then-write one step.

- PostgreSQL: a session-level advisory lock (`pg_advisory_lock`) on its own connection;
  the server releases it if the runner dies.
- SQLite and journal files: an exclusive `flock` on the database's folder (study.folder_lock:
  no lock file is left behind, and the kernel releases it when the process dies).
- Other databases (MySQL, ...): no lock; start their runners one after another.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from dse.errors import DseError
from dse.search.storage import (
    first_answer,
    folder_lock,
    journal_path,
    normalized_url,
    open_error,
    sqlite_path,
)

# One lock per database for every dse study in it: set-up takes milliseconds.
ADVISORY_KEY = zlib.crc32(b"dse: study set-up")


@contextlib.contextmanager
def setup_lock(
    url: str, wait_s: float = 0.0, stop: Callable[[], int | None] | None = None
) -> Iterator[None]:
    """`wait_s`: how long a database server that does not answer yet is waited for."""
    url = normalized_url(url)
    if url.startswith("postgresql"):
        with _advisory_lock(url, wait_s, stop):
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


@contextlib.contextmanager
def _advisory_lock(
    url: str, wait_s: float, stop: Callable[[], int | None] | None
) -> Iterator[None]:
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    try:
        engine = sqlalchemy.create_engine(url, poolclass=NullPool)
        connection = first_answer(engine.connect, url, wait_s, stop)
    except DseError:  # a signal ended the wait
        raise
    except Exception as exc:  # unreachable server, refused login, missing driver
        raise open_error(url, exc) from None
    try:
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_KEY})
        connection.commit()
        yield
    finally:
        with contextlib.suppress(Exception):  # a lost connection has released it already
            connection.execute(
                sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_KEY}
            )
            connection.commit()
        connection.close()
        engine.dispose()
