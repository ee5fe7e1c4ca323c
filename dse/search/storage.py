"""The results database: an optuna storage opened from a URL, and closed on time.

Storage URLs: any SQLAlchemy URL optuna's RDBStorage takes (sqlite:///results/dse.db, the
default; postgresql+psycopg://user@host/db, where postgresql:// means the same: psycopg 3 is
the driver of the `dse[postgres]` extra; mysql+pymysql://user@host/db for MySQL and MariaDB,
where mysql:// and mariadb:// mean the same: PyMySQL is the `dse[mysql]` extra), or a
journal file (a path ending in .log or .journal, or journal:PATH). RDB storages run with
heartbeats: a trial whose runner died goes stale after GRACE_PERIOD_S, is marked FAIL and
re-queued with the same parameters.
Journal files have no heartbeats (optuna's limit): after a crash, stale RUNNING trials stay.
A database storage rides out outages (resilient.ResilientStorage): a database that goes away
is waited for, up to a limit, and every write lands once. A run may also wait a little for
a database server that does not answer as it starts (`open_wait_s`: a server restarting
takes seconds; a URL nobody serves should not hold the command for the whole outage limit).

Several `dse run` processes may start on one new SQLite database at the same moment: creating
the schema and the study is serialized by a lock on the database's folder (optuna's own
creation races: `UNIQUE constraint failed: alembic_version.version_num`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from dse.errors import ConfigError, DatabaseDown, DseError, Interrupted, StorageError, option
from dse.search.outage import DEFAULT_OUTAGE_LIMIT_S, Retrier, database_words, shown_url
from dse.search.resilient import ResilientStorage
from dse.search.storage_files import NO_TABLES, check_sqlite_path, open_journal

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

T = TypeVar("T")

DEFAULT_STORAGE = "sqlite:///results/dse.db"
HEARTBEAT_INTERVAL_S = 2
GRACE_PERIOD_S = 10
SQLITE_TIMEOUT_S = 60
OPEN_WAIT_S = 30.0  # how long `dse run` waits for a database server that does not answer yet
CONNECT_TIMEOUT_S = 10  # a database server's connect timeout (PostgreSQL, MySQL)
STALE_RETRIES = 3  # optuna re-queues a stale trial's point this many times


# URL schemes without a driver, and the driver's scheme: the driver of dse's extra
_DRIVERS = {
    "postgresql://": "postgresql+psycopg://",  # dse[postgres]
    "postgres://": "postgresql+psycopg://",
    "mysql://": "mysql+pymysql://",  # dse[mysql]
    "mariadb://": "mysql+pymysql://",
}
# the line that says an extra's driver is missing
_EXTRAS = {
    "postgresql+psycopg://": "PostgreSQL needs the psycopg driver: pip install 'dse[postgres]'",
    "mysql+pymysql://": "MySQL and MariaDB need the PyMySQL driver: pip install 'dse[mysql]'",
}


def normalized_url(url: str) -> str:
    """A URL without a driver gets the one dse's extra installs: postgresql:// and postgres://
    psycopg 3 (dse[postgres]), mysql:// and mariadb:// PyMySQL (dse[mysql]). MariaDB is
    spoken to as MySQL (mariadb+DRIVER:// as mysql+DRIVER://): optuna handles MySQL by the
    scheme's name (its upserts, its connection defaults)."""
    for prefix, driver in _DRIVERS.items():
        if url.startswith(prefix):
            return driver + url.removeprefix(prefix)
    if url.startswith("mariadb+"):
        return "mysql+" + url.removeprefix("mariadb+")
    return url


def check_names_database(url: str) -> None:
    """A MySQL URL must name its database (SQLAlchemy failed an assertion without one)."""
    import sqlalchemy

    try:
        parsed = sqlalchemy.engine.make_url(normalized_url(url))
    except Exception:  # not a URL: opening it says so
        return
    if parsed.get_backend_name() == "mysql" and not parsed.database:
        raise ConfigError(
            f"{option('storage')} {shown_url(url)}: name the database on the server: "
            "mysql://USER@HOST/DATABASE"
        )


def open_error(url: str, exc: BaseException) -> DseError:
    """The one-line error for a storage that cannot be opened: the URL without its password,
    and the database's own words (the driver's, not optuna's wrapper around them)."""
    shown = shown_url(url)
    driver = normalized_url(url)
    extra = next((words for scheme, words in _EXTRAS.items() if driver.startswith(scheme)), None)
    if isinstance(exc, ImportError) and extra is not None:
        return ConfigError(f"{option('storage')} {shown}: {extra}")
    if isinstance(exc, ImportError):
        return ConfigError(
            f"{option('storage')} {shown}: the database driver is not installed "
            f"({exc.name or database_words(exc)})"
        )
    words = database_words(exc)
    if "version_info" in words:  # optuna's first table: no such table (SQLite), no relation
        return StorageError(f"{option('storage')} {shown}: not a results database ({NO_TABLES})")
    return StorageError(f"{option('storage')} {shown}: cannot open the database: {words}")


def journal_path(url: str) -> str | None:
    if url.startswith("journal:"):
        return url.removeprefix("journal:")
    if url.endswith((".log", ".journal")) and "://" not in url:
        return url
    return None


def sqlite_path(url: str) -> Path | None:
    """The database file of a sqlite URL (None for in-memory or other schemes)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///")
    return None if path in ("", ":memory:") else Path(path)


def in_memory(url: URL) -> bool:
    """An SQLite database that lives in the process (sqlite://, sqlite:///:memory:)."""
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def open_storage(
    url: str,
    create: bool,
    outage_limit: float = DEFAULT_OUTAGE_LIMIT_S,
    open_wait_s: float = 0.0,
    stop: Callable[[], int | None] | None = None,
) -> optuna.storages.BaseStorage:
    """Open a storage; with create=False nothing is created (a missing database is an error).

    A database storage rides out outages up to `outage_limit` seconds (resilient.py). A
    database server must answer within `open_wait_s` (0: now; a warning says it is waited
    for; `stop`, a signal received, ends the wait); SQLite files and journals are opened at
    once."""
    journal = journal_path(url)
    if journal is not None:
        return open_journal(url, Path(journal), create)
    import sqlalchemy

    given, url = url, normalized_url(url)
    check_database_url(given, create)
    engine_kwargs = _engine_kwargs(url)
    path = sqlite_path(url)
    if path is not None:
        check_sqlite_path(given, path, create)
    existed = path is not None and path.exists()
    try:
        with creation_lock(url), warnings.catch_warnings():
            # heartbeats are experimental in optuna, and what we need
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            if path is not None and create:
                _use_wal(path)
            storage = first_answer(
                lambda: RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    skip_table_creation=not create,
                    heartbeat_interval=HEARTBEAT_INTERVAL_S,
                    grace_period=GRACE_PERIOD_S,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                        max_retry=STALE_RETRIES
                    ),
                ),
                url,
                0.0 if path is not None else open_wait_s,
                stop,
            )
            if create and url.startswith("mysql"):
                _widen_mysql_values(storage.engine)
    except Exception as exc:  # SQLAlchemy's OperationalError and friends: unreachable, refused
        if path is not None and not existed:  # a full disk, say: leave no half-made database
            for leftover in (path, *_sqlite_sidecars(path)):
                leftover.unlink(missing_ok=True)
        if isinstance(exc, DseError):
            raise
        raise open_error(given, exc) from None
    if url.startswith("sqlite"):
        sqlalchemy.event.listen(storage.engine, "connect", _no_sync_per_commit)
        storage.engine.dispose()  # connections made from here on get the pragma
    return ResilientStorage(storage, outage_limit, shown=given)


