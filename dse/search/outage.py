"""Waiting out a database outage: which failures are worth retrying, and the retry loop.

`Retrier.call` runs one storage call, tries it again with exponential backoff and jitter while
the database cannot be reached (refused, restarting, a dropped connection, SQLite busy), and
gives up with one line (errors.DatabaseDown) once the outage has lasted longer than its limit,
measured from the first failed call of the outage. A failure retrying cannot fix (a full disk,
an I/O error) is one line at once. One warning says the database went away, one that it came
back. Used by resilient.ResilientStorage for every call of optuna's storage.
"""

from __future__ import annotations

import enum
import random
import re
import sqlite3
import time
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from dse.errors import DatabaseDown, Interrupted, StorageError, option

DEFAULT_OUTAGE_LIMIT_S = 300.0
FIRST_BACKOFF_S = 0.25
MAX_BACKOFF_S = 4.0
SLEEP_STEP_S = 0.2  # a stop signal is noticed this soon while waiting

T = TypeVar("T")


class DatabaseOutage(UserWarning):
    """The database went away, or came back (one warning each)."""


warnings.filterwarnings("always", category=DatabaseOutage)


class Failure(enum.Enum):
    TRANSIENT = "transient"  # unreachable, restarting, busy: retry
    FULL = "full"  # no space left for the database
    BROKEN = "broken"  # an I/O error, a read-only file: retrying cannot help


# PostgreSQL SQLSTATEs: connection exceptions (08), operator intervention (57P: shutting
# down, starting up), serialization failures and deadlocks, too many connections, no memory.
_TRANSIENT_STATES = ("08", "57P", "40001", "40P01", "53200", "53300")
# MySQL's error codes for a full disk and a full table: their SQLSTATE is the generic HY000
_MYSQL_FULL = (1021, 1114)
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "unable to open")
_SQLITE_BROKEN = ("disk i/o error", "readonly database", "malformed", "not a database")


def failure_kind(exc: BaseException) -> Failure | None:
    """What a storage call's exception says about the database; None: not the database's
    failure (a bug, a finished trial, a missing study): raised as it is."""
    import sqlalchemy.exc as sa

    for cause in _causes(exc):
        if isinstance(cause, sa.DisconnectionError | sa.TimeoutError):
            return Failure.TRANSIENT
        if not isinstance(cause, sa.DBAPIError):
            continue
        orig = cause.orig
        if isinstance(orig, sqlite3.Error):
            return _sqlite_failure(str(orig).lower())
        state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        if state == "53100" or _mysql_code(orig) in _MYSQL_FULL:  # PostgreSQL's disk_full
            return Failure.FULL
        if state is not None and state.startswith(_TRANSIENT_STATES):
            return Failure.TRANSIENT
        if cause.connection_invalidated:
            return Failure.TRANSIENT
        if isinstance(cause, sa.OperationalError | sa.InterfaceError) and state is None:
            return Failure.TRANSIENT
        return None
    return None


def _mysql_code(error: BaseException) -> int | None:
    """A MySQL driver's error code (its first argument; PostgreSQL's drivers give text)."""
    code = error.args[0] if error.args else None
    return code if isinstance(code, int) else None


