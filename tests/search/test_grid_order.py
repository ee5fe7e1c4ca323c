"""The space-filling order of a grid run's queue (grid_order.py)."""

from __future__ import annotations

import itertools
import math
import time

import optuna
import pytest
from optuna.trial import TrialState

from dse.search.grid_order import MAX_SPREAD_POINTS, spread_order
from dse.search.options import RunOptions, plan_run
from dse.search.records import TrialRecord, param_key
from dse.search.runner import run_study
from dse.search.study import enqueue_missing
from dse.space import load_space
from dse.space.parse import parse_space
from tests.conftest import load_study, write_space

BATCH = [16, 32, 64, 128]
LR = [3e-4, 1e-3, 3e-3]
WIDTH = ["narrow", "wide"]
GRID = [dict(batch=b, lr=lr, width=w) for b in BATCH for lr in LR for w in WIDTH]


def distance(a: dict, b: dict) -> float:
    """The module doc's distance, written out independently: numeric axes by scaled rank,
    others 0/1."""
    total = 0.0
    for key, levels in (("batch", BATCH), ("lr", LR)):
        total += ((levels.index(a[key]) - levels.index(b[key])) / (len(levels) - 1)) ** 2
    total += float(a["width"] != b["width"])
    return math.sqrt(total)


def test_each_point_is_the_farthest_from_those_before_it():
    for seed in range(5):
        order = spread_order(GRID, seed)
        assert sorted(map(repr, order)) == sorted(map(repr, GRID))  # a permutation
        for k in range(1, len(order)):
            gap = min(distance(order[k], placed) for placed in order[:k])
            best = max(min(distance(p, placed) for placed in order[:k]) for p in order[k:])
            assert gap == pytest.approx(best, abs=1e-9), (seed, k)


def test_short_prefixes_cover_every_axis():
    """The first 2 points take both widths; the first 4 take the smallest
    and largest batch and learning rate, whatever the seed (file order's first 6 points share
    batch 16)."""
    for seed in range(50):
        order = spread_order(GRID, seed)
        assert {p["width"] for p in order[:2]} == set(WIDTH)
        assert {16, 128} <= {p["batch"] for p in order[:4]}
        assert {3e-4, 3e-3} <= {p["lr"] for p in order[:4]}


def test_the_order_is_the_seeds():
    assert spread_order(GRID, 3) == spread_order(GRID, 3)
    assert len({repr(spread_order(GRID, seed)) for seed in range(10)}) > 1


def test_points_of_different_shapes_and_large_grids():
    """A choice's sub-axis is present in some points only; a grid above MAX_SPREAD_POINTS is
    shuffled (maximin would be quadratic) and still returned whole."""
    nested = [{"policy": "constant"}] + [{"policy": "step", "gamma": g} for g in (0.1, 0.5, 0.9)]
    order = spread_order(nested, 0)
    assert sorted(map(repr, order)) == sorted(map(repr, nested))
    big = [dict(a=a, b=b) for a, b in itertools.product(range(80), range(60))]
    assert len(big) > MAX_SPREAD_POINTS
    started = time.perf_counter()
    order = spread_order(big, 1)
    assert time.perf_counter() - started < 5
    assert sorted(map(repr, order)) == sorted(map(repr, big))


def test_a_grid_run_cut_by_its_budget_runs_a_spread_prefix():
    space = parse_space(
        {
            "name": "cut",
            "base": {"epochs": 1},
            "axes": {
                "batch_schedule.batch_size": [16, 32, 64, 128],
                "optimizer.lr": [3e-4, 1e-3, 3e-3],
                "model.conv_channels": [16, 32],
            },
        },
        "cut.yaml",
    )
    plan = plan_run(space, RunOptions(sampler="grid", n_trials=4, seed=7), gpu_count=0)
    assert plan.planned == 4 and plan.grid == spread_order(space.grid(), 7)
    study = optuna.create_study(directions=["minimize", "maximize"])
    enqueue_missing(study, space, plan.grid, origin="grid", up_to=plan.planned)
    queued = [TrialRecord(t).point_key() for t in study.get_trials()]
    assert queued == [param_key(space.encoded(p)) for p in plan.grid[:4]]
    assert {16, 128} <= {p["batch_schedule.batch_size"] for p in plan.grid[:4]}
    assert {16, 32} == {p["model.conv_channels"] for p in plan.grid[:2]}


def test_a_grid_resumed_with_another_seed_keeps_its_budget(workdir):
    """`--n-trials 2 --seed 1`, then `--n-trials 3 --seed 2`: the second run keeps the 2 points
    run and adds seed 2's first other point; 3 trained in all, each point once, none left
    queued (a second prefix beside the first would have queued up to 3 more)."""
    space = load_space(str(write_space(workdir, lrs="[0.0003, 0.001, 0.003]")))
    for n_trials, seed in ((2, 1), (3, 2)):
        options = RunOptions(
            storage="sqlite:///g.db", sampler="grid", n_trials=n_trials, workers=1, seed=seed
        )
        summary = run_study(space, options)
        assert summary.complete == n_trials
    trials = load_study("sqlite:///g.db", "tiny").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    run = [param_key(t.params) for t in trials]
    assert len(set(run)) == 3
    first = [param_key(space.encoded(p)) for p in spread_order(space.grid(), 1)[:2]]
    assert run[:2] == first
    following = [param_key(space.encoded(p)) for p in spread_order(space.grid(), 2)]
    assert run[2] == next(key for key in following if key not in first)
