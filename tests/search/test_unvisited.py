"""No point of a finite space trained twice (dse/search/unvisited.py): live runs and replays
both refuse a sampler's repeats, fall back to an unvisited point when a sampler keeps
repeating, and stop when every point has run."""

from __future__ import annotations

import optuna
import pytest

from dse.search.options import RunOptions
from dse.search.recording import record_study
from dse.search.records import TrialRecord, param_key
from dse.search.replay import Grid, Simulation, replay_method
from dse.search.runner import run_study
from dse.search.unvisited import MAX_REPEATS_IN_A_ROW, unvisited_point, valid_points
from dse.space import load_space
from tests.conftest import load_study, write_space
from tests.search.test_replay import synthetic_recording


def test_a_live_random_search_trains_each_point_once_and_stops_when_all_have_run(workdir):
    """Random search asked for 8 trials of a 4-point grid: 4 trained, each point once; the
    sampler's repeats are recorded, not trained, and not counted; then the run stops short."""
    space = load_space(str(write_space(workdir)))
    options = RunOptions(storage="sqlite:///r.db", sampler="random", n_trials=8, workers=1)
    summary = run_study(space, options)
    assert summary.exhausted and summary.complete == 4 and summary.failed == 0
    trials = load_study("sqlite:///r.db", "tiny").get_trials()
    trained = [TrialRecord(t) for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len({r.point_key() for r in trained}) == 4
    repeats = [TrialRecord(t) for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert repeats, "4 random draws of 4 points without a repeat: seed 0 must repeat"
    for record in repeats:
        assert record.error.startswith("repeat: trial") and record.metrics == {}
        assert record.point_key() in {r.point_key() for r in trained}
        assert record.never_ran and not record.is_final()


def test_the_replay_asks_what_the_live_run_asked(workdir):
    """One worker, random search with its repeats: the replay over the run's own record starts
    the same points in the same order (the repeats and the draws after them included)."""
    space = load_space(str(write_space(workdir, lrs="[0.0003, 0.001, 0.003]")))
    options = RunOptions(storage="sqlite:///r.db", sampler="random", n_trials=5, workers=1, seed=3)
    run_study(space, options)
    trials = load_study("sqlite:///r.db", "tiny").get_trials()
    live = [
        TrialRecord(t).point_key() for t in trials if t.state == optuna.trial.TrialState.COMPLETE
    ]
    assert len(live) == len(set(live)) == 5
    assert any(TrialRecord(t).never_ran for t in trials), "seed 3 draws repeats on this grid"
    recording = record_study("sqlite:///r.db", "tiny")  # 5 of the 6 points
    replayed = replay_method(Grid(recording), "random", 3, 1, 5)
    assert [t.point for t in replayed.trials] == live


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_sampler_that_keeps_repeating_gets_unvisited_points():
    """A sampler stuck on one point (optuna's PartialFixedSampler, every axis fixed, as a
    converged model-based sampler is): after MAX_REPEATS_IN_A_ROW repeats an unvisited point
    runs instead, and so on until the budget is spent, every point different."""
    grid = Grid(synthetic_recording())
    simulation = Simulation(grid, "random", seed=0, workers=1, budget=4)
    stuck = grid.recording.trials[5].params
    simulation.study.sampler = optuna.samplers.PartialFixedSampler(
        stuck, optuna.samplers.RandomSampler(seed=0)
    )
    run = simulation.simulate()
    points = [t.point for t in run.trials]
    assert points[0] == param_key(stuck) and len(set(points)) == len(points) == 4
    asked = simulation.study.get_trials(deepcopy=False)
    repeats = [t for t in asked if TrialRecord(t).never_ran]
    assert len(repeats) == 3 * MAX_REPEATS_IN_A_ROW  # before each of the 3 unvisited points


def test_random_search_with_a_budget_past_the_grid_runs_the_grid_once():
    grid = Grid(synthetic_recording())
    run = replay_method(grid, "random", 1, 2, budget=100)
    assert sorted(t.point for t in run.trials) == sorted(grid.by_key)
    assert run.compute_s == pytest.approx(grid.compute_s)
    assert run.hypervolume == pytest.approx(grid.hypervolume)


def test_unvisited_points_are_drawn_by_seed_and_number_and_run_out():
    space = Grid(synthetic_recording()).space
    valid = valid_points(space)
    assert len(valid) == 24
    first = unvisited_point(valid, {}, seed=4, number=17)
    assert first == unvisited_point(valid, {}, seed=4, number=17)
    draws = {param_key(unvisited_point(valid, {}, seed=4, number=n)) for n in range(40)}
    assert len(draws) > 10  # the draw depends on the trial number
    present = {param_key(p): n for n, p in enumerate(valid[:-1])}
    assert unvisited_point(valid, present, seed=4, number=17) == valid[-1]
    everything = {param_key(p): n for n, p in enumerate(valid)}
    assert unvisited_point(valid, everything, seed=4, number=17) is None
