"""Waiting out a database outage: which failures are retried, the backoff, the limit, the lines."""

from __future__ import annotations

import signal
import sqlite3

import pytest
import sqlalchemy.exc as sa
from optuna.exceptions import StorageInternalError

from dse.errors import DatabaseDown, Interrupted, StorageError
from dse.search.outage import DatabaseOutage, Failure, Retrier, failure_kind, shown_url


class FakeTime:
    """A clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class PgError(Exception):
    """A driver error carrying a SQLSTATE, as psycopg's do."""

    def __init__(self, message: str, sqlstate: str | None):
        super().__init__(message)
        self.sqlstate = sqlstate


def wrapped(orig: Exception, kind: type[sa.DBAPIError] = sa.OperationalError) -> Exception:
    """As optuna raises it: StorageInternalError from SQLAlchemy's error from the driver's."""
    try:
        try:
            raise kind("COMMIT", None, orig)
        except sa.SQLAlchemyError as exc:
            raise StorageInternalError("An exception is raised during the commit.") from exc
    except StorageInternalError as exc:
        return exc


@pytest.mark.parametrize(
    ("orig", "kind"),
    [
        (PgError("connection failed: Connection refused", None), Failure.TRANSIENT),
        (
            PgError("terminating connection due to administrator command", "57P01"),
            Failure.TRANSIENT,
        ),
        (PgError("the database system is starting up", "57P03"), Failure.TRANSIENT),
        (PgError("could not extend file: No space left on device", "53100"), Failure.FULL),
        (sqlite3.OperationalError("database or disk is full"), Failure.FULL),
        (sqlite3.OperationalError("database is locked"), Failure.TRANSIENT),
        (sqlite3.OperationalError("disk I/O error"), Failure.BROKEN),
        (sqlite3.OperationalError("no such table: trials"), None),  # not an outage
    ],
)
def test_what_each_database_failure_is(orig, kind):
    assert failure_kind(wrapped(orig)) is kind


def test_errors_that_are_not_the_databases_are_not_retried():
    assert failure_kind(KeyError("no study")) is None
    unique = PgError("duplicate key value violates unique constraint", "23505")
    assert failure_kind(wrapped(unique, sa.IntegrityError)) is None


def test_passwords_are_not_shown():
    assert shown_url("postgresql+psycopg://dse:secret@db:5432/results") == (
        "postgresql+psycopg://dse:***@db:5432/results"
    )
    assert shown_url("sqlite:///results/dse.db") == "sqlite:///results/dse.db"
    # a URL that does not parse (its port), or a password with an unescaped @
    for url in (
        "postgresql://pg:s3cretPW@127.0.0.1:abc/dse",
        "postgresql://pg:s3cretPW@[::1:55432/dse",
        "postgresql://pg:p@ssWORD@127.0.0.1/dse",
    ):
        shown = shown_url(url)
        assert shown.startswith("postgresql://pg:***@") and "s3cret" not in shown, shown
        assert "ssWORD" not in shown, shown


def failing(times: int, error: Exception):
    calls = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error
        return "answer"

    return call, calls


def test_an_outage_is_waited_out_with_growing_backoff_and_two_warnings():
    time = FakeTime()
    retrier = Retrier("postgresql://u:pw@h/db", 300, 14, time.clock, time.sleep)
    call, calls = failing(6, wrapped(PgError("connection failed: Connection refused", None)))
    with pytest.warns(DatabaseOutage) as warned:
        assert retrier.call(call) == "answer"
    assert len(calls) == 7
    # only dse's warnings: another test's connection may be collected (a ResourceWarning) here
    messages = [str(w.message) for w in warned if issubclass(w.category, DatabaseOutage)]
    assert messages[0] == (
        "the database postgresql://u:***@h/db is unreachable (connection failed: Connection "
        "refused); retrying for up to 300 s"
    )
    assert messages[1].startswith("the database postgresql://u:***@h/db is back after")
    assert len(messages) == 2
    waits = [sum(time.sleeps[: i + 1]) for i in range(len(time.sleeps))]
    assert waits == sorted(waits) and 0.1 < time.now < 20  # 0.25 s doubling, jittered
    assert retrier.in_grace()  # heartbeats are as old as the outage: no stale check yet
    time.now += 14.01
    assert not retrier.in_grace()


def test_an_outage_past_the_limit_is_one_line_naming_the_database_and_the_limit():
    time = FakeTime()
    retrier = Retrier("postgresql+psycopg://u:pw@h:5/db", 5, 14, time.clock, time.sleep)
    call, _ = failing(10**6, wrapped(PgError("connection failed: Connection refused", None)))
    with pytest.warns(DatabaseOutage), pytest.raises(DatabaseDown) as raised:
        retrier.call(call)
    message = raised.value.cli_message()
    assert message.startswith(
        "--storage postgresql+psycopg://u:***@h:5/db: the database has been unreachable for 5 s, "
        "over --db-outage-limit 5 s (connection failed: Connection refused)"
    )
    assert "\n" not in message and "pw" not in message
    assert 5 <= time.now < 5.01  # the last try at the limit, not later
    assert isinstance(raised.value, StorageError)


def test_a_full_disk_is_one_line_at_once():
    time = FakeTime()
    retrier = Retrier("sqlite:///r/dse.db", 300, 14, time.clock, time.sleep)
    call, calls = failing(1, wrapped(sqlite3.OperationalError("database or disk is full")))
    with pytest.raises(StorageError) as raised:
        retrier.call(call)
    assert len(calls) == 1 and time.sleeps == []
    assert str(raised.value).startswith(
        "storage sqlite:///r/dse.db: the database or its disk is full (database or disk is full)"
    )


def test_a_signal_ends_the_wait():
    time = FakeTime()
    retrier = Retrier("sqlite:///r/dse.db", 300, 14, time.clock, time.sleep)
    retrier.stop = lambda: signal.SIGINT if time.now > 2 else None
    call, _ = failing(10**6, wrapped(sqlite3.OperationalError("database is locked")))
    with pytest.warns(DatabaseOutage), pytest.raises(Interrupted) as raised:
        retrier.call(call)
    assert raised.value.exit_code == 130 and time.now < 3


def test_no_limit_means_no_wait():
    time = FakeTime()
    retrier = Retrier("sqlite:///r/dse.db", 0, 14, time.clock, time.sleep)
    call, calls = failing(1, wrapped(sqlite3.OperationalError("database is locked")))
    with pytest.warns(DatabaseOutage), pytest.raises(DatabaseDown):
        retrier.call(call)
    assert len(calls) == 1
