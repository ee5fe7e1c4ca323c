"""One study in a database server, PostgreSQL or MariaDB: every command on it, runners
sharing it, heartbeats, set-up races.

A private server of each kind per session (tests/pgserver.py, tests/mysqlserver.py), a fresh
database per test, real `dse run` processes training tiny models on synthetic digits.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from dse.cli import app
from dse.search.records import TrialRecord
from dse.search.storage import normalized_url
from dse.space import load_space
from tests.conftest import LONG_TRIAL_EPOCHS, database_name, dse_command, write_space

runner = CliRunner()


def _trials(url: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="tiny", storage=normalized_url(url)).get_trials()


def _points(trials) -> list[tuple]:
    return sorted(tuple(sorted(t.params.items())) for t in trials)


def _grid(space: Path) -> list[tuple]:
    loaded = load_space(str(space))
    return sorted(tuple(sorted(loaded.encoded(p).items())) for p in loaded.grid())


@pytest.fixture(params=["postgres", "mariadb"])
def server_url(request) -> str:
    """A fresh database on the session's PostgreSQL server, then on its MariaDB server."""
    server = request.getfixturevalue(f"{request.param}_server")  # postgres_server, ...
    return server.create_database(database_name(request))


@pytest.fixture
def start_runner():
    """Starts `dse run` processes (1 worker each); kills those still running at the end."""
    started: list[subprocess.Popen] = []

    def start(space: Path, url: str) -> subprocess.Popen:
        command, env = dse_command(
            "run", "--space", str(space), "--storage", url, "--workers", "1", "-q"
        )
        process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_every_command_on_a_server_study(workdir, server_url):
    space = write_space(workdir)
    result = runner.invoke(
        app, ["run", "--space", str(space), "--storage", server_url, "--workers", "2", "--quiet"]
    )
    assert result.exit_code == 0, result.stderr
    trials = _trials(server_url)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert _points(trials) == _grid(space)
    assert not (workdir / "results").exists()  # nothing local: the results are on the server

    # the same database by another name of its scheme: postgresql:// and mariadb://
    other = server_url.replace("postgresql+psycopg://", "postgresql://")
    other = other.replace("mysql://", "mariadb://")
    assert other != server_url
    rows = json.loads(runner.invoke(app, ["trials", "--storage", other, "-f", "json"]).stdout)
    assert sorted(r["number"] for r in rows) == [0, 1, 2, 3]
    assert all(r["state"] == "COMPLETE" and r["val_accuracy"] is not None for r in rows)
    front = json.loads(runner.invoke(app, ["pareto", "--storage", server_url, "-f", "json"]).stdout)
    stored = optuna.load_study(study_name="tiny", storage=normalized_url(server_url))
    assert {r["number"] for r in front} == {t.number for t in stored.best_trials}
    studies = json.loads(
        runner.invoke(app, ["studies", "--storage", server_url, "-f", "json"]).stdout
    )
    assert [s["study"] for s in studies] == ["tiny"]
    exported = runner.invoke(app, ["export", "--storage", server_url, "--pick", "knee"])
    assert exported.exit_code == 0 and "routing_iterations" in exported.stdout


def test_a_missing_study_and_an_unreachable_server_are_one_line_errors(pg_url):
    missing = runner.invoke(app, ["trials", "--storage", pg_url, "--study", "nope"])
    assert missing.exit_code == 2
    unreachable = runner.invoke(
        app, ["trials", "--storage", "postgresql://nobody@127.0.0.1:1/none"]
    )
    assert unreachable.exit_code == 2
    line = unreachable.stderr.strip()
    assert line.startswith("error: --storage postgresql://nobody@127.0.0.1:1/none: cannot open")
    assert len(line.splitlines()) == 1


@pytest.mark.parametrize(
    "command", [["studies"], ["trials"], ["pareto"], ["export", "--pick", "knee"]]
)
def test_reading_a_db_without_dse_tables(server_url, command):
    """A database `dse run` never wrote to: one line naming it (its password masked), exit 2,
    and no table made in it (optuna's own words were `relation "version_info" does not
    exist`)."""
    import sqlalchemy

    # PostgreSQL's server trusts any password; MariaDB's root has none
    url = server_url.replace("postgres@", "postgres:secret@")
    result = runner.invoke(app, [*command, "--storage", url])
    assert result.exit_code == 2 and not result.stdout
    shown = url.replace(":secret@", ":***@")
    assert result.stderr == (
        f"error: --storage {shown}: not a results database (no dse studies, none of optuna's "
        "tables; `dse run` makes them)\n"
    )
    engine = sqlalchemy.create_engine(normalized_url(server_url))
    assert sqlalchemy.inspect(engine).get_table_names() == []
    engine.dispose()


SETUP = textwrap.dedent(
    """
    import sys, time
    from dse.search.locks import setup_lock
    from dse.search.storage import open_storage
    from dse.search.study import create_study, enqueue_missing, make_sampler
    from dse.space import load_space

    space, url, start_at = load_space(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    time.sleep(max(0.0, start_at - time.time()))  # every process starts at the same instant
    with setup_lock(url):
        study = create_study(open_storage(url, create=True), "tiny", space, make_sampler("grid", 0))
        enqueue_missing(study, space, space.grid(), origin="grid")
    """
)


