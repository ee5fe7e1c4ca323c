"""dse run with repeats: per-seed values stored; dse pareto's bootstrap column and --robust."""

from __future__ import annotations

import optuna
from typer.testing import CliRunner

from dse.cli import app
from dse.report.front import pareto_figure
from dse.search.results import open_view
from tests.conftest import last_json

runner = CliRunner()

SPACE = """
name: rep
repeats: 2
base:
  epochs: 1
  eval_batch_size: 100
  dataset: {val_size: 100, test_subset: 100}
  model: {conv_channels: 8, primary_types: 2, primary_dim: 4, class_dim: 4}
  batch_schedule: {batch_size: 50}
axes:
  model.routing_iterations: [1, 3]
  optimizer.lr: [0.001, 0.01]
"""


def test_repeats_end_to_end(workdir):
    (workdir / "rep.yaml").write_text(SPACE)
    storage = f"sqlite:///{workdir}/r.db"
    result = runner.invoke(
        app, ["run", "--space", "rep.yaml", "--storage", storage, "--workers", "2", "-q"]
    )
    assert result.exit_code == 0, result.stderr
    study = optuna.load_study(study_name="rep", storage=storage)
    complete = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(complete) == 4
    for t in complete:
        seeds = t.user_attrs["per_seed"]
        assert [s["seed"] for s in seeds] == [0, 1] and t.user_attrs["config"]["repeats"] == 2
        mean = (seeds[0]["val_accuracy"] + seeds[1]["val_accuracy"]) / 2
        assert t.values[1] == mean  # the objective is the mean over the seeds
        assert set(t.user_attrs["seed_std"]) >= {"train_time_s", "val_accuracy"}

    front = last_json(runner.invoke(app, ["pareto", "--storage", storage, "--format", "json"]))
    assert front and all(0.0 <= r["p_nondominated"] <= 1.0 for r in front)
    assert all("val_accuracy_std" in r and "train_time_s_std" in r for r in front)
    robust = last_json(
        runner.invoke(app, ["pareto", "--storage", storage, "--robust", "0.9", "--format", "json"])
    )
    assert [r["number"] for r in robust] == [
        r["number"] for r in front if r["p_nondominated"] >= 0.9
    ]

    figure = pareto_figure(open_view(storage, "rep"))
    front_trace = next(trace for trace in figure.data if trace.name == "Pareto front")
    assert len(front_trace.error_y.array) == len(front)
    assert "P(non-dominated over seeds)" in front_trace.text[0]


def test_robust_without_repeats_is_an_error(tmp_path):
    storage = f"sqlite:///{tmp_path}/r.db"
    study = optuna.create_study(storage=storage, study_name="s", directions=["minimize"] * 2)
    study.add_trial(optuna.trial.create_trial(values=[1.0, 2.0]))
    result = runner.invoke(app, ["pareto", "--storage", storage, "--robust", "0.9"])
    assert result.exit_code == 2
    assert "error: --robust 0.9: study 's' has no repeats" in result.stderr
