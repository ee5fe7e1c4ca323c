"""The results database goes away in the middle of a study and comes back, or fills up.

PostgreSQL is stopped (`pg_ctl stop -m fast`, as for a restart) while two workers train, on a
server of this module's own, and so is MariaDB (SIGTERM, its clean shutdown); the runner
waits, every trial is recorded once. Down longer than
`--db-outage-limit`, the run ends in one line and the same command finishes the study. A server
down as the run starts, or as it ends and reads the front, is waited for (30 s at most; Ctrl-C
ends the wait). A SQLite database
whose disk fills up, or a MariaDB table that fills its server's fixed tablespace, ends the run
in one line, and nothing is half-written.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState
from typer.testing import CliRunner

from dse.cli import app
from dse.search.records import TrialRecord
from dse.search.storage import normalized_url
from dse.space import load_space
from tests.conftest import (
    LONG_TRIAL_EPOCHS,
    dse_command,
    private_server,
    write_idx_dataset,
    write_space,
)
from tests.mysqlserver import MariaDBServer, find_binaries

EPOCHS = LONG_TRIAL_EPOCHS  # each outage below lands while trials train, points left to ask
OUTAGE_S = 12  # longer than the grace period (10 s): heartbeats stop for longer than it
NOBODY = "postgresql+psycopg://dse@127.0.0.1:9/nobody"  # the discard port: nothing listens


def _trials(url: str) -> list[optuna.trial.FrozenTrial]:
    storage = optuna.storages.RDBStorage(
        normalized_url(url), engine_kwargs={"poolclass": sqlalchemy.NullPool}
    )
    return optuna.load_study(study_name="tiny", storage=storage).get_trials()


def _grid(space: Path) -> list[tuple]:
    loaded = load_space(str(space))
    return sorted(tuple(sorted(loaded.encoded(p).items())) for p in loaded.grid())


def _points(trials) -> list[tuple]:
    return sorted(tuple(sorted(t.params.items())) for t in trials)


def _wait_for(
    url: str, ready: Callable[[list], bool], run: subprocess.Popen, timeout: float = 120
) -> None:
    """Polls the study until `ready`; fails saying why when the run ended first or time ran
    out (the states seen last), so a failure on a busy machine can be read."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        time.sleep(0.3)
        try:
            trials = _trials(url)
        except KeyError:  # the study is not created yet
            continue
        if ready(trials):
            return
        seen = [f"{t.number}:{t.state.name}" for t in trials]
        if run.poll() is not None:
            _, stderr = run.communicate()
            pytest.fail(f"dse run ended (exit {run.returncode}) first; trials {seen}; {stderr}")
    pytest.fail(f"the study never got there; trials seen last: {seen}")


def _complete(trials) -> list:
    return [t for t in trials if t.state == TrialState.COMPLETE]


def _training(trials) -> list:
    return [t for t in trials if t.state == TrialState.RUNNING and "config" in t.user_attrs]


@pytest.fixture
def start_run():
    """Starts `dse run ... -q` processes; kills those still running at the end."""
    started: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        command, env = dse_command("run", *args, "-q")
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def _restart_mid_study(server, url: str, run: subprocess.Popen) -> tuple[datetime, str]:
    """Once a trial is complete and two are training, stop the server for OUTAGE_S and start
    it again; returns when it came back and what the run wrote on stderr."""
    _wait_for(url, lambda t: len(_complete(t)) >= 1 and len(_training(t)) == 2, run)
    server.pause()
    time.sleep(OUTAGE_S)
    server.resume()
    back = datetime.now()
    _, stderr = run.communicate(timeout=180)
    assert run.returncode == 0, stderr
    return back, stderr


def _assert_each_point_complete_once(url: str, space: Path, back: datetime) -> None:
    trials = _trials(url)
    assert [t.number for t in trials] == list(range(len(_grid(space))))  # none lost, no extra
    assert [t.state for t in trials] == [TrialState.COMPLETE] * len(trials)
    assert _points(trials) == _grid(space)  # each point exactly once
    finished = sorted(t.datetime_complete for t in trials)
    assert finished[0] < back < finished[-1]  # the outage landed mid-study


