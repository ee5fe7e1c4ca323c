"""Pareto analysis written by hand: non-dominated sort, knee point, hypervolume.

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


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """a dominates b (minimization): no worse in every objective, better in one."""
    return bool(np.all(a <= b) and np.any(a < b))


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
        if not np.any(np.all(found <= x[i], axis=1) & np.any(found < x[i], axis=1)):
            members.append(int(i))
    return sorted(members)


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
