"""Replays summed up over seeds: each method's share of the grid's hypervolume, its share of the
grid's training seconds and its trials, as means with 95% confidence intervals (Student's t over
the seeds), and its hypervolume share against compute share (the curve, with a band)."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dse.search.early_stop import EarlyStop
from dse.search.replay import Grid, SeedRun, replay_method

CI_LEVEL = 0.95
CI_METHOD = "Student's t over seeds"
CURVE_AT = tuple(i / 40 for i in range(41))  # compute shares the curve is read at


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float


SHARE = (0.0, 1.0)  # hypervolume and compute shares (no point runs twice, none past its end)
NON_NEGATIVE = (0.0, math.inf)  # counts


def t_interval(
    samples: Sequence[float], within: tuple[float, float], level: float = CI_LEVEL
) -> Estimate:
    """The mean and its two-sided t interval, clipped to the range the quantity can take: with
    few seeds a t interval of a share near 1 runs past 1. One sample says nothing of the
    spread (the t interval is unbounded): the interval is the whole range."""
    from scipy import stats  # here: loading scipy.stats costs every dse command 0.7 s at start

    mean = statistics.fmean(samples)
    low, high = within
    if len(samples) < 2:
        return Estimate(mean, low, high)
    half = float(stats.t.ppf(0.5 + level / 2, len(samples) - 1)) * statistics.stdev(samples)
    half /= math.sqrt(len(samples))
    return Estimate(mean, max(low, mean - half), min(high, mean + half))


def exact(samples: Sequence[float]) -> Estimate:
    """A method without randomness (grid): its one run is the value, the interval the point."""
    mean = statistics.fmean(samples)
    return Estimate(mean, mean, mean)


def hv_at(run: SeedRun, compute_s: float) -> float:
    """The run's hypervolume once it had spent `compute_s` training seconds (to the rounding
    of a running sum, relative: a grid of a million seconds is off by more than 1e-9)."""
    slack = 1e-9 * max(1.0, compute_s)
    reached = [hv for spent, hv in run.history if spent <= compute_s + slack]
    return reached[-1] if reached else 0.0


@dataclass(frozen=True)
class MethodSummary:
    method: str
    seeds: int
    hv_share: Estimate
    compute_share: Estimate
    trials: Estimate
    stopped: Estimate
    curve: tuple[tuple[float, Estimate], ...]  # (compute share, hv share)

    def row(self) -> dict[str, Any]:
        """The table's row and the JSON object (the curve is JSON only), at full precision:
        the table rounds its cells; JSON readers compare shares (0.99996 is not 1.0, the whole
        front)."""
        return {
            "method": self.method,
            "seeds": self.seeds,
            "hv_share": self.hv_share.mean,
            "hv_share_ci": [self.hv_share.low, self.hv_share.high],
            "compute_share": self.compute_share.mean,
            "compute_share_ci": [self.compute_share.low, self.compute_share.high],
            "trials": self.trials.mean,
            "trials_ci": [self.trials.low, self.trials.high],
            "stopped": self.stopped.mean,
        }

    def curve_json(self) -> list[dict[str, float]]:
        return [
            {"compute_share": share, "hv_share": e.mean, "low": e.low, "high": e.high}
            for share, e in self.curve
        ]


def summarize(grid: Grid, method: str, runs: Sequence[SeedRun]) -> MethodSummary:
    whole_hv, whole_s = grid.hypervolume or 1.0, grid.compute_s or 1.0
    counts = (0.0, float(len(grid.grid)))  # trials: each grid point at most once

    def interval(samples: Sequence[float], within: tuple[float, float]) -> Estimate:
        return exact(samples) if method == "grid" else t_interval(samples, within)

    curve = tuple(
        (share, interval([hv_at(r, share * whole_s) / whole_hv for r in runs], SHARE))
        for share in CURVE_AT
    )
    stopped = [sum(t.stopped_at is not None for t in r.trials) for r in runs]
    return MethodSummary(
        method=method,
        seeds=len(runs),
        hv_share=interval([r.hypervolume / whole_hv for r in runs], SHARE),
        compute_share=interval([r.compute_s / whole_s for r in runs], SHARE),
        trials=interval([len(r.trials) for r in runs], counts),
        stopped=interval(stopped, counts),
        curve=curve,
    )


@dataclass(frozen=True)
class ReplayResult:
    summaries: list[MethodSummary]
    wall_s: float
    runs: dict[str, list[SeedRun]]


def replay_methods(
    grid: Grid,
    methods: Sequence[str],
    seeds: int,
    workers: int,
    budget: int | None,
    early_stop: EarlyStop,
) -> ReplayResult:
    """Each method replayed with seeds 0..seeds-1 (grid: one seed: it has no randomness)."""
    start = time.perf_counter()
    runs: dict[str, list[SeedRun]] = {}
    for method in methods:
        count = 1 if method == "grid" else seeds
        runs[method] = [
            replay_method(grid, method, seed, workers, budget, early_stop) for seed in range(count)
        ]
    summaries = [summarize(grid, m, r) for m, r in runs.items()]
    return ReplayResult(summaries, time.perf_counter() - start, runs)
