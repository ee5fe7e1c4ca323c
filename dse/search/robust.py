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
    if x.shape[1] == 2:
        return _mask_2d(x)
    no_worse = np.all(x[:, None, :] <= x[None, :, :], axis=2)  # [j, i]: j no worse than i
    better = np.any(x[:, None, :] < x[None, :, :], axis=2)
    dominated = np.any(no_worse & better, axis=0)
    return ~dominated


def _mask_2d(x: np.ndarray) -> np.ndarray:
    """non_dominated_mask of two objectives by a sort, O(P log P): in lexicographic order a
    row's dominators are the rows before its group of equal rows with no larger second value."""
    order = np.lexsort((x[:, 1], x[:, 0]))
    xs = x[order]
    starts = np.ones(len(xs), dtype=bool)
    starts[1:] = np.any(xs[1:] != xs[:-1], axis=1)
    before = np.minimum.accumulate(np.concatenate([[np.inf], xs[:-1, 1]]))
    group = np.maximum.accumulate(np.where(starts, np.arange(len(xs)), 0))
    mask = np.empty(len(xs), dtype=bool)
    mask[order] = before[group] > xs[:, 1]
    return mask


def always_dominated(samples: Sequence[np.ndarray]) -> np.ndarray:
    """True for the trials another trial dominates whichever seeds are drawn: its worst seed
    value beats their best in every objective (minimize). Such a trial is never on the front,
    and whatever it dominates in a replicate its dominator does too, so it can be left out."""
    best = np.stack([s.min(axis=0) for s in samples])
    worst = np.stack([s.max(axis=0) for s in samples])
    beaten = np.zeros(len(samples), dtype=bool)
    for start in range(0, len(samples), 256):  # [rows, P, M] at a time, not [P, P, M]
        rows = best[start : start + 256]
        beaten[start : start + 256] = np.any(np.all(worst[None] < rows[:, None], axis=2), axis=1)
    return beaten


def nondominated_probability(
    per_seed: Sequence[Sequence[Sequence[float]]],
    directions: Sequence[str],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> list[float]:
    """For each trial (its per-seed objective vectors, [k_i, M]), the share of bootstrap
    replicates in which the mean of its resampled seeds is non-dominated among all trials.
    Trials that are never non-dominated are left out of the replicates (always_dominated), and
    the trials with k seeds are resampled together: thousands of trials take seconds."""
    rng = np.random.default_rng(seed)
    samples = [as_minimize(values, directions) for values in per_seed]
    alive = np.flatnonzero(~always_dominated(samples)) if samples else np.arange(0)
    groups = {}  # seeds per trial -> the alive trials with that many, and their values
    for k in sorted({len(samples[i]) for i in alive}):
        members = [int(i) for i in alive if len(samples[i]) == k]
        groups[k] = (members, np.stack([samples[i] for i in members]))
    counts = np.zeros(len(samples))
    for _ in range(resamples):
        means = np.empty((len(samples), samples[0].shape[1] if samples else 0))
        for k, (members, values) in groups.items():
            draws = rng.integers(0, k, size=(len(members), k))
            means[members] = values[np.arange(len(members))[:, None], draws].mean(axis=1)
        counts[alive] += non_dominated_mask(means[alive])
    return [float(c) / resamples for c in counts]
