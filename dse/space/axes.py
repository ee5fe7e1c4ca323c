"""The axes of a space: choices, ranges and fixed values over dotted TrialConfig keys.

What an axis can do on its own or with its siblings: enumerate a grid, ask an optuna trial
for values, tell which sub-axes are in force for given values, and name its optuna parameter.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    check_distribution_compatibility,
)


def encode(value: Any) -> Any:
    """Optuna stores scalar choices only: lists and mappings travel as their JSON text."""
    return json.dumps(value) if isinstance(value, list | dict) else value


def decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    return value


@dataclass(frozen=True)
class Choice:
    key: str
    values: tuple[Any, ...]
    given: dict[int, tuple[Axis, ...]] = field(default_factory=dict)  # sub-axes per choice index
    param: str = ""  # the optuna parameter name, when it is not the key (see name_params)

    @property
    def name(self) -> str:
        return self.param or self.key


@dataclass(frozen=True)
class Range:
    key: str
    low: float
    high: float
    integer: bool
    log: bool = False
    step: float | None = None
    param: str = ""

    @property
    def name(self) -> str:
        return self.param or self.key

    def points(self) -> list[Any]:
        if self.integer:
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        assert self.step is not None
        n = math.floor((self.high - self.low) / self.step + 1e-9)
        return [self.low + k * self.step for k in range(n + 1)]

    @property
    def size(self) -> int:
        """len(points()), without listing them."""
        if self.integer:
            return len(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        assert self.step is not None
        return math.floor((self.high - self.low) / self.step + 1e-9) + 1

    @property
    def finite(self) -> bool:
        return self.integer or self.step is not None

    def refuses(self, value: Any) -> str | None:
        """Why a point's value is not one of the range's values (None: it is)."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "is not a number"
        if not self.low <= value <= self.high:
            return f"is outside [{self.low:g}, {self.high:g}]"
        if self.step is not None:
            steps = (value - self.low) / self.step
            if abs(steps - round(steps)) > 1e-9 * max(1.0, steps):
                return f"is not {self.low:g} plus whole steps of {self.step:g}"
        return None


@dataclass(frozen=True)
class Fixed:
    key: str
    value: Any
    param: str = ""

    @property
    def name(self) -> str:
        return self.param or self.key


Axis = Choice | Range | Fixed


def axes_finite(axes: tuple[Axis, ...]) -> bool:
    """Whether the axes (sub-axes included) have a grid: no continuous range anywhere."""
    for axis in axes:
        if isinstance(axis, Range) and not axis.finite:
            return False
        if isinstance(axis, Choice) and not all(axes_finite(s) for s in axis.given.values()):
            return False
    return True


def grid_count(axes: tuple[Axis, ...]) -> int:
    """How many points iter_grid yields, counted without listing them."""
    count = 1
    for axis in axes:
        if isinstance(axis, Range):
            count *= axis.size
        elif isinstance(axis, Choice):
            count *= sum(grid_count(axis.given.get(i, ())) for i in range(len(axis.values)))
    return count


def iter_grid(axes: tuple[Axis, ...]) -> Iterator[dict[str, Any]]:
    """Every combination of values; sub-axes expand only under their choice."""
    if not axes:
        yield {}
        return
    head, rest = axes[0], axes[1:]
    if isinstance(head, Fixed):
        options: list[dict[str, Any]] = [{}]
    elif isinstance(head, Range):
        options = [{head.key: v} for v in head.points()]
    else:
        options = []
        for i, value in enumerate(head.values):
            for sub in iter_grid(head.given.get(i, ())):
                options.append({head.key: value, **sub})
    for option in options:
        for tail in iter_grid(rest):
            yield {**option, **tail}


