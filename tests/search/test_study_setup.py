"""A run's study set up: a space's points queue before its grid."""

from __future__ import annotations

import optuna

from dse.search.options import RunOptions, plan_run
from dse.search.records import TrialRecord
from dse.search.study_setup import set_up_study
from dse.space import parse_space


def _queued(n_trials: int) -> list[dict]:
    space = parse_space(
        {
            "name": "t",
            "base": {"epochs": 1},
            "axes": {"model.routing_iterations": [1, 2, 3], "optimizer.lr": [1e-3, 3e-3]},
            "points": [{"model.routing_iterations": 2, "optimizer.lr": 3e-3}],
        },
        "t.yaml",
    )
    options = RunOptions(sampler="grid", n_trials=n_trials)
    plan = plan_run(space, options, gpu_count=0)
    study, _ = set_up_study(optuna.storages.InMemoryStorage(), space, options, plan)
    return [TrialRecord(trial).point for trial in study.get_trials(deepcopy=False)]


def test_points_run_first_even_in_a_grid():
    # The grid was queued first and the points, already in it, were skipped: a grid run did
    # not run them first, and a budget smaller than the grid could leave them out.
    point = {"model.routing_iterations": 2, "optimizer.lr": 3e-3}
    whole = _queued(6)
    assert whole[0] == point and len(whole) == 6
    assert point not in whole[1:]
    assert _queued(1) == [point]
    two = _queued(2)
    assert two[0] == point and len(two) == 2