def check_database_url(given: str, create: bool) -> None:
    """A database URL dse can open (the driver installed, a database named, not one that
    lives in a process); else the one line that says why."""
    import sqlalchemy
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = sqlalchemy.engine.make_url(normalized_url(given))
        parsed.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        raise ConfigError(
            f"{option('storage')} {shown_url(given)}: unknown storage URL; use sqlite:///PATH.db, "
            "postgresql://USER@HOST/DB, mysql://USER@HOST/DB or a journal file PATH.log"
        ) from None
    except ImportError as exc:
        raise open_error(given, exc) from None
    if not create and in_memory(parsed):
        raise StorageError(
            f"{option('storage')} {given}: an in-memory database holds nothing to read; "
            "give the results database's file (sqlite:///PATH.db)"
        )
    check_names_database(given)
    if in_memory(parsed):  # each worker process opening it would get a database of its own
        raise StorageError(
            f"{option('storage')} {given}: an in-memory database lives in one process, and a "
            "run's workers and later commands share its results: give a file (sqlite:///PATH.db)"
        )


def first_answer(
    make: Callable[[], T],
    url: str,
    wait_s: float,
    stop: Callable[[], int | None] | None = None,
) -> T:
    """make() (a first connection to the database), tried again while the database server is
    unreachable, for up to `wait_s` (one warning says so); then its last failure is raised.
    A failure retrying cannot fix is raised at once; `stop` (a signal received) ends the wait."""
    if wait_s <= 0:
        return make()
    retrier = Retrier(url, wait_s, grace_s=0.0)
    if stop is not None:
        retrier.stop = stop
    failed: list[BaseException] = []
    try:
        return retrier.call(make, failed=failed)
    except DatabaseDown:
        raise failed[-1] from None
    except Interrupted as exc:
        raise Interrupted(
            f"interrupted while waiting for the database {retrier.url} to answer; nothing "
            "was started",
            exc.signal_number,
        ) from None


