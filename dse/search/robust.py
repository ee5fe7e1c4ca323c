"""How much of a Pareto front is noise: seed statistics and a bootstrap over seeds.

A trial trained with k seeds has k values per objective; the front is drawn through their
means. Resampling each trial's seeds with replacement (a bootstrap over seeds) and recomputing
the non-dominated set shows how often each trial would be on the front had other seeds been
drawn: 1.0 for a point that dominates by far more than its spread, about 0.5 for two points
whose seed values overlap completely and tie otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dse.search.pareto import as_minimize

DEFAULT_RESAMPLES = 1000


@dataclass(frozen=True)
class SeedStats:
    mean: float
    std: float  # sample standard deviation (ddof=1); 0 for one seed


def seed_stats(values: Sequence[float]) -> SeedStats:
    x = np.asarray(values, dtype=float)
    return SeedStats(float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else 0.0)


def non_dominated_mask(x: np.ndarray) -> np.ndarray:
    """x [P, M] (minimize): True where no other row dominates."""
    no_worse = np.all(x[:, None, :] <= x[None, :, :], axis=2)  # [j, i]: j no worse than i
    better = np.any(x[:, None, :] < x[None, :, :], axis=2)
    dominated = np.any(no_worse & better, axis=0)
    return ~dominated


def nondominated_probability(
    per_seed: Sequence[Sequence[Sequence[float]]],
    directions: Sequence[str],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> list[float]:
    """For each trial (its per-seed objective vectors, [k_i, M]), the share of bootstrap
    replicates in which the mean of its resampled seeds is non-dominated among all trials."""
    rng = np.random.default_rng(seed)
    samples = [as_minimize(values, directions) for values in per_seed]
    counts = np.zeros(len(samples))
    for _ in range(resamples):
        means = np.stack([s[rng.integers(0, len(s), size=len(s))].mean(axis=0) for s in samples])
        counts += non_dominated_mask(means)
    return [float(c) / resamples for c in counts]
