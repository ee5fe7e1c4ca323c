"""Tables a person can read: `dse trials` keeps the telling columns that fit the terminal
(`--columns` picks them, in csv and json too; without it those have every one), and the
columns it shares with `dse pareto` in one order; it shows the std of each objective with
repeats and why a trial failed; an empty study or front is a sentence; `dse export` says which
trial it took. One name per meaning: `n_params` counts the model's parameters, `params` are a
trial's hyperparameters."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import warnings
from contextlib import closing
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from dse.cli import app
from dse.search.records import METRICS_KEY, PER_SEED, SEED_STD, TrialRecord
from dse.search.unvisited import repeat_error
from tests.conftest import write_space

FIXTURES = Path(__file__).parents[1] / "fixtures"


def _dse(*args: str, columns: int = 200):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": str(columns)})


@pytest.fixture
def old_db(workdir: Path) -> str:
    """A study with finished, stopped and failed trials (see tests/test_old_layout.py)."""
    with closing(sqlite3.connect(workdir / "old.db")) as db:
        db.executescript((FIXTURES / "old_layout.sql").read_text())
    return "sqlite:///old.db"


def _header(table: str) -> list[str]:
    line = next(line for line in table.splitlines() if "number" in line)
    return [cell.strip() for cell in line.strip("┃│ ").replace("┃", "│").split("│")]


def test_a_narrow_terminal_gets_the_telling_columns_and_hears_of_the_rest(old_db):
    result = _dse("trials", "--storage", old_db, "--study", "legacy-grid", columns=100)
    assert result.exit_code == 0, result.stderr
    assert max(len(line) for line in result.stdout.splitlines()) <= 100
    header = _header(result.stdout)
    assert header[:4] == ["number", "state", "train_time_s", "val_accuracy"]
    assert "error" in header  # a trial failed: why is worth a column
    assert "out of memory" in result.stdout
    (line,) = result.stderr.splitlines()
    count, _, rest = line.partition(" more columns: ")
    left_out = rest.removesuffix("; pick with --columns; csv and json have all").split(", ")
    assert int(count) == len(left_out) and {"host", "test_accuracy"} <= set(left_out)
    assert not set(left_out) & set(header)

    wide = _dse("trials", "--storage", old_db, "--study", "legacy-grid", columns=400)
    assert wide.stderr == "" and "params_model.routing_iterations" in _header(wide.stdout)
    assert "feasible" not in _header(wide.stdout)  # no constraints: always true


def test_columns_picks_the_table_and_names_parameters_without_their_prefix(old_db):
    args = ["trials", "--storage", old_db, "--study", "legacy-grid"]
    result = _dse(*args, "--columns", "number,model.routing_iterations,n_params,error")
    assert result.exit_code == 0, result.stderr
    assert _header(result.stdout) == [
        "number",
        "params_model.routing_iterations",
        "n_params",
        "error",
    ]
    typo = _dse(*args, "--columns", "number,val_acuracy")
    assert typo.exit_code == 2 and typo.stdout == ""
    assert typo.stderr.startswith("error: --columns val_acuracy: choose from number, state,")
    assert typo.stderr.endswith("(did you mean val_accuracy?)\n")
    every = json.loads(_dse(*args, "--format", "json").stdout)
    assert len(every[0]) == 20  # without --columns json (and csv) keep every column
    assert every[0]["compile_s"] is None  # an old study's trials did not compile


def test_columns_picks_the_csv_and_json_columns_too(old_db):
    # csv and json printed every column whatever --columns asked for
    args = ["trials", "--storage", old_db, "--study", "legacy-grid"]
    picked = ["--columns", "error,number,model.routing_iterations,number"]
    as_csv = _dse(*args, *picked, "-f", "csv")
    assert as_csv.exit_code == 0, as_csv.stderr
    header, *lines = as_csv.stdout.splitlines()
    assert header == "error,number,params_model.routing_iterations"
    assert lines[0] == ",0,1" and len(lines) == 12
    rows = json.loads(_dse(*args, *picked, "-f", "json").stdout)
    assert [list(row) for row in rows] == [header.split(",")] * 12
    assert rows[1]["error"].startswith("out of memory") and rows[1]["number"] == 1
    table = _dse(*args, "--columns", "number,val_acuracy")
    for fmt in ("csv", "json"):
        typo = _dse(*args, "--columns", "number,val_acuracy", "-f", fmt)
        assert typo.exit_code == 2 and typo.stdout == ""
        assert typo.stderr == table.stderr and len(typo.stderr.splitlines()) == 1


def test_one_name_per_meaning(old_db):
    args = ["--storage", old_db, "--study", "legacy-grid", "--format", "json"]
    trials = json.loads(_dse("trials", *args).stdout)
    assert all("params" not in row and row["n_params"] > 0 for row in trials if row["n_params"])
    front = json.loads(_dse("pareto", *args).stdout)
    assert set(front[0]["params"]) == {
        "model.routing_iterations",
        "optimizer.lr",
        "batch_schedule.batch_size",
    }


def test_repeats_give_the_objectives_std(workdir):
    space = write_space(workdir)
    run = _dse("run", "--space", str(space), "--gpus", "cpu", "--quiet", "--repeats", "2")
    assert run.exit_code == 0, run.stderr
    rows = json.loads(_dse("trials", "--format", "json").stdout)
    assert all(row["train_time_s_std"] > 0 for row in rows)
    assert all(0 <= row["val_accuracy_std"] < 1 for row in rows)
    assert "test_accuracy_std" not in rows[0]  # only the objectives, as in dse pareto
    header = _header(_dse("trials").stdout)
    assert header[2:6] == ["train_time_s", "train_time_s_std", "val_accuracy", "val_accuracy_std"]


def test_an_empty_study_is_a_sentence(workdir):
    Path("results").mkdir()
    optuna.create_study(
        storage="sqlite:///results/dse.db", study_name="fresh", directions=["minimize"] * 2
    )
    trials = _dse("trials")
    assert trials.exit_code == 0 and trials.stdout == "study 'fresh' has no trials yet\n"
    assert json.loads(_dse("trials", "--format", "json").stdout) == []
    front = _dse("pareto")
    assert front.exit_code == 0, front.stderr
    assert front.stdout.startswith("Pareto front of fresh: empty (no trial is complete")
    assert json.loads(_dse("pareto", "--format", "json").stdout) == []


def test_export_says_which_trial_it_took(old_db, workdir):
    args = ["export", "--storage", old_db, "--study", "legacy-grid"]
    knee = _dse(*args, "--pick", "most-accurate", "--out", "best.yaml")
    assert knee.exit_code == 0 and knee.stdout == ""
    assert knee.stderr.splitlines() == [
        "trial 9: the most accurate of the front's 2 (train_time_s 1.017, val_accuracy 0.12)",
        "trial 9 -> best.yaml",
    ]
    stopped = _dse(*args, "--trial", "0")
    assert stopped.exit_code == 0 and stopped.stdout.startswith("name: legacy-grid-0")
    assert stopped.stderr == (
        "warning: trial 0 is PRUNED (stopped early at epoch 1), not a complete result\n"
    )
    complete = _dse(*args, "--trial", "10")
    assert complete.stderr.startswith("trial 10: train_time_s 0.969, val_accuracy 0.08; on the")


def _study(name: str, directions: list[str], names: list[str] | None = None) -> optuna.Study:
    """A study made by optuna alone in results/dse.db (no dse config or metrics)."""
    Path("results").mkdir(exist_ok=True)
    study = optuna.create_study(
        storage="sqlite:///results/dse.db", study_name=name, directions=directions
    )
    if names:
        with warnings.catch_warnings():  # experimental in optuna, and dse's way to name them
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)
    return study


def _add(study: optuna.Study, values: list[float] | None, state=None, **attrs) -> None:
    state = state or optuna.trial.TrialState.COMPLETE
    trial = optuna.trial.create_trial(
        values=values,
        state=state,
        params={"x": 1},
        user_attrs=attrs,
        distributions={"x": optuna.distributions.IntDistribution(0, 3)},
    )
    study.add_trial(trial)


def test_a_single_objective_study_has_no_front_to_show(workdir):
    _add(_study("single", ["minimize"]), [0.5])
    result = _dse("pareto", "--study", "single")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (
        "error: study 'single' has 1 objective: a Pareto front and its hypervolume need 2 or 3\n"
    )


def test_non_finite_values_are_left_out_of_the_front_and_named(workdir):
    study = _study("inf", ["minimize", "maximize"], ["train_time_s", "val_accuracy"])
    for values in ([0.1, float("-inf")], [float("inf"), 0.9], [1.0, 0.5], [2.0, 0.6]):
        _add(study, values)
    result = _dse("pareto", "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert [row["number"] for row in json.loads(result.stdout)] == [2, 3]
    left_out, volume = result.stderr.splitlines()
    assert left_out == (
        "left out of the front and the hypervolume, not finite: "
        "trial 0 val_accuracy=-inf; trial 1 train_time_s=inf"
    )
    # the reference point from the finite trials: (2.1, 0.49); the front's area 0.011 + 0.01
    assert volume.startswith(
        "hypervolume 0.021 (reference point train_time_s=2.1, val_accuracy=0.49"
    )
    studies = json.loads(_dse("studies", "-f", "json").stdout)
    assert studies[0]["pareto"] == 2  # the same front in every command


def test_studies_count_stopped_trials_so_the_columns_add_up(workdir):
    study = _study("counted", ["minimize", "maximize"], ["train_time_s", "val_accuracy"])
    _add(study, [1.0, 0.5])
    _add(study, None, optuna.trial.TrialState.PRUNED)
    _add(study, None, optuna.trial.TrialState.PRUNED)
    _add(study, None, optuna.trial.TrialState.FAIL, error="out of memory: ...")
    # a FAIL record dse run does not count as failed (it said 0 failed where studies said 1):
    # an attempt retried, a repeat never trained
    _add(study, None, optuna.trial.TrialState.FAIL, error="worker died", retried=True)
    _add(study, None, optuna.trial.TrialState.FAIL, error="repeat: trial 0 ...", invalid=True)
    (row,) = json.loads(_dse("studies", "-f", "json").stdout)
    assert row["stopped"] == 2 and row["complete"] == 1 and row["failed"] == 1
    assert row["uncounted"] == 2
    counted = ("complete", "stopped", "failed", "uncounted", "running", "waiting")
    assert sum(row[c] for c in counted) == row["trials"] == 6
    listed = _dse("studies", "-f", "csv").stdout
    assert listed.splitlines()[0] == (
        "study,objectives,trials,complete,stopped,failed,uncounted,running,waiting,pareto"
    )
    assert "\r" not in listed  # every CSV ends its lines with LF


def test_studies_count_repeat_draws_and_invalid_samples_apart_from_failures(workdir):
    """A sampler's repeat of a point the study has run, and a sampled point that is no valid
    config, are told FAIL untrained: `dse studies` used to count them failed (here
    failed 3); they are `uncounted`, and `failed` is the one trial that ran and failed."""
    study = _study("draws", ["minimize", "maximize"], ["train_time_s", "val_accuracy"])
    _add(study, [1.0, 0.5])
    _add(study, None, optuna.trial.TrialState.FAIL, error="out of memory: ...")  # ran, failed
    distributions = {"x": optuna.distributions.IntDistribution(0, 3)}
    for why in (repeat_error(0), "ConfigError: not a valid config"):
        trial = study.ask(distributions)
        TrialRecord(trial).mark_invalid(why)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    (row,) = json.loads(_dse("studies", "-f", "json").stdout)
    assert (row["trials"], row["complete"], row["failed"], row["uncounted"]) == (4, 1, 1, 2)


def test_a_storage_without_studies_says_so(workdir):
    Path("results").mkdir()
    optuna.storages.RDBStorage("sqlite:///results/dse.db")  # optuna's tables, no study
    result = _dse("studies")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (
        "error: --storage sqlite:///results/dse.db: no studies in it yet (run `dse run` first)\n"
    )


def test_trials_json_and_csv_carry_the_same_full_values(old_db):
    args = ["trials", "--storage", old_db, "--study", "legacy-grid"]
    rows = json.loads(_dse(*args, "-f", "json").stdout)
    text = _dse(*args, "-f", "csv").stdout
    assert "\r" not in text
    header, *lines = text.splitlines()
    times = [line.split(",")[header.split(",").index("train_time_s")] for line in lines]
    assert rows[0]["train_time_s"] == 0.6154157489999932 == float(times[0])
    assert [str(row["train_time_s"] or "") for row in rows] == times


def test_pareto_csv_is_lf_and_an_empty_front_still_has_its_header(old_db, workdir):
    front = _dse("pareto", "--storage", old_db, "--study", "legacy-grid", "-f", "csv").stdout
    assert front.startswith("number,train_time_s,val_accuracy,params_") and "\r" not in front
    _add(
        _study("fresh", ["minimize", "maximize"], ["train_time_s", "val_accuracy"]),
        None,
        optuna.trial.TrialState.FAIL,
    )
    empty = _dse("pareto", "--study", "fresh", "-f", "csv")
    assert empty.exit_code == 0
    assert empty.stdout == "number,train_time_s,val_accuracy,params_x\n"


def _mixed_study() -> None:
    """A study of n_params against val_accuracy (not METRICS' order), with repeats, whose
    trials set different params: trial 1 chose warm_restarts and its sub-axis T_0, trial 0
    constant, which has none. Params given in the order a sampler suggests them."""
    study = _study("mixed", ["minimize", "maximize"], ["n_params", "val_accuracy"])
    spaces = {
        "model.routing_iterations": optuna.distributions.IntDistribution(1, 3),
        "lr_policy.name": optuna.distributions.CategoricalDistribution(["constant", "warm"]),
        "lr_policy.T_0": optuna.distributions.IntDistribution(1, 2),
    }
    points = [
        (2000, 0.8, {"model.routing_iterations": 1, "lr_policy.name": "constant"}),
        (1000, 0.6, {"model.routing_iterations": 3, "lr_policy.name": "warm", "lr_policy.T_0": 2}),
    ]
    for n_params, accuracy, params in points:
        seed = {"train_time_s": 1.5, "n_params": n_params}
        per_seed = [seed | {"val_accuracy": accuracy + s / 100} for s in (-1, 1)]
        attrs = {
            METRICS_KEY: {"train_time_s": 1.5, "n_params": n_params, "val_accuracy": accuracy},
            PER_SEED: per_seed,
            SEED_STD: {"n_params": 0.0, "val_accuracy": 0.014},
        }
        trial = optuna.trial.create_trial(
            values=[n_params, accuracy],
            params=params,
            distributions={name: spaces[name] for name in params},
            user_attrs=attrs,
        )
        study.add_trial(trial)


def test_trials_and_pareto_show_their_shared_columns_in_one_order(workdir):
    # pareto put the objectives in the study's order, their std after all of them and the
    # params as the sampler gave them; trials the objectives in METRICS' order, each std beside
    # it, and the params by name
    _mixed_study()
    front = _dse("pareto", "--study", "mixed", "-f", "csv").stdout.splitlines()[0].split(",")
    assert front == [
        "number",
        "n_params",
        "n_params_std",
        "val_accuracy",
        "val_accuracy_std",
        "p_nondominated",
        "params_lr_policy.T_0",
        "params_lr_policy.name",
        "params_model.routing_iterations",
    ]
    trials = _dse("trials", "--study", "mixed", "-f", "csv").stdout.splitlines()[0].split(",")
    assert trials[:6] == ["number", "state", *front[1:5]]
    assert [c for c in trials if c in front] == [c for c in front if c in trials]
    assert _header(_dse("pareto", "--study", "mixed", columns=400).stdout) == front
    table = _header(_dse("trials", "--study", "mixed", columns=400).stdout)
    assert [c for c in table if c in front] == [c for c in front if c in table]
    rows = json.loads(_dse("pareto", "--study", "mixed", "-f", "json").stdout)
    assert list(rows[0]) == [*front[:6], "params"]


def test_trials_with_different_params_share_one_csv_header(workdir):
    _mixed_study()
    for command in ("trials", "pareto"):
        result = _dse(command, "--study", "mixed", "-f", "csv")
        assert result.exit_code == 0, result.stderr
        header, *rows = list(csv.reader(io.StringIO(result.stdout)))
        assert all(len(row) == len(header) for row in rows)
        cells = {int(row[0]): dict(zip(header, row, strict=True)) for row in rows}
        assert cells[0]["params_lr_policy.T_0"] == "" and cells[1]["params_lr_policy.T_0"] == "2"
        assert cells[0]["params_lr_policy.name"] == "constant"
