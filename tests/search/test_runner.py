"""`dse run` end to end on real processes and a real SQLite database (tiny trials)."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from dse.cli import app
from dse.search.devices import cpu_count
from dse.search.pareto import non_dominated
from dse.space import load_space
from tests.conftest import REAL_MNIST, TINY_SPACE, load_study, write_space

runner = CliRunner()


def test_grid_with_two_workers_fills_the_database(workdir):
    space = write_space(workdir)
    cpu = ["--gpus", "cpu", "--workers", "2"]  # CPU workers splitting the cores, GPUs or not
    result = runner.invoke(app, ["run", "--space", str(space), *cpu, "--quiet"])
    assert result.exit_code == 0, result.stderr
    assert Path("results/dse.db").is_file()
    study = load_study("sqlite:///results/dse.db", "tiny")
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
        assert t.user_attrs["environment"]["threads"] == max(1, cpu_count() // 2)  # split
    assert study.metric_names == ["train_time_s", "val_accuracy"]

    # the same command again resumes: nothing is redone
    again = runner.invoke(app, ["run", "--space", str(space), *cpu, "--quiet"])
    assert again.exit_code == 0 and len(load_study("sqlite:///results/dse.db", "tiny").trials) == 4


def test_pareto_json_equals_a_non_dominated_sort_of_the_trials_csv(workdir):
    space = write_space(workdir, lrs="[0.001, 0.003, 0.01]")
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
    trials = load_study("sqlite:///results/dse.db", "smoke").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * space.grid_size()
    assert {t.user_attrs["slot"] for t in trials} == {"cpu#0", "cpu#1"}
    for t in trials:
        values = {k: v for k, v in t.params.items()}
        expected = space.config_for(values, name=f"smoke-{t.number}").to_dict()
        assert t.user_attrs["config"] == expected
        assert (
            t.user_attrs["metrics"]["n_params"] > 0
            and t.user_attrs["environment"]["device"] == "cpu"
        )
        assert len(t.user_attrs["history"]) == expected["epochs"]


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


def test_a_small_budget_lets_tpe_and_nsga2_leave_random_search():
    """Optuna's defaults start TPE with 10 random trials and NSGA-II with a random population
    of 50: 8 trials of either are random's 8 points. A known budget shortens the start."""
    from dse.search.study import make_sampler

    space = load_space("efficiency.yaml")

    def points(sampler: optuna.samplers.BaseSampler) -> list[dict]:
        study = optuna.create_study(directions=space.directions, sampler=sampler)
        for _ in range(8):
            trial = study.ask()
            values = space.suggest(trial)
            cost = 1000 / values["batch_schedule.batch_size"] + values["model.conv_channels"]
            study.tell(trial, [cost, 1 - abs(values["optimizer.lr"] - 0.001)])
        return [t.params for t in study.trials]

    random = points(make_sampler("random", 0, budget=8))
    assert points(make_sampler("tpe", 0)) == random
    assert points(make_sampler("nsga2", 0)) == random
    for name in ("tpe", "nsga2"):
        chosen = points(make_sampler(name, 0, budget=8))
        assert chosen[:2] == random[:2] and chosen != random, name


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


def test_a_run_joining_a_study_proposes_new_points_and_the_first_keeps_its_seed(workdir):
    """Two runs of one sampled study with the same --seed proposed the same points (a second
    runner beside the first, or the same command again, trained them twice). Each run after a
    study's first samples with a seed of its own; the first run's points are the seed's."""
    from dse.search.study import make_sampler

    write_space(workdir, name="c", lrs="{low: 1.0e-4, high: 1.0e-2, log: true}")
    args = ["run", "--space", "c.yaml", "--sampler", "random", "--seed", "3", "-q"]
    for budget in ("2", "4"):  # the second run adds 2 trials to the study's 2
        result = runner.invoke(app, [*args, "--n-trials", budget])
        assert result.exit_code == 0, result.stderr
    trials = load_study("sqlite:///results/dse.db", "c").get_trials()
    points = [tuple(sorted(t.params.items())) for t in trials]
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4 and len(set(points)) == 4

    space = load_space("c.yaml")  # the points --seed 3 alone proposes, as before runs joined
    alone = optuna.create_study(directions=space.directions, sampler=make_sampler("random", 3))
    for _ in range(2):
        trial = alone.ask()
        space.suggest(trial)
        alone.tell(trial, [1.0, 1.0])
    assert points[:2] == [tuple(sorted(t.params.items())) for t in alone.trials]