@pytest.mark.parametrize("server_fixture", ["restartable_postgres", "restartable_mariadb"])
def test_a_server_restart_mid_study_loses_no_trial_and_doubles_none(
    workdir, server_fixture, request, start_run
):
    server = request.getfixturevalue(server_fixture)
    url = server.create_database("restart_local")
    space = write_space(workdir, epochs=EPOCHS, lrs="[0.001, 0.002, 0.003]")  # 6 points
    run = start_run("--space", str(space), "--storage", url, "--workers", "2")
    back, stderr = _restart_mid_study(server, url, run)
    _assert_each_point_complete_once(url, space, back)
    assert "is unreachable (" in stderr and "is back after" in stderr, stderr


@pytest.fixture(scope="module")
def cluster():
    """Two Dask worker processes with one thread each."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        env={"DSE_OFFLINE": "1"},
    )
    yield cluster
    cluster.close()


def test_a_postgresql_restart_mid_study_on_dask_loses_no_trial_and_doubles_none(
    tmp_path, cluster, restartable_postgres, start_run
):
    write_idx_dataset(tmp_path / "data" / "mnist", n_train=400, n_test=100)
    url = restartable_postgres.create_database("restart_dask")
    space = write_space(tmp_path, epochs=EPOCHS, lrs="[0.001, 0.002, 0.003]")
    run = start_run(
        *("--space", str(space), "--storage", url, "--data-dir", str(tmp_path / "data")),
        *("--backend", "dask", "--scheduler", cluster.scheduler_address),
        *("--checkpoint-dir", str(tmp_path / "checkpoints")),  # not the workers' own folder
    )
    back, stderr = _restart_mid_study(restartable_postgres, url, run)
    _assert_each_point_complete_once(url, space, back)
    assert "is unreachable (" in stderr and "is back after" in stderr, stderr


def test_a_database_down_past_the_limit_ends_the_run_in_one_line_and_the_study_resumes(
    workdir, restartable_postgres, start_run
):
    server = restartable_postgres
    plain = server.create_database("past_limit")
    url = plain.replace("postgres@", "postgres:secret@")  # trust: the password is not checked
    space = write_space(workdir, epochs=EPOCHS, lrs="[0.001, 0.002]")  # 4 points
    args = ["--space", str(space), "--storage", url, "--workers", "2", "--db-outage-limit", "5"]
    run = start_run(*args)
    _wait_for(url, lambda t: len(_complete(t)) >= 1 and len(_training(t)) >= 1, run)
    server.pause()
    stopped = time.monotonic()
    try:
        _, stderr = run.communicate(timeout=60)
        ended_s = time.monotonic() - stopped
    finally:
        server.resume()
    assert run.returncode == 2, stderr
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert errors == [lines[-1]]  # one line, the last
    shown = url.replace(":secret@", ":***@")
    assert errors[0].startswith(
        f"error: --storage {shown}: the database has been unreachable for 5 s, over "
        "--db-outage-limit 5 s ("
    ), errors[0]
    assert errors[0].endswith("run the same command again once the database is back")
    assert "secret" not in stderr
    assert 5 <= ended_s < 20, ended_s
    complete_before = {t.number: t.values for t in _complete(_trials(url))}

    again = start_run(*args)  # the same command, the database back
    _, stderr = again.communicate(timeout=180)
    assert again.returncode == 0, stderr
    trials = _trials(url)
    complete = _complete(trials)
    assert _points(complete) == _grid(space)  # every point, once
    assert {t.number: t.values for t in complete if t.number in complete_before} == (
        complete_before
    )
    left = [t for t in trials if t.state != TrialState.COMPLETE]
    assert all(
        t.state == TrialState.FAIL and TrialRecord(t).error.startswith("stale") for t in left
    )
    assert {TrialRecord(t).point_key() for t in left} <= {
        TrialRecord(t).point_key() for t in complete
    }  # the trials the outage stopped were run again


def test_a_database_restarting_as_the_run_ends_is_waited_for_to_show_the_front(
    workdir, restartable_postgres, monkeypatch
):
    """Every trial is stored, then the server restarts before the front is read (what ended a
    run in "cannot open the database" once): the front is read once it is back."""
    from dse.commands import exploring
    from dse.search.options import RunOptions
    from dse.search.outage import DatabaseOutage

    server = restartable_postgres
    url = server.create_database("ending")
    space = write_space(workdir, epochs=1, lrs="[0.001]")  # 2 points
    real_run_study = exploring.run_study
    resumed = threading.Timer(3, server.resume)

    def run_then_restart(*args, **kwargs):
        summary = real_run_study(*args, **kwargs)
        server.pause()  # down as the run ends, back 3 s later
        resumed.start()
        return summary

    monkeypatch.setattr(exploring, "run_study", run_then_restart)
    started = time.monotonic()
    try:
        with pytest.warns(DatabaseOutage, match=r"is unreachable \(.*retrying for up to 30 s"):
            shown = exploring.run(str(space), RunOptions(storage=url, gpus="cpu"), live=False)
    finally:
        resumed.join()
    assert shown.preface[0].startswith("study tiny: 2 complete, 0 failed of 2 planned")
    (front,) = shown.tables
    assert 1 <= len(front.rows) <= 2
    assert time.monotonic() - started >= 3


def test_a_database_restarting_as_the_run_starts_is_waited_for(
    workdir, restartable_postgres, start_run
):
    url = restartable_postgres.create_database("starting")
    space = write_space(workdir, epochs=1, lrs="[0.001]")  # 2 points
    restartable_postgres.pause()
    try:
        run = start_run("--space", str(space), "--storage", url)
        warning = run.stderr.readline()  # the run is up and finds no server (or gives up)
        time.sleep(2)
    finally:
        restartable_postgres.resume()
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 0, warning + stderr
    assert "is unreachable (" in warning and "retrying for up to 30 s" in warning, warning
    assert _points(_complete(_trials(url))) == _grid(space)


def test_a_database_nobody_serves_is_one_line_after_a_short_wait(workdir, start_run):
    space = write_space(workdir, epochs=1, lrs="[0.001]")
    url = NOBODY
    started = time.monotonic()
    run = start_run("--space", str(space), "--storage", url, "--db-outage-limit", "2")
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 2, stderr
    assert 2 <= time.monotonic() - started < 30
    lines = stderr.strip().splitlines()
    assert "retrying for up to 2 s" in lines[0], lines
    assert lines[-1].startswith(f"error: --storage {url}: cannot open the database: "), lines
    assert [line for line in lines if line.startswith("error:")] == [lines[-1]]
    assert not (workdir / "results").exists()  # nothing written


def test_ctrl_c_while_waiting_for_the_database_ends_the_run_at_once(workdir):
    space = write_space(workdir, epochs=1, lrs="[0.001]")
    url = NOBODY
    command, env = dse_command("run", "--space", str(space), "--storage", url, "-q")
    run = subprocess.Popen(
        command, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        warning = run.stderr.readline()  # waiting now (up to 30 s)
        os.killpg(run.pid, signal.SIGINT)
        sent = time.monotonic()
        _, stderr = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
    assert "retrying for up to 30 s" in warning, warning
    assert run.returncode == 130, stderr
    assert time.monotonic() - sent < 5
    assert stderr.strip().splitlines() == [
        f"interrupted while waiting for the database {url} to answer; nothing was started"
    ]
    assert not (workdir / "results").exists()


class DiskFull:
    """SQLite's max_page_count on every connection the run checks out, once `full` is set:
    the database cannot grow past its size then ("database or disk is full"), as on a full
    disk, without one."""

    def __init__(self) -> None:
        self.full = False

    def __call__(self, dbapi_connection, _record, _proxy) -> None:
        if self.full and isinstance(dbapi_connection, sqlite3.Connection):
            pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
            dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")


def test_a_full_sqlite_disk_ends_the_run_in_one_line_and_nothing_is_half_written(workdir):
    space = write_space(workdir, epochs=EPOCHS, lrs="[0.001, 0.002]")
    database = workdir / "results" / "dse.db"
    args = ["run", "--space", str(space), "--workers", "2", "--quiet"]
    disk = DiskFull()

    def fill_after_the_first_trial() -> None:
        while not disk.full:
            time.sleep(0.3)
            if database.exists():
                with sqlite3.connect(database) as db:
                    done = db.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'")
                    disk.full = done.fetchone()[0] >= 1

    watcher = threading.Thread(target=fill_after_the_first_trial, daemon=True)
    sqlalchemy.event.listen(sqlalchemy.pool.Pool, "checkout", disk)
    try:
        watcher.start()
        result = CliRunner().invoke(app, args)
    finally:
        sqlalchemy.event.remove(sqlalchemy.pool.Pool, "checkout", disk)
        disk.full = True  # the watcher stops
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("error:")] == [lines[-1]]
    assert lines[-1].startswith(
        "error: --storage sqlite:///results/dse.db: the database or its disk is full "
        "(database or disk is full); the trials recorded so far are kept"
    )

    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    trials = optuna.load_study(study_name="tiny", storage="sqlite:///results/dse.db").trials
    complete = _complete(trials)
    assert complete and all(t.values and TrialRecord(t).metrics for t in complete)
    assert all(
        t.state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING) for t in trials
    )  # the trials in flight were not told half a result
    before = {t.number: (t.values, TrialRecord(t).metrics) for t in complete}

    result = CliRunner().invoke(app, args)  # space again: the same command finishes the study
    assert result.exit_code == 0, result.stderr
    trials = optuna.load_study(study_name="tiny", storage="sqlite:///results/dse.db").trials
    complete = _complete(trials)
    assert _points(complete) == _grid(space)
    assert {n: v for n, v in before.items()} == {
        t.number: (t.values, TrialRecord(t).metrics) for t in complete if t.number in before
    }


# A fixed tablespace of 12 MB, every table in it: it fills after a few hundred tiny trials.
SMALL_TABLESPACE = (
    "--innodb-data-file-path=ibdata1:12M",
    "--innodb-file-per-table=0",
    "--innodb-undo-tablespaces=0",
)


def test_a_full_mariadb_table_ends_the_run_in_one_line_and_keeps_the_trials_recorded(workdir):
    """MySQL's "table is full" (1114) and "disk full" (1021) carry no SQLSTATE of their own:
    before, the run ended in a traceback (StorageInternalError)."""
    server_class = partial(MariaDBServer, options=SMALL_TABLESPACE)
    with private_server(server_class, find_binaries(), "mariadb-server") as server:
        url = server.create_database("full")
        command, env = dse_command(
            "run", "--space", "overhead.yaml", "--n-trials", "100000", "--workers", "2",
            "--storage", url, "-q",
        )  # fmt: skip
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 2, result.stderr[-3000:]
        lines = result.stderr.strip().splitlines()
        assert "Traceback" not in result.stderr
        assert [line for line in lines if line.startswith("error:")] == [lines[-1]]
        assert lines[-1].startswith(
            f"error: --storage {url}: the database or its disk is full ((1114, \"The table '"
        ), lines[-1]
        assert lines[-1].endswith("free some space and run the same command again")
        trials = optuna.load_study(study_name="overhead", storage=normalized_url(url)).trials
        complete = _complete(trials)
        assert complete and all(t.values and TrialRecord(t).metrics for t in complete)
        assert all(
            t.state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING) for t in trials
        )  # the trials in flight were not told half a result