def suggest_values(axes: tuple[Axis, ...], trial: optuna.Trial, out: dict[str, Any]) -> None:
    """Ask the trial for a value of every active axis, into `out` (decoded values)."""
    for axis in axes:
        if isinstance(axis, Fixed):
            continue
        if isinstance(axis, Range):
            if axis.integer:
                step = int(axis.step or 1)
                out[axis.key] = trial.suggest_int(
                    axis.name, int(axis.low), int(axis.high), step=step, log=axis.log
                )
            else:
                out[axis.key] = trial.suggest_float(
                    axis.name, axis.low, axis.high, log=axis.log, step=axis.step
                )
            continue
        encoded = [encode(v) for v in axis.values]
        picked = trial.suggest_categorical(axis.name, encoded)
        out[axis.key] = decode(picked)
        suggest_values(axis.given.get(encoded.index(picked), ()), trial, out)


def active_axes(axes: tuple[Axis, ...], values: dict[str, Any]) -> Iterator[Axis]:
    """The axes in force for `values`: the top level, and sub-axes of the choices made."""
    for axis in axes:
        yield axis
        if isinstance(axis, Choice) and axis.key in values:
            encoded = [encode(v) for v in axis.values]
            picked = encode(values[axis.key])
            if picked in encoded:
                yield from active_axes(axis.given.get(encoded.index(picked), ()), values)


def all_axes(axes: tuple[Axis, ...]) -> Iterator[Axis]:
    """Every axis, at any depth: the top level and the sub-axes under every choice."""
    for axis in axes:
        yield axis
        if isinstance(axis, Choice):
            for sub in axis.given.values():
                yield from all_axes(sub)


def name_params(axes: tuple[Axis, ...]) -> tuple[Axis, ...]:
    """Give sub-axes whose key appears more than once a parameter name of their own.

    `batch_schedule.batch_size` under `fixed` and under `adabatch` are two parameters with
    different domains for optuna: `batch_schedule.batch_size@fixed`, `...@adabatch`.
    """
    counts: dict[str, int] = {}
    for axis in all_axes(axes):
        counts[axis.key] = counts.get(axis.key, 0) + 1

    def rename(level: tuple[Axis, ...], choice: str | None) -> tuple[Axis, ...]:
        out = []
        for axis in level:
            if choice is not None and counts[axis.key] > 1:
                axis = replace(axis, param=f"{axis.key}@{choice}")
            if isinstance(axis, Choice):
                given = {i: rename(sub, str(axis.values[i])) for i, sub in axis.given.items()}
                axis = replace(axis, given=given)
            out.append(axis)
        return tuple(out)

    return rename(axes, None)


def distribution(axis: Choice | Range) -> BaseDistribution:
    """The distribution optuna records for the axis' parameter (as suggest_values asks it)."""
    if isinstance(axis, Choice):
        return CategoricalDistribution([encode(v) for v in axis.values])
    if axis.integer:
        step = int(axis.step or 1)
        return IntDistribution(int(axis.low), int(axis.high), log=axis.log, step=step)
    return FloatDistribution(axis.low, axis.high, log=axis.log, step=axis.step)


def rename_incompatible(
    axes: tuple[Axis, ...], recorded: dict[str, BaseDistribution]
) -> tuple[Axis, ...]:
    """Axes whose distribution optuna cannot take under their parameter name in a study that
    recorded `recorded` (a categorical's choices never change within a study; a range keeps
    its kind and log) get the first name `NAME#2`, `NAME#3`, ... that can take it."""

    def fits(name: str, new: BaseDistribution) -> bool:
        old = recorded.get(name)
        try:
            if old is not None:
                check_distribution_compatibility(old, new)
        except ValueError:
            return False
        return True

    def rename(level: tuple[Axis, ...]) -> tuple[Axis, ...]:
        out = []
        for axis in level:
            if not isinstance(axis, Fixed):
                new, name, k = distribution(axis), axis.name, 1
                while not fits(name, new):
                    k += 1
                    name = f"{axis.name}#{k}"
                if name != axis.name:
                    axis = replace(axis, param=name)
            if isinstance(axis, Choice):
                axis = replace(axis, given={i: rename(sub) for i, sub in axis.given.items()})
            out.append(axis)
        return tuple(out)

    return rename(axes)
