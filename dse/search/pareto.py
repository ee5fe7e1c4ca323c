"""Pareto analysis written by hand: non-dominated sort (the front, and all fronts in order),
knee point, hypervolume.

The front of a study (`results.StudyView.front`) is `non_dominated` over its feasible complete
trials with finite values (optuna's `Study.best_trials` would keep a trial with an infinite
one); the rest is what optuna does not offer publicly (its hypervolume is a private module).
All functions take objective vectors with directions, and work on "minimize" copies inside.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def as_minimize(points: Sequence[Sequence[float]], directions: Sequence[str]) -> np.ndarray:
    signs = np.array([1.0 if d == "minimize" else -1.0 for d in directions])
    return np.asarray(points, dtype=float).reshape(-1, len(directions)) * signs


def dominance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether a dominates b (minimization: no worse in every objective, better in one), for
    objective vectors along the last axis, broadcast over the others."""
    return np.all(a <= b, axis=-1) & np.any(a < b, axis=-1)


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """a dominates b (minimization): no worse in every objective, better in one."""
    return bool(dominance(np.asarray(a), np.asarray(b)))


def non_dominated(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """Indices of the points no other point dominates (duplicates all stay), ascending.

    A point's dominators come before it in lexicographic order, and a dominated point is
    dominated by a member too: each point is checked against the members found so far only,
    O(n · front) rather than O(n²) (a study's thousands of trials, a front of tens).
    """
    x = as_minimize(points, directions)
    members: list[int] = []
    for i in np.lexsort(x.T[::-1]):
        found = x[members]
        if not np.any(dominance(found, x[i])):
            members.append(int(i))
    return sorted(members)


def sorted_fronts(x: np.ndarray) -> list[list[int]]:
    """Non-dominated sorting (minimization; MO-ASHA's rungs, moasha.py): indices by front, each
    front in index order. A point with an objective that is not a number dominates nothing and
    nothing dominates it: it is on the first front. A rung of a big study holds thousands of
    records, so two objectives (the common case) are sorted in O(n log n), more by a dominance
    matrix built in blocks of rows (`bench/rung_decisions.py`: 10,000 records took 35 s a
    decision as one matrix peeled front by front)."""
    comparable = ~np.isnan(x).any(axis=1)
    where = np.flatnonzero(comparable)
    ranks = ranks_by_bisection(x[where]) if x.shape[1] == 2 else ranks_by_matrix(x[where])
    rank = np.zeros(len(x), dtype=int)
    rank[where] = ranks
    by_front = np.argsort(rank, kind="stable")  # stable: each front in index order
    bounds = np.cumsum(np.bincount(rank))[:-1]
    return [[int(i) for i in front] for front in np.split(by_front, bounds)] if len(x) else []


def ranks_by_bisection(x: np.ndarray) -> np.ndarray:
    """Each point's front (0 first) in two objectives. In order of the first objective (then the
    second), only points already seen can dominate the next one, and a front dominates it when
    the front's least second objective is smaller, or equal and reached at a smaller first
    objective (equal points do not dominate each other). A point dominated by front k is
    dominated by every front before k (each member of k has a dominator there), so its front is
    found by bisection over the fronts so far."""
    ranks = np.zeros(len(x), dtype=int)
    least: list[float] = []  # per front: its least second objective so far
    reached_at: list[float] = []  # per front: the first objective where it reached `least`
    for i in np.lexsort((x[:, 1], x[:, 0])):
        first, second = x[i]
        low, high = 0, len(least)
        while low < high:  # the first front that does not dominate point i
            k = (low + high) // 2
            if least[k] < second or (least[k] == second and reached_at[k] < first):
                low = k + 1
            else:
                high = k
        ranks[i] = low
        if low == len(least):
            least.append(second)
            reached_at.append(first)
        elif second < least[low]:
            least[low], reached_at[low] = second, first
    return ranks


ROWS_AT_ONCE = 1024  # the dominance matrix's rows built together: memory rows x n x d


def ranks_by_matrix(x: np.ndarray) -> np.ndarray:
    """Each point's front (0 first), any number of objectives: who dominates whom as a matrix,
    then fronts peeled by counting each point's dominators left (O(n^2) in all)."""
    n = len(x)
    dominates = np.zeros((n, n), dtype=bool)  # [j, i]: j dominates i
    for start in range(0, n, ROWS_AT_ONCE):
        rows = x[start : start + ROWS_AT_ONCE, None, :]
        dominates[start : start + ROWS_AT_ONCE] = dominance(rows, x[None, :, :])
    dominators = dominates.sum(axis=0)
    ranks = np.full(n, -1)
    front, k = np.flatnonzero(dominators == 0), 0
    while front.size:
        ranks[front] = k
        dominators -= dominates[front].sum(axis=0)
        dominators[front] = -1  # placed
        front, k = np.flatnonzero(dominators == 0), k + 1
    return ranks


def knee(points: Sequence[Sequence[float]], directions: Sequence[str]) -> int:
    """Index of the front point closest to the ideal point after min-max scaling.

    Each objective is scaled to [0, 1] over the given points (0 best), so no unit dominates;
    the knee is the best compromise: the smallest Euclidean distance to (0, ..., 0).
    """
    x = as_minimize(points, directions)
    low, high = x.min(axis=0), x.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    scaled = (x - low) / span
    return int(np.argmin(np.linalg.norm(scaled, axis=1)))


def hypervolume(
    points: Sequence[Sequence[float]], directions: Sequence[str], reference: Sequence[float]
) -> float:
    """Volume dominated by the points and bounded by the reference point (2 or 3 objectives).

    Points that do not dominate the reference contribute nothing. Exact: a sweep in 2-D,
    slices along the third objective in 3-D.
    """
    x = as_minimize(points, directions)
    ref = as_minimize([reference], directions)[0]
    x = x[np.all(x < ref, axis=1)]
    if len(x) == 0:
        return 0.0
    if x.shape[1] == 2:
        return _hv2(x, ref)
    if x.shape[1] == 3:
        order = np.argsort(x[:, 2])
        x = x[order]
        total = 0.0
        for i in range(len(x)):
            top = x[i + 1, 2] if i + 1 < len(x) else ref[2]
            total += _hv2(x[: i + 1, :2], ref[:2]) * (top - x[i, 2])
        return float(total)
    raise ValueError(f"hypervolume supports 2 or 3 objectives, got {x.shape[1]}")


def _hv2(x: np.ndarray, ref: np.ndarray) -> float:
    order = np.argsort(x[:, 0])
    best_y, area = ref[1], 0.0
    for px, py in x[order]:
        if py < best_y:
            area += (ref[0] - px) * (best_y - py)
            best_y = py
    return float(area)


class FrontSet:
    """The non-dominated set of points added one at a time, duplicates all kept (as
    `non_dominated` keeps them): a study's front kept up to date as its trials finish, each new
    point checked against the members only, not every trial read again."""

    def __init__(self, directions: Sequence[str]):
        self.directions = list(directions)
        self.members = np.empty((0, len(directions)))  # minimize copies

    def add(self, point: Sequence[float]) -> None:
        x = as_minimize([point], self.directions)[0]
        if np.any(dominance(self.members, x)):
            return
        self.members = np.vstack([self.members[~dominance(x, self.members)], x])

    def __len__(self) -> int:
        return len(self.members)


class GrowingFront:
    """The hypervolume of points added one at a time (a study's trials as they finished): a
    point some member weakly dominates adds no volume and is dropped, so the volume is
    recomputed over the front alone, and only when the front changes."""

    def __init__(self, directions: Sequence[str], reference: Sequence[float]):
        self.reference = as_minimize([reference], directions)[0]
        self.directions = list(directions)
        self.members = np.empty((0, len(directions)))  # minimize copies
        self.volume = 0.0

    def add(self, point: Sequence[float]) -> float:
        """Add a point; the hypervolume of every point added so far."""
        x = as_minimize([point], self.directions)[0]
        if np.any(np.all(self.members <= x, axis=1)):
            return self.volume
        kept = self.members[~np.all(x <= self.members, axis=1)]
        self.members = np.vstack([kept, x])
        minimize = ["minimize"] * len(self.directions)
        self.volume = hypervolume(self.members, minimize, self.reference)
        return self.volume
