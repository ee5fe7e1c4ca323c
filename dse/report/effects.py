"""What each choice buys: for every value of every axis, the mean of an objective over the
trials with that value minus its mean over the other trials, with the difference's standard
error. Plain numbers from plain points: the report draws them (report/panels.py).

An axis is compared among the trials that set it: a sub-axis under one choice of another axis
(`lr_policy.decay_steps` under `exp_decay`) is weighed against that choice's other trials, not
against trials that never had it. A numeric axis with more than MAX_LEVELS distinct values is
split at its median into a low and a high half; an axis with one value says nothing and is
left out.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_LEVELS = 8  # a numeric axis with more distinct values is split at its median


@dataclass(frozen=True)
class Point:
    """One trial as the effects see it: its parameters and its objective values."""

    params: dict[str, Any]
    values: tuple[float, ...]


@dataclass(frozen=True)
class Levels:
    """An axis' values among the points that set it, and which points have each."""

    axis: str
    labels: tuple[str, ...]  # in the axis' order (numbers ascending)
    members: tuple[tuple[int, ...], ...]  # indices into the points, one tuple per label
    split: bool  # a many-valued numeric axis, split at its median into two halves

    def label_of(self, index: int) -> str | None:
        """The label of point `index`, None when it does not set the axis."""
        for label, members in zip(self.labels, self.members, strict=True):
            if index in members:
                return label
        return None


@dataclass(frozen=True)
class Effect:
    """What one value of an axis buys in one objective, against the axis' other trials."""

    axis: str
    level: str  # the value (or "≤ m" / "> m", a half of a split numeric axis)
    metric: str
    n: int  # trials with the value
    n_other: int  # trials that set the axis to another value
    mean: float
    mean_other: float
    stderr: float | None  # of the difference (Welch); None when a side has a single trial

    @property
    def difference(self) -> float:
        return self.mean - self.mean_other


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _order(value: Any) -> tuple[int, Any]:
    return (0, value) if _numeric(value) else (1, str(value))


def levels(points: Sequence[Point], axis: str) -> Levels:
    """The axis' levels over the points that set it."""
    having = [(i, p.params[axis]) for i, p in enumerate(points) if axis in p.params]
    distinct = sorted({v for _, v in having}, key=_order)
    if len(distinct) > MAX_LEVELS and all(_numeric(v) for v in distinct):
        median = statistics.median(v for _, v in having)
        halves = {
            f"≤ {median:.3g}": tuple(i for i, v in having if v <= median),
            f"> {median:.3g}": tuple(i for i, v in having if v > median),
        }
        kept = {label: members for label, members in halves.items() if members}
        return Levels(axis, tuple(kept), tuple(kept.values()), split=True)
    members = tuple(tuple(i for i, v in having if v == value) for value in distinct)
    return Levels(axis, _labels(distinct), members, split=False)


def _labels(values: list[Any]) -> tuple[str, ...]:
    """The values as Python writes them, except floats of more than 6 significant digits (a
    sampled learning rate, 0.0011423254155608373), which are rounded to the fewest digits,
    4 at least, at which the axis' floats all read apart."""
    long = [isinstance(v, float) and float(f"{v:.6g}") != v for v in values]
    if not any(long):
        return tuple(str(v) for v in values)
    floats = [v for v in values if isinstance(v, float)]
    digits = next(d for d in range(4, 18) if len({f"{v:.{d}g}" for v in floats}) == len(floats))
    return tuple(
        f"{v:.{digits}g}" if is_long else str(v) for v, is_long in zip(values, long, strict=True)
    )


def varied_axes(points: Sequence[Point]) -> list[str]:
    """The axes the points take more than one level of, by name."""
    names = sorted({name for p in points for name in p.params})
    return [name for name in names if len(levels(points, name).labels) > 1]


def _stderr(a: list[float], b: list[float]) -> float | None:
    if len(a) < 2 or len(b) < 2:
        return None
    return math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))


def effects(points: Sequence[Point], metrics: Sequence[str]) -> list[Effect]:
    """Every level of every varied axis against the axis' other points, for each objective
    (`metrics` names the points' values in order); axes by name, levels in order."""
    found = []
    for axis in varied_axes(points):
        grouping = levels(points, axis)
        having = {i for members in grouping.members for i in members}
        for k, metric in enumerate(metrics):
            for label, members in zip(grouping.labels, grouping.members, strict=True):
                inside = [points[i].values[k] for i in members]
                outside = [points[i].values[k] for i in sorted(having - set(members))]
                found.append(
                    Effect(
                        axis=axis,
                        level=label,
                        metric=metric,
                        n=len(inside),
                        n_other=len(outside),
                        mean=statistics.fmean(inside),
                        mean_other=statistics.fmean(outside),
                        stderr=_stderr(inside, outside),
                    )
                )
    return found


def explained(points: Sequence[Point], axis: str, index: int = 0) -> float:
    """The share of the variance of objective `index` over all points that the axis' levels
    explain, the points that do not set the axis counted as one more level (the share the
    axis' colours explain), adjusted for the number of levels: epsilon squared,
    (SS_between - (k - 1) MS_within) / SS_total, at least 0. The unadjusted share (eta
    squared) grows with every level: an axis whose values put each trial in a group of its
    own (a sampled learning rate) would explain all of it, whatever it does. Groups of one
    leave no within-level variance to measure that by: 0."""
    grouping = levels(points, axis)
    unset = tuple(i for i, p in enumerate(points) if axis not in p.params)
    groups = [[points[i].values[index] for i in members] for members in grouping.members]
    groups += [[points[i].values[index] for i in unset]] if unset else []
    values = [v for group in groups for v in group]
    within_df = len(values) - len(groups)
    mean = statistics.fmean(values)
    total = sum((v - mean) ** 2 for v in values)
    if total == 0 or within_df == 0:
        return 0.0
    between = sum(len(g) * (statistics.fmean(g) - mean) ** 2 for g in groups)
    within_mean_square = (total - between) / within_df
    return max(0.0, (between - (len(groups) - 1) * within_mean_square) / total)


def most_explaining(points: Sequence[Point], index: int = 0) -> str | None:
    """The varied axis that explains most of objective `index` (the first by name on a tie);
    None when no axis varies or none explains a share above 0."""
    shares = {axis: explained(points, axis, index) for axis in varied_axes(points)}
    best = max(shares, key=shares.__getitem__, default=None)  # max keeps the first
    return best if best is not None and shares[best] > 0 else None