def _engine_kwargs(url: str) -> dict[str, Any]:
    """SQLite waits for a busy database; a database server's pooled connection is checked
    before use (a server restart, or MySQL's wait_timeout, leaves the pool's connections dead)
    and connecting is given up after a while."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    if url.startswith(("postgresql", "mysql")):
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
    return {}


# optuna keeps attribute values in TEXT columns: at most 64 KB on MySQL, where a trial's
# history passes that after some 230 epochs (about 280 bytes an epoch) and the run ended in
# "Data too long for column 'value_json'". MEDIUMTEXT holds 16 MB.
_MYSQL_VALUE_TABLES = (
    "trial_user_attributes",
    "trial_system_attributes",
    "study_user_attributes",
    "study_system_attributes",
)


def _widen_mysql_values(engine: Any) -> None:
    """optuna's attribute values as MEDIUMTEXT, once per database (run under the set-up lock;
    a database dse widened before is left as it is)."""
    import sqlalchemy

    with engine.begin() as connection:
        narrow = connection.execute(
            sqlalchemy.text(
                "SELECT table_name FROM information_schema.columns WHERE "
                "table_schema = DATABASE() AND column_name = 'value_json' AND data_type = 'text'"
            )
        ).scalars()
        for table in sorted(set(narrow) & set(_MYSQL_VALUE_TABLES)):
            connection.execute(sqlalchemy.text(f"ALTER TABLE {table} MODIFY value_json MEDIUMTEXT"))


def close_storage(storage: optuna.storages.BaseStorage) -> None:
    """Close a storage's database connections now, not whenever they are garbage-collected.

    The last SQLite connection to close checkpoints the WAL into the database file: closed
    here, that happens when `dse run` ends, not later inside whichever command runs next.
    """
    rdb = storage.rdb if isinstance(storage, ResilientStorage) else storage
    if isinstance(rdb, RDBStorage):
        rdb.engine.dispose()


def _use_wal(path: Path) -> None:
    """Write-ahead logging: readers never block the writer and a commit is one append.

    With the default rollback journal, 8 `dse run` processes on one database starved each
    other's writes for tens of seconds, so live trials missed their heartbeats and were failed
    as stale. WAL needs every process on one host (not a network filesystem): several hosts
    share a PostgreSQL storage instead. The mode is stored in the database file.
    """
    with contextlib.closing(sqlite3.connect(path, timeout=SQLITE_TIMEOUT_S)) as db:
        db.execute("PRAGMA journal_mode=WAL")


def _no_sync_per_commit(connection: Any, _record: Any) -> None:
    """In WAL mode, synchronous=NORMAL syncs at checkpoints, not at every commit: a killed
    process loses nothing, a power cut may lose the last commits, and the file stays sound."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_sidecars(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal")]


_held_folders: dict[Path, int] = {}  # folder locks this process holds, and how deeply


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive flock on a folder: no lock file is left behind, the kernel releases it
    when the process dies. Re-entrant within a process (a second flock on another descriptor
    of the same folder would wait for the first forever)."""
    folder = folder.resolve()
    if folder in _held_folders or not folder.is_dir():
        _held_folders[folder] = _held_folders.get(folder, 0) + 1
        try:
            yield
        finally:
            _held_folders[folder] -= 1
            if not _held_folders[folder]:
                del _held_folders[folder]
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):  # NFS may refuse locks on folders: go on unlocked
            fcntl.flock(fd, fcntl.LOCK_EX)
        _held_folders[folder] = 1
        yield
    finally:
        _held_folders.pop(folder, None)
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def creation_lock(url: str) -> Iterator[None]:
    """Serialize creating a SQLite database's schema and studies (its folder's lock).

    Other storages pass through: PostgreSQL servers serialize schema creation themselves.
    """
    path = sqlite_path(url)
    if path is None:
        yield
        return
    with folder_lock(path.parent):
        yield