def test_runners_setting_up_at_the_same_instant_queue_each_point_once(tmp_path, server_url):
    """Six processes create the study and queue its grid at once: one study, each point once.
    (On MariaDB without the set-up lock: the 8 points queued 37 times, one process crashed
    creating a table another had just made.)"""
    space = write_space(tmp_path, lrs="[0.001, 0.002, 0.003, 0.004]")
    start_at = str(time.time() + 4)  # past every process's imports
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", SETUP, str(space), server_url, start_at],
            env=dse_command()[1],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
    trials = _trials(server_url)
    assert [t.state for t in trials] == [TrialState.WAITING] * 8
    assert sorted(tuple(sorted(t.user_attrs["point"].items())) for t in trials) == _grid(space)


def test_two_runners_on_one_study_finish_the_grid_once(workdir, server_url, start_runner):
    space = write_space(workdir, lrs="[0.001, 0.002, 0.003]")
    first, second = start_runner(space, server_url), start_runner(space, server_url)
    outputs = [p.communicate(timeout=600)[1] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    trials = _trials(server_url)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6  # none lost, none extra
    assert _points(trials) == _grid(space)  # each point once
    finished_by = [sum(" complete: " in line for line in out.splitlines()) for out in outputs]
    assert sum(finished_by) == 6 and min(finished_by) >= 1, finished_by  # both took part


def test_a_killed_runner_trial_goes_stale_and_the_other_runner_retries_it(
    workdir, server_url, start_runner
):
    """kill -9 one of two runners mid-trial: heartbeats stop, the survivor finishes the grid."""
    space = write_space(workdir, epochs=LONG_TRIAL_EPOCHS, lrs="[0.001, 0.002]")
    survivor, victim = start_runner(space, server_url), start_runner(space, server_url)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.3)
        try:
            trials = _trials(server_url)
        except KeyError:  # the study is not created yet
            continue
        training = [t for t in trials if t.state == TrialState.RUNNING and "config" in t.user_attrs]
        if len(training) == 2:  # each runner is training one
            break
    else:
        pytest.fail("never saw both runners training")
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    _, stderr = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, stderr
    trials = _trials(server_url)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert _points(complete) == _grid(space)  # every point, once
    stale = [t for t in trials if t.state == TrialState.FAIL]
    assert len(stale) == 1  # failed by its heartbeat, and says so, with how long it ran
    assert stale[0].user_attrs["error"].startswith("stale: no heartbeat for")
    marked = (stale[0].datetime_complete - stale[0].datetime_start).total_seconds()
    assert 0 <= stale[0].user_attrs["ran_s"] <= marked - 5, (stale[0].user_attrs, marked)
    assert not any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)
    assert TrialRecord(stale[0]).point_key() in {
        TrialRecord(t).point_key() for t in complete
    }  # its point was retried


@pytest.mark.parametrize(
    ("url", "driver", "expected"),
    [
        (
            "postgresql://dse@127.0.0.1:1/dse",
            "psycopg",
            "PostgreSQL needs the psycopg driver: pip install 'dse[postgres]'",
        ),
        (
            "mariadb://dse@127.0.0.1:1/dse",
            "pymysql",
            "MySQL and MariaDB need the PyMySQL driver: pip install 'dse[mysql]'",
        ),
    ],
)
def test_a_missing_server_extra_is_one_line_naming_it(url, driver, expected):
    code = (
        f"import sys; sys.modules[{driver!r}] = None; from dse.cli import main; "
        f"sys.argv = ['dse', 'trials', '--storage', {url!r}]; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=dse_command()[1],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr == f"error: --storage {url}: {expected}\n"


def test_a_long_trials_history_fits_in_mysql(workdir, mariadb_server, request):
    """optuna keeps attribute values in TEXT columns, 64 KB on MySQL: a history of 300 epochs
    (82 KB) ended the run in "Data too long for column 'value_json'". dse widens them."""
    import sqlalchemy

    url = mariadb_server.create_database(database_name(request))
    overhead = (Path(__file__).parents[2] / "dse" / "search_spaces" / "overhead.yaml").read_text()
    (workdir / "long.yaml").write_text(
        overhead.replace("epochs: 1\n", "epochs: 300\n").replace("name: overhead", "name: tiny")
    )
    args = ["run", "--space", "long.yaml", "--n-trials", "1", "--storage", url, "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    (trial,) = _trials(url)
    assert trial.state == TrialState.COMPLETE and len(TrialRecord(trial).history) == 300
    engine = sqlalchemy.create_engine(normalized_url(url))
    with engine.connect() as connection:
        types = connection.execute(
            sqlalchemy.text(
                "SELECT data_type FROM information_schema.columns WHERE "
                "table_schema = DATABASE() AND column_name = 'value_json'"
            )
        ).scalars()
        assert sorted(types) == ["mediumtext"] * 4
    engine.dispose()