def test_moasha_stops_trials_at_rungs_and_a_resumed_study_keeps_its_records(workdir):
    """Half a grid, then the rest: the second run ranks against the first run's trials, and
    every stored decision is the rule's (a trial goes on where its position is within the
    cutoff). Which position it had depends on every curve as it stood then (moasha.py); the
    replay's fidelity test (test_replay.py) reproduces each decision from them."""
    space = write_space(workdir, epochs=3, lrs="[0.0001, 0.001, 0.003]")
    args = ["run", "--space", str(space), "--workers", "2", "--quiet"]
    # eta 10: a rung keeps floor(n/10) + 1 = one of up to 9 arrivals, so some trial is
    # stopped whatever the live times (with eta 3 and a time objective, a worse trial that
    # happened to run faster was on the front, and on a fast CPU none was stopped)
    args += ["--sampler", "grid", "--early-stop", "moasha", "--rungs", "1,2", "--eta", "10"]
    first = runner.invoke(app, [*args, "--n-trials", "3"])
    assert first.exit_code == 0, first.stderr
    storage = "sqlite:///results/dse.db"
    before = {t.number: t.user_attrs["rungs"] for t in load_study(storage, "tiny").get_trials()}
    assert len(before) == 3
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.stderr

    study = load_study(storage, "tiny")
    trials = study.get_trials()
    assert len(trials) == 6 and {t.state for t in trials} <= {
        TrialState.COMPLETE,
        TrialState.PRUNED,
    }
    assert study.user_attrs["early_stop"] == {"rule": "moasha", "rungs": [1, 2], "eta": 10.0}
    for number, rungs in before.items():  # the first run's records, untouched
        assert trials[number].user_attrs["rungs"] == rungs
    for rung in ("1", "2"):
        at_rung = sorted(
            (t for t in trials if rung in t.user_attrs["rungs"]),
            key=lambda t: t.user_attrs["rungs"][rung]["of"],
        )
        # each decision counted every trial that had reached the rung: those before it, and
        # with 2 workers one that reached it meanwhile and waits for its own decision
        counts = [t.user_attrs["rungs"][rung]["of"] for t in at_rung]
        assert all(of >= i for i, of in enumerate(counts, 1)) and counts[-1] == len(at_rung)
        # the second run ranked against the first run's trials
        first_run = sum(1 for t in at_rung if t.number in before)
        second = [t.user_attrs["rungs"][rung]["of"] for t in at_rung if t.number not in before]
        assert all(of > first_run for of in second) and (second or rung != "1")
        for t in at_rung:
            stored = t.user_attrs["rungs"][rung]
            assert stored["cutoff"] == stored["of"] // 10 + 1
            assert stored["proceed"] == (stored["position"] <= stored["cutoff"])
            assert 1 <= stored["position"] <= stored["of"]
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


@pytest.mark.parametrize(
    ("base", "axes", "message"),
    [
        (
            "{val_size: 100, train_subset: 100000000}",
            "",
            "tiny.yaml: base: dataset.train_subset: 100000000 is more than the 300 samples after "
            "dataset.val_size",
        ),
        (
            "{val_size: 400}",
            "",
            "tiny.yaml: base: dataset.val_size: 400 leaves no training data (400 training",
        ),
        (
            "{val_size: 100}",
            "  dataset.test_subset: {low: 10, high: 500}\n",
            "tiny.yaml: axes.dataset.test_subset = 500: dataset.test_subset: 500 is more than the "
            "100 samples in",
        ),
    ],
)
def test_subsets_larger_than_the_data_are_refused_before_the_run(workdir, base, axes, message):
    """The data (400 training, 100 test images) is read before anything is written: a subset
    it cannot give would fail every trial, or every trial that draws it."""
    space = TINY_SPACE.format(name="tiny", epochs=1, lrs="[0.001]")
    space = space.replace("dataset: {val_size: 100, test_subset: 100}", f"dataset: {base}")
    (workdir / "tiny.yaml").write_text(space + axes)
    result = runner.invoke(app, ["run", "--space", "tiny.yaml", "--quiet"])
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (workdir / "results").exists()


def test_a_space_of_no_axes_runs_its_base_once_and_says_so(workdir, recwarn):
    """`axes: {}`: one trial of the base config, and a warning line that says why; `axes:`
    left empty is one error line, and nothing is written."""
    space = TINY_SPACE.format(name="one", epochs=1, lrs="[0.001]")
    space = space.split("axes:")[0]
    (workdir / "null.yaml").write_text(space + "axes:\n")
    refused = runner.invoke(app, ["run", "--space", "null.yaml", "--quiet"])
    assert refused.exit_code == 2, refused.stderr
    assert refused.stderr.strip().splitlines() == [
        "error: null.yaml: axes: expected a mapping of keys to values (KEY: [choices]), got "
        "nothing (null); a space of its base config alone: axes: {} (or no axes key)"
    ]
    assert not (workdir / "results").exists()
    (workdir / "one.yaml").write_text(space + "axes: {}\n")
    args = ["run", "--space", "one.yaml", "--quiet", "--n-trials", "3", "--format", "json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    note = "one.yaml: axes: none given, so the space is one point (its base config): one trial"
    assert [str(w.message) for w in recwarn if "axes" in str(w.message)] == [note]
    assert "study one: 1 complete, 0 failed of 1 planned" in result.stderr
    assert [row["number"] for row in json.loads(result.stdout)] == [0]


def test_the_quiet_line_shows_the_study_s_objectives_and_a_failed_constraint(workdir):
    """A study minimizing n_params and peak_mem_mb: each finished trial's line shows them,
    not val_accuracy and train_time_s, and says the trial fails the constraint."""
    text = TINY_SPACE.format(name="small", epochs=1, lrs="[0.001]")
    text += "objectives: {n_params: minimize, peak_mem_mb: minimize}\n"
    text += "constraints: ['n_params <= 10']\n"
    space = workdir / "small.yaml"
    space.write_text(text)
    result = runner.invoke(app, ["run", "--space", str(space), "--gpus", "cpu", "--quiet"])
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if " complete: " in line]
    assert len(lines) == 2, result.stderr
    for line in lines:
        assert re.search(r"complete: n_params [\d,]+, peak_mem_mb [\d.]+ on cpu#0", line), line
        assert "infeasible (n_params <= 10 fails)" in line and "val_accuracy" not in line
