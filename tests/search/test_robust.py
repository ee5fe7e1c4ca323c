import time

import numpy as np
import pytest

from dse.search.pareto import non_dominated
from dse.search.robust import non_dominated_mask, nondominated_probability, seed_stats

DIRECTIONS = ["minimize", "maximize"]  # train_time_s, val_accuracy


def test_seed_stats_mean_and_sample_std():
    stats = seed_stats([0.97, 0.98, 0.99])
    assert stats.mean == pytest.approx(0.98)
    assert stats.std == pytest.approx(0.01)
    assert seed_stats([0.5]).std == 0.0


def test_mask_matches_the_pareto_module():
    rng = np.random.default_rng(3)
    points = rng.random((40, 2))
    minimized = points * np.array([1.0, -1.0])
    assert np.flatnonzero(non_dominated_mask(minimized)).tolist() == non_dominated(
        points, DIRECTIONS
    )


def test_a_point_that_dominates_by_far_is_always_on_the_front():
    fast_good = [[100.0, 0.990], [101.0, 0.991], [99.0, 0.989]]
    slow_bad = [[300.0, 0.950], [290.0, 0.955], [310.0, 0.945]]
    assert nondominated_probability([fast_good, slow_bad], DIRECTIONS) == [1.0, 0.0]


def test_two_points_whose_seeds_overlap_completely_are_a_coin_flip():
    seeds = [[100.0, 0.970], [100.0, 0.975], [100.0, 0.980], [100.0, 0.985]]
    p = nondominated_probability([seeds, list(seeds)], DIRECTIONS, resamples=4000)
    # Same time: A is off the front exactly when B's resampled accuracy is higher; ties
    # (equal means) keep both on it, so each is a bit above one half.
    assert p[0] == pytest.approx(p[1], abs=0.05)
    assert 0.45 <= p[0] <= 0.65


def test_a_trade_off_front_stays_certain_and_a_noisy_neighbour_does_not():
    a = [[100.0, 0.95], [100.0, 0.95]]  # fast, less accurate
    b = [[200.0, 0.99], [200.0, 0.99]]  # slow, accurate: a trade-off with a
    c = [[150.0, 0.96], [150.0, 0.90]]  # in between, one good seed and one bad
    p = nondominated_probability([a, b, c], DIRECTIONS, resamples=2000, seed=1)
    assert p[0] == 1.0 and p[1] == 1.0
    # c is on the front only when its both resampled seeds are the good one (1/4).
    assert p[2] == pytest.approx(0.25, abs=0.04)


def test_the_two_objective_mask_is_the_pairwise_one_with_ties_and_duplicates():
    rng = np.random.default_rng(3)
    for _ in range(100):
        x = rng.integers(0, 5, size=(30, 2)).astype(float)
        no_worse = np.all(x[:, None, :] <= x[None, :, :], axis=2)
        better = np.any(x[:, None, :] < x[None, :, :], axis=2)
        assert (non_dominated_mask(x) == ~np.any(no_worse & better, axis=0)).all()


def test_a_thousand_trials_with_repeats_resample_in_seconds():
    """Was a minute (every replicate drew each trial's seeds in Python and compared every
    pair of trials); `dse pareto --plot` resamples three times."""
    rng = np.random.default_rng(0)
    times = rng.uniform(1, 100, 1000)
    seeds = [
        [(t + rng.normal(0, 2), 0.5 + t / 250 + rng.normal(0, 0.02)) for _ in range(3)]
        for t in times
    ]
    started = time.perf_counter()
    p = nondominated_probability(seeds, DIRECTIONS)
    assert time.perf_counter() - started < 3.0
    assert len(p) == 1000 and 0 < sum(x > 0 for x in p) < 1000 and max(p) > 0.5
