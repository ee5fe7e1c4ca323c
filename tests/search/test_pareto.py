from __future__ import annotations

import itertools

import numpy as np
import pytest

from dse.search.pareto import (
    FrontSet,
    GrowingFront,
    dominates,
    hypervolume,
    knee,
    non_dominated,
    ranks_by_matrix,
    sorted_fronts,
)

MIN_MAX = ["minimize", "maximize"]


def test_non_dominated_two_objectives():
    points = [(1, 0.5), (2, 0.9), (3, 0.8), (1.5, 0.5), (4, 0.95), (2, 0.9)]
    # (3, .8) is dominated by (2, .9); (1.5, .5) by (1, .5); the duplicate (2, .9) stays
    assert non_dominated(points, MIN_MAX) == [0, 1, 4, 5]


def test_non_dominated_three_objectives_brute_force():
    rng = np.random.default_rng(0)
    points = rng.random((60, 3))
    directions = ["minimize", "maximize", "minimize"]
    signs = np.array([1, -1, 1])
    expected = [
        i
        for i, p in enumerate(points)
        if not any(np.all(q * signs <= p * signs) and np.any(q * signs < p * signs) for q in points)
    ]
    assert non_dominated(points, directions) == expected


def test_hypervolume_2d_by_hand():
    # minimize x, maximize y, reference (10, 0): boxes [1,10]x[0,5] and [4,10]x[5,8]
    assert hypervolume([(1, 5), (4, 8)], MIN_MAX, (10, 0)) == pytest.approx(9 * 5 + 6 * 3)
    assert hypervolume([(1, 5), (4, 8), (5, 4)], MIN_MAX, (10, 0)) == pytest.approx(
        63
    )  # dominated adds 0
    assert hypervolume([(11, 5)], MIN_MAX, (10, 0)) == 0.0  # beyond the reference


def test_hypervolume_3d_against_a_grid_count():
    rng = np.random.default_rng(1)
    points = rng.random((8, 3))
    ref = (1.0, 1.0, 1.0)
    exact = hypervolume(points, ["minimize"] * 3, ref)
    # count cells of a fine grid dominated by some point
    n = 60
    centers = (np.arange(n) + 0.5) / n
    cells = np.array(list(itertools.product(centers, repeat=3)))
    covered = np.zeros(len(cells), dtype=bool)
    for p in points:
        covered |= np.all(cells >= p, axis=1)
    assert exact == pytest.approx(covered.mean(), abs=0.02)


def test_knee_is_the_balanced_point():
    front = [(1.0, 0.80), (2.0, 0.97), (10.0, 0.99)]
    assert knee(front, MIN_MAX) == 1


@pytest.mark.parametrize("directions", [MIN_MAX, ["minimize", "maximize", "minimize"]])
def test_a_growing_front_has_the_hypervolume_of_every_point_added(directions):
    rng = np.random.default_rng(2)
    points = rng.integers(0, 6, size=(80, len(directions))).astype(float)  # ties, duplicates
    reference = [7.0 if d == "minimize" else -1.0 for d in directions]
    front = GrowingFront(directions, reference)
    for k, point in enumerate(points, start=1):
        assert front.add(point) == pytest.approx(hypervolume(points[:k], directions, reference))


@pytest.mark.parametrize("levels", [3, 8, None])  # integer levels (ties, duplicates) or floats
def test_sorted_fronts_in_two_objectives_match_pairwise_dominance(levels):
    """The two-objective sort (by bisection) against the definition, and against the matrix
    sort of any number of objectives, on 500 points with ties and duplicates."""
    rng = np.random.default_rng(levels or 0)
    size = (500, 2)
    x = rng.integers(0, levels, size=size).astype(float) if levels else rng.random(size)
    fronts = sorted_fronts(x)
    remaining = list(range(len(x)))
    for front in fronts:
        expected = [i for i in remaining if not any(dominates(x[j], x[i]) for j in remaining)]
        assert front == expected  # in index order
        remaining = [i for i in remaining if i not in expected]
    assert not remaining and len(fronts) > 2
    by_matrix = ranks_by_matrix(x)
    assert fronts == [[int(i) for i in np.flatnonzero(by_matrix == k)] for k in range(len(fronts))]


def test_sorted_fronts_put_a_point_that_is_not_a_number_first_and_sort_the_rest():
    x = np.array([[2.0, 2.0], [1.0, np.nan], [1.0, 1.0], [3.0, 3.0], [np.nan, np.nan]])
    assert sorted_fronts(x) == [[1, 2, 4], [0], [3]]
    three = np.array([[1.0, 1.0, 1.0], [np.nan, 0.0, 0.0], [2.0, 2.0, 2.0]])
    assert sorted_fronts(three) == [[0, 1], [2]]
    assert sorted_fronts(np.zeros((0, 2))) == []


def test_a_front_set_grown_point_by_point_is_the_front_of_the_points_so_far():
    rng = np.random.default_rng(3)
    points = rng.integers(0, 6, size=(300, 2)).astype(float).tolist()  # ties, duplicates
    directions = ["minimize", "maximize"]
    front = FrontSet(directions)
    for n, point in enumerate(points, start=1):
        front.add(point)
        assert len(front) == len(non_dominated(points[:n], directions))
