"""`dse run` end to end on real processes and a real SQLite database (tiny trials)."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from dse.cli import app
from dse.search.pareto import non_dominated
from dse.space import load_space
from tests.conftest import REAL_MNIST, write_idx_dataset

runner = CliRunner()

TINY_SPACE = """
name: {name}
base:
  epochs: {epochs}
  eval_batch_size: 200
  dataset: {{val_size: 100, test_subset: 100}}
  model: {{conv_channels: 8, primary_types: 2, primary_dim: 4, class_dim: 4}}
  batch_schedule: {{batch_size: 50}}
axes:
  model.routing_iterations: [1, 2]
  optimizer.lr: {lrs}
"""


def _write_space(
    folder: Path, name: str = "tiny", epochs: int = 1, lrs: str = "[0.001, 0.003]"
) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(TINY_SPACE.format(name=name, epochs=epochs, lrs=lrs))
    return path


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    write_idx_dataset(tmp_path / "data" / "mnist", n_train=400, n_test=100)
    monkeypatch.setenv("DSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _study(storage: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage)


def test_grid_with_two_workers_fills_the_database(workdir):
    space = _write_space(workdir)
    result = runner.invoke(app, ["run", "--space", str(space), "--workers", "2", "--quiet"])
    assert result.exit_code == 0, result.stderr
    assert Path("results/dse.db").is_file()
    study = _study("sqlite:///results/dse.db", "tiny")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert sorted(tuple(sorted(t.params.items())) for t in trials) == sorted(
        tuple(sorted(load_space(str(space)).encoded(p).items()))
        for p in load_space(str(space)).grid()
    )  # every grid point exactly once
    assert {t.user_attrs["slot"] for t in trials} == {"cpu#0", "cpu#1"}  # both workers ran
    for t in trials:
        config = t.user_attrs["config"]
        assert config["model"]["routing_iterations"] == t.params["model.routing_iterations"]
        assert config["optimizer"]["lr"] == t.params["optimizer.lr"]
        metrics = t.user_attrs["metrics"]
        assert t.values == [metrics["train_time_s"], metrics["val_accuracy"]]
        assert len(t.user_attrs["history"]) == 1 and t.user_attrs["device"] == "cpu"
        assert t.user_attrs["environment"]["threads"] == 1  # 2 cores split over 2 workers
    assert study.metric_names == ["train_time_s", "val_accuracy"]

    # the same command again resumes: nothing is redone
    again = runner.invoke(app, ["run", "--space", str(space), "--workers", "2", "--quiet"])
    assert again.exit_code == 0 and len(_study("sqlite:///results/dse.db", "tiny").trials) == 4


def test_pareto_json_equals_a_non_dominated_sort_of_the_trials_csv(workdir):
    space = _write_space(workdir, lrs="[0.001, 0.003, 0.01]")
    assert (
        runner.invoke(app, ["run", "--space", str(space), "--workers", "2", "--quiet"]).exit_code
        == 0
    )
    front = json.loads(runner.invoke(app, ["pareto", "--format", "json"]).stdout)
    rows = list(
        csv.DictReader(io.StringIO(runner.invoke(app, ["trials", "--format", "csv"]).stdout))
    )
    assert {"number", "state", "train_time_s", "val_accuracy", "params_optimizer.lr"} <= set(
        rows[0]
    )
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    points = [(float(r["train_time_s"]), float(r["val_accuracy"])) for r in complete]
    expected = sorted(
        int(complete[i]["number"]) for i in non_dominated(points, ["minimize", "maximize"])
    )
    assert sorted(row["number"] for row in front) == expected
    assert all(set(row) == {"number", "train_time_s", "val_accuracy", "params"} for row in front)


def test_failing_trial_is_recorded_and_the_study_goes_on(workdir):
    space = _write_space(workdir, lrs="[0.001, 1.0e10]")
    result = runner.invoke(app, ["run", "--space", str(space), "--quiet"])
    assert result.exit_code == 0, result.stderr
    trials = _study("sqlite:///results/dse.db", "tiny").get_trials()
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 2 and all(t.params["optimizer.lr"] == 1e10 for t in failed)
    assert all("non-finite loss at epoch 1, step" in t.user_attrs["error"] for t in failed)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    assert "2 failed" in result.stderr


def test_export_then_train_reproduces_val_accuracy(workdir):
    space = _write_space(workdir)
    assert (
        runner.invoke(app, ["run", "--space", str(space), "--workers", "2", "--quiet"]).exit_code
        == 0
    )
    assert (
        runner.invoke(app, ["export", "--pick", "most-accurate", "--out", "chosen.yaml"]).exit_code
        == 0
    )
    study = _study("sqlite:///results/dse.db", "tiny")
    best = max(study.best_trials, key=lambda t: (t.values[1], -t.number))
    trained = runner.invoke(app, ["train", "--config", "chosen.yaml", "--format", "json"])
    assert trained.exit_code == 0, trained.stderr
    assert (
        json.loads(trained.stdout.splitlines()[-1])["val_accuracy"]
        == best.user_attrs["metrics"]["val_accuracy"]
    )
    knee = runner.invoke(app, ["export", "--pick", "knee"])
    assert knee.exit_code == 0 and "model:" in knee.stdout


def _run_command(space: Path) -> tuple[list[str], dict[str, str]]:
    """`dse run` on 2 CPU workers as a separate process, and its environment."""
    command = [sys.executable, "-m", "dse", "run", "--space", str(space), "--workers", "2", "-q"]
    return command, {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def test_kill_9_of_the_runner_then_the_same_command_completes(workdir):
    """Kill the runner (and so its workers) mid-study; rerun: planned trials, none twice."""
    space = _write_space(workdir, epochs=25, lrs="[0.001, 0.002, 0.003]")
    command, env = _run_command(space)
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    storage = "sqlite:///results/dse.db"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait for one complete trial and two running
        time.sleep(0.5)
        try:
            states = [t.state for t in _study(storage, "tiny").get_trials()]
        except (KeyError, Exception):
            continue
        if states.count(TrialState.COMPLETE) >= 1 and states.count(TrialState.RUNNING) >= 2:
            break
    else:
        first.kill()
        pytest.fail("the first run never had a complete and two running trials")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    killed = _study(storage, "tiny").get_trials()
    assert any(t.state == TrialState.RUNNING for t in killed)

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    trials = _study(storage, "tiny").get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 6  # the planned grid
    assert len({tuple(sorted(t.params.items())) for t in complete}) == 6  # none twice
    assert not any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)
    stale = [t for t in trials if t.state == TrialState.FAIL]
    assert stale and all("error" not in t.user_attrs for t in stale)  # failed by heartbeat


@pytest.mark.slow
@pytest.mark.skipif(not REAL_MNIST.is_dir(), reason="real MNIST not in ../shared/data")
def test_smoke_space_on_real_mnist(tmp_path, monkeypatch):
    """The shipped smoke space, 2 workers, real MNIST: the database holds every grid point."""
    monkeypatch.setenv("DSE_DATA_DIR", str(REAL_MNIST.parent))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(
        app, ["run", "--space", "smoke.yaml", "--workers", "2", "--format", "json"]
    )
    assert result.exit_code == 0, result.stderr
    front = json.loads(result.stdout.splitlines()[-1])
    assert len(front) >= 2 and max(row["val_accuracy"] for row in front) > 0.5
    space = load_space("smoke.yaml")
    trials = _study("sqlite:///results/dse.db", "smoke").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * space.grid_size()
    assert {t.user_attrs["slot"] for t in trials} == {"cpu#0", "cpu#1"}
    for t in trials:
        values = {k: v for k, v in t.params.items()}
        expected = space.config_for(values, name=f"smoke-{t.number}").to_dict()
        assert t.user_attrs["config"] == expected
        assert (
            t.user_attrs["metrics"]["params"] > 0 and t.user_attrs["environment"]["device"] == "cpu"
        )
        assert len(t.user_attrs["history"]) == expected["epochs"]


def _worker_pids(runner_pid: int) -> list[int]:
    """The runner's trial workers: spawned children, not multiprocessing's resource tracker."""
    pids = []
    for child in Path(f"/proc/{runner_pid}/task/{runner_pid}/children").read_text().split():
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"spawn_main" in cmdline:
            pids.append(int(child))
    return pids


def test_a_killed_worker_is_replaced_and_its_trial_retried(workdir):
    space = _write_space(workdir, epochs=30, lrs="[0.001]")
    command, env = _run_command(space)
    run = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    storage = "sqlite:///results/dse.db"
    deadline = time.monotonic() + 120
    victim = None
    while time.monotonic() < deadline and victim is None:
        time.sleep(0.3)
        try:
            running = [
                t for t in _study(storage, "tiny").get_trials() if t.state == TrialState.RUNNING
            ]
        except Exception:
            continue
        if len(running) == 2 and len(_worker_pids(run.pid)) == 2:  # both workers training
            victim = _worker_pids(run.pid)[0]
    assert victim is not None, "no running trial seen"
    os.kill(victim, signal.SIGKILL)
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr
    trials = _study(storage, "tiny").get_trials()
    died = [t for t in trials if "worker died" in t.user_attrs.get("error", "")]
    assert (
        len(died) == 1
        and died[0].user_attrs["retried"]
        and "exit code -9" in died[0].user_attrs["error"]
    )
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(t.params["model.routing_iterations"] for t in complete) == [1, 2]
    retry = next(t for t in complete if t.user_attrs.get("retry_of") is not None)
    assert retry.user_attrs["retry_of"] == died[0].number and retry.params == died[0].params


@pytest.mark.parametrize("sampler", ["random", "nsga2", "tpe", "gp"])
def test_every_sampler_proposes_valid_points(sampler):
    """Past each sampler's random start-up trials, on the space's real parameters (no training)."""
    from dse.search.study import make_sampler

    space = load_space("full.yaml")
    study = optuna.create_study(directions=space.directions, sampler=make_sampler(sampler, 0))
    for i in range(14):
        trial = study.ask()
        values = space.suggest(trial)
        try:
            config = space.config_for(values)
        except Exception:
            study.tell(trial, state=TrialState.FAIL)
            continue
        study.tell(trial, [config.model.routing_iterations + i * 0.1, 1.0 / (1 + i)])
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) >= 8


def test_sampled_study_with_a_budget_and_a_journal_file(workdir):
    (workdir / "s.yaml").write_text(
        TINY_SPACE.format(name="s", epochs=1, lrs="{low: 1.0e-4, high: 1.0e-2, log: true}")
        + "n_trials: 3\n"
    )
    args = ["run", "--space", "s.yaml", "--sampler", "tpe", "--storage", "results/j.log", "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    study = optuna.load_study(
        study_name="s",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend("results/j.log")
        ),
    )
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert all(1e-4 <= t.params["optimizer.lr"] <= 1e-2 for t in study.trials)
    rows = json.loads(
        runner.invoke(app, ["trials", "--storage", "results/j.log", "--format", "json"]).stdout
    )
    assert len(rows) == 3 and all(r["state"] == "COMPLETE" for r in rows)


def test_moasha_stops_trials_at_rungs_and_a_resumed_study_keeps_its_records(workdir):
    """Half a grid, then the rest: every decision reproducible from the records before it."""
    from dse.search.moasha import RungRecord, decide

    space = _write_space(workdir, epochs=3, lrs="[0.0001, 0.001, 0.003]")
    args = ["run", "--space", str(space), "--workers", "2", "--quiet"]
    args += ["--sampler", "grid", "--early-stop", "moasha", "--rungs", "1,2", "--eta", "3"]
    first = runner.invoke(app, [*args, "--n-trials", "3"])
    assert first.exit_code == 0, first.stderr
    storage = "sqlite:///results/dse.db"
    before = {t.number: t.user_attrs["rungs"] for t in _study(storage, "tiny").get_trials()}
    assert len(before) == 3
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.stderr

    study = _study(storage, "tiny")
    trials = study.get_trials()
    assert len(trials) == 6 and {t.state for t in trials} <= {
        TrialState.COMPLETE,
        TrialState.PRUNED,
    }
    assert study.user_attrs["early_stop"] == {"rule": "moasha", "rungs": [1, 2], "eta": 3.0}
    for number, rungs in before.items():  # the first run's records, untouched
        assert trials[number].user_attrs["rungs"] == rungs
    for rung in ("1", "2"):
        at_rung = sorted(
            (t for t in trials if rung in t.user_attrs["rungs"]),
            key=lambda t: t.user_attrs["rungs"][rung]["of"],
        )
        # arrivals counted across both runs: the second run ranked against the first's records
        assert [t.user_attrs["rungs"][rung]["of"] for t in at_rung] == list(
            range(1, len(at_rung) + 1)
        )
        records = [
            RungRecord(t.number, tuple(t.user_attrs["rungs"][rung]["values"])) for t in at_rung
        ]
        for i, t in enumerate(at_rung):
            stored = t.user_attrs["rungs"][rung]
            again = decide(int(rung), records[i], records[:i], study_directions(study), eta=3)
            assert (again.proceed, again.position) == (stored["proceed"], stored["position"])
    assert len([t for t in trials if "1" in t.user_attrs["rungs"]]) == 6

    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned, "no trial stopped at a rung"
    for t in pruned:
        stop = t.user_attrs["stopped_at"]
        assert t.user_attrs["rungs"][str(stop)]["proceed"] is False
        assert len(t.user_attrs["curve"]) == stop == len(t.user_attrs["history"])
        assert len(t.user_attrs["values_at_stop"]) == 2 and t.values is None
    for t in trials:
        if t.state == TrialState.COMPLETE:
            assert all(r["proceed"] for r in t.user_attrs["rungs"].values())
            assert [p["epoch"] for p in t.user_attrs["curve"]] == [1, 2, 3]
    front = runner.invoke(app, ["pareto", "--format", "json"])
    assert front.exit_code == 0 and "hypervolume" in front.stderr
    numbers = {row["number"] for row in json.loads(front.stdout)}
    assert numbers and not numbers & {t.number for t in pruned}
    assert {t.number for t in study.best_trials} == numbers


def study_directions(study: optuna.Study) -> list[str]:
    return [d.name.lower() for d in study.directions]
