"""A run's study set up: a space's points queue before its grid."""

from __future__ import annotations

import optuna

from dse.search.options import RunOptions, plan_run
from dse.search.records import TrialRecord
from dse.search.study_setup import set_up_study
from dse.space import parse_space

AXES = {"model.routing_iterations": [1, 2, 3], "optimizer.lr": [1e-3, 3e-3]}


def _queued(n_trials: int, points: list[dict] | None = None) -> list[dict]:
    points = points or [{"model.routing_iterations": 2, "optimizer.lr": 3e-3}]
    space = parse_space(
        {
            "name": "t",
            "base": {"epochs": 1},
            "axes": AXES,
            "points": points,
        },
        "t.yaml",
    )
    options = RunOptions(sampler="grid", n_trials=n_trials or None)
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


def test_a_point_that_leaves_axes_to_be_sampled_runs_first_as_a_grid_point():
    # the sampler completed it to a grid point the grid had queued too: it ran as a repeat of
    # that later grid trial (not first), and took a place in the budget
    partial = {"model.routing_iterations": 3}
    queued = _queued(3, [partial])
    assert queued[0]["model.routing_iterations"] == 3 and set(queued[0]) == set(AXES)
    assert len(queued) == 3 and len({tuple(sorted(q.items())) for q in queued}) == 3
    whole = _queued(0, [partial, partial])  # two: two grid points with routing 3
    assert [q["model.routing_iterations"] for q in whole[:2]] == [3, 3]
    assert whole[0] != whole[1] and len(whole) == 6