def _sqlite_failure(message: str) -> Failure | None:
    if "full" in message:  # "database or disk is full"
        return Failure.FULL
    if any(m in message for m in _SQLITE_TRANSIENT):
        return Failure.TRANSIENT
    if any(m in message for m in _SQLITE_BROKEN):
        return Failure.BROKEN
    return None


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and those it was raised from (optuna wraps SQLAlchemy's errors)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def database_words(exc: BaseException) -> str:
    """The database's own words: the driver's message under SQLAlchemy's and optuna's."""
    import sqlalchemy.exc as sa

    for cause in _causes(exc):
        if isinstance(cause, sa.DBAPIError) and str(cause.orig).strip():
            return str(cause.orig).strip().splitlines()[0]
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# scheme://user:PASSWORD@host..., the password running to the last @ (an unescaped @ in it)
_CREDENTIALS = re.compile(r"^([A-Za-z][\w+.-]*://[^:/@]*:)[^/]*@")


def shown_url(url: str) -> str:
    """A storage URL as messages show it: without its password, also where the URL does not
    parse (a bad port) or its password holds an unescaped @."""
    import sqlalchemy

    masked = _CREDENTIALS.sub(r"\1***@", url)
    if masked != url:  # by hand: SQLAlchemy splits a password at its first @, or fails whole
        return masked
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL; no password in it
        return url


class Retrier:
    """Runs storage calls, retrying while the database is unreachable, up to `limit_s` of
    one outage (measured from the first failed call of the outage)."""

    def __init__(
        self,
        url: str,
        limit_s: float,
        grace_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.url, self.limit_s, self.grace_s = shown_url(url), limit_s, grace_s
        self.clock, self.sleep = clock, sleep
        self.down_since: float | None = None  # the first failure of the outage now
        self.back_at: float | None = None  # when the last outage ended
        self.outages = 0
        self.stop: Callable[[], int | None] = lambda: None  # a signal received, if any

    def call(
        self, fn: Callable[..., T], *args: Any, failed: list[BaseException] | None = None
    ) -> T:
        """fn(*args), tried until the database answers; `failed` collects the failed tries
        (a write that failed may have been applied)."""
        attempt = 0
        while True:
            try:
                result = fn(*args)
            except Exception as exc:
                kind = failure_kind(exc)
                if kind is None:
                    self._answered()  # the database answered: it is up
                    raise
                if kind is not Failure.TRANSIENT:
                    raise self.fatal(exc, kind) from None
                if failed is not None:
                    failed.append(exc)
                self._wait(exc, attempt)
                attempt += 1
                continue
            self._answered()
            return result

    def in_grace(self) -> bool:
        """Down now, or back for less than the grace: heartbeats may be as old as the outage."""
        if self.down_since is not None:
            return True
        return self.back_at is not None and self.clock() - self.back_at < self.grace_s

    def fatal(self, exc: BaseException, kind: Failure) -> StorageError:
        what = database_words(exc)
        if kind is Failure.FULL:
            return StorageError(
                f"{option('storage')} {self.url}: the database or its disk is full ({what}); "
                "the trials recorded so far are kept: free some space and run the same "
                "command again"
            )
        return StorageError(f"{option('storage')} {self.url}: the database failed: {what}")

    def _wait(self, exc: BaseException, attempt: int) -> None:
        now = self.clock()
        if self.down_since is None:
            self.down_since = now
            self.outages += 1
            warnings.warn(
                f"the database {self.url} is unreachable ({database_words(exc)}); retrying for up "
                f"to {self.limit_s:g} s",
                DatabaseOutage,
                stacklevel=2,
            )
        down_s = now - self.down_since
        if down_s >= self.limit_s:
            raise DatabaseDown(
                f"{option('storage')} {self.url}: the database has been unreachable for "
                f"{down_s:.0f} s, over {option('db_outage_limit')} {self.limit_s:g} s "
                f"({database_words(exc)}); the trials recorded so far are kept: run the same "
                "command again once the database is back"
            )
        delay = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2**attempt) * random.uniform(0.5, 1.0)
        deadline = now + min(delay, self.limit_s - down_s)
        while (left := deadline - self.clock()) > 0:
            self._check_stop()
            self.sleep(min(left, SLEEP_STEP_S))
        self._check_stop()

    def _check_stop(self) -> None:
        number = self.stop()
        if number is not None:
            raise Interrupted(
                f"interrupted while the database {self.url} was unreachable: the trials in "
                "flight stay RUNNING until they go stale; run the same command to resume",
                number,
            )

    def _answered(self) -> None:
        if self.down_since is None:
            return
        down_s = self.clock() - self.down_since
        self.down_since, self.back_at = None, self.clock()
        warnings.warn(
            f"the database {self.url} is back after {down_s:.0f} s", DatabaseOutage, stacklevel=3
        )
