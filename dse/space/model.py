"""What a search space holds: a base config, axes, points, objectives and constraints.

From a point (values by dotted key) to the TrialConfig that trains it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any

import optuna

from dse.config import DatasetConfig, TrialConfig, set_values
from dse.errors import ConfigError, DseError, option
from dse.presets import preset
from dse.space.axes import (
    Axis,
    Choice,
    Fixed,
    Range,
    active_axes,
    all_axes,
    axes_finite,
    decode,
    encode,
    grid_count,
    iter_grid,
    rename_incompatible,
    suggest_values,
)

PRESET_KEY = "preset"
# A grid run lists, checks and queues every point: past this many, it must be sampled.
MAX_GRID_POINTS = 100_000
DEFAULT_OBJECTIVES = {"train_time_s": "minimize", "val_accuracy": "maximize"}
_DATASET_KEYS = ("dataset.name", "dataset", PRESET_KEY)  # axes that can choose a dataset


@dataclass(frozen=True)
class Constraint:
    metric: str
    op: str  # ">=" or "<="
    bound: float

    def violation(self, metrics: dict[str, float]) -> float:
        """Optuna's convention: <= 0 means satisfied."""
        value = metrics[self.metric]
        return self.bound - value if self.op == ">=" else value - self.bound

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


@dataclass(frozen=True)
class Fingerprint:
    """What a study's trials are points of, as the space file gives it: the base (with repeats),
    the axes, the objectives and the constraints. Stored with the study: trials of another
    space must not count toward this one's budget or grid."""

    base: dict[str, Any]
    axes: dict[str, Any]
    objectives: dict[str, str]
    constraints: list[str]

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))  # as stored: JSON types

    def with_current_metrics(self, rename: Callable[[str], str]) -> Fingerprint:
        """The same space with metric names as `rename` gives them today (a stored one may
        hold older names)."""
        renamed = [" ".join([rename(c.split()[0]), *c.split()[1:]]) for c in self.constraints]
        objectives = {rename(m): d for m, d in self.objectives.items()}
        return replace(self, objectives=objectives, constraints=renamed)

    def differences(self, other: Fingerprint) -> list[str]:
        """The parts that differ, as dotted keys (`axes.optimizer.lr`, `base.epochs`)."""
        mine, theirs = self.to_dict(), other.to_dict()
        found = []
        for part in mine:
            a, b = mine[part], theirs[part]
            if isinstance(a, dict) and isinstance(b, dict):
                keys = sorted(set(a) | set(b))
                found += [
                    f"{part}.{k}" for k in keys if _canonical(a.get(k)) != _canonical(b.get(k))
                ]
            elif _canonical(a) != _canonical(b):
                found.append(part)
        return found


@dataclass(frozen=True)
class DatasetUse:
    """A dataset section a space's trials may run, and where in the space file it comes from
    (`quick.yaml: base`, `quick.yaml: axes.dataset.train_subset = 9000`): a subset the files
    cannot give is refused naming the file, not the key alone."""

    config: DatasetConfig
    where: str


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class SearchSpace:
    name: str
    source: str
    base: dict[str, Any]
    axes: tuple[Axis, ...]
    points: tuple[dict[str, Any], ...]  # values by key, run first
    objectives: tuple[tuple[str, str], ...]  # (metric, direction)
    constraints: tuple[Constraint, ...]
    n_trials: int | None
    description: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)  # the file, as stored
    reference_point: tuple[float, ...] | None = None  # for the hypervolume, per objective

    def with_repeats(self, repeats: int) -> SearchSpace:
        """The space with every trial training `repeats` seeds (`dse run --repeats`)."""
        return replace(self, base={**self.base, "repeats": repeats})

    # -- what the space holds --
    @property
    def finite(self) -> bool:
        return axes_finite(self.axes)

    @property
    def enumerable(self) -> bool:
        """Whether the grid can be listed: finite, of at most MAX_GRID_POINTS points."""
        return self.finite and (self.grid_size() or 0) <= MAX_GRID_POINTS

    def grid(self) -> list[dict[str, Any]]:
        """All combinations of the axes' values (decoded), in a stable order."""
        if not self.finite:
            raise ConfigError(f"{self.source}: the space has continuous ranges: it has no grid")
        size = self.grid_size() or 0
        if size > MAX_GRID_POINTS:
            raise ConfigError(
                f"{self.source}: a grid of {size:,} points, more than {MAX_GRID_POINTS:,} to "
                f"run one by one: give n_trials (or {option('n_trials')}) to sample it"
            )
        return list(iter_grid(self.axes))

    def grid_size(self) -> int | None:
        return grid_count(self.axes) if self.finite else None

    def one_point_note(self) -> str | None:
        """A space whose axes give no second value (`axes: {}`, or none) is one point, its
        base config: a run trains it once whatever the budget. Said, not refused: a space
        can train one config."""
        if self.grid_size() != 1:
            return None
        why = "none given" if not self.axes else "none gives a second value"
        return f"{self.source}: axes: {why}, so the space is one point (its base config): one trial"

    def check_grid(self) -> None:
        """Every grid point must be a valid config (a combination can clash: warm_adabatch
        with a fixed batch): checked before a grid run, which would run them all."""
        for values in self.grid():
            self.config_for(values)

    def runnable(self, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The points that are valid configs, in their order: a combination can clash
        (warm_adabatch with a fixed batch), and no run trains it (the runner fails it)."""
        kept = []
        for point in points:
            try:
                self.config_for(point)
            except DseError:
                continue
            kept.append(point)
        return kept

    @property
    def metric_names(self) -> list[str]:
        return [metric for metric, _ in self.objectives]

    @property
    def directions(self) -> list[str]:
        return [direction for _, direction in self.objectives]

    def planned_trials(self, n_trials: int | None = None) -> int:
        n = n_trials or self.n_trials
        if n is None:
            if not self.finite:
                raise ConfigError(
                    f"{self.source}: n_trials: required for a space with continuous ranges "
                    f"(or pass {option('n_trials')})"
                )
            n = self.grid_size()
        return int(n)

    def base_config(self) -> TrialConfig:
        """The config of the empty point: `config_for({})`, built once per space."""
        return self._base_config

    @cached_property
    def _base_config(self) -> TrialConfig:
        # A frozen dataclass without slots keeps a __dict__, where cached_property stores the
        # value; `replace` (as in with_repeats) builds a new instance, with no cache.
        return self.config_for({})

    def datasets(self) -> set[str]:
        """The datasets the space's trials may use: the base's, the points', the axes' values."""
        return {use.config.name for use in self.dataset_configs()}

    def dataset_configs(self) -> list[DatasetUse]:
        """The dataset sections the space's trials may run, each with where it comes from: the
        base's, the points', and the base with each value of an axis under `dataset` or
        choosing a preset (a range: its ends) -- what `dse run` checks against the files
        before it starts."""
        uses = [DatasetUse(self.base_config().dataset, f"{self.source}: base")]
        uses += [
            DatasetUse(self.config_for(point).dataset, f"{self.source}: points[{i}]")
            for i, point in enumerate(self.points)
        ]
        for axis in all_axes(self.axes):
            if axis.key in _DATASET_KEYS or axis.key.startswith("dataset."):
                # `dataset: [{name: fashion_mnist}, ...]` names one too
                uses += [
                    DatasetUse(config.dataset, f"{self.source}: axes.{axis.key} = {value!r}")
                    for value, config in self._configs_along(axis)
                ]
        return uses

    def run_lengths(self) -> set[int]:
        """The epochs the space's trials may run: the base's, the points', and each value of
        an `epochs` axis (a range: its ends)."""
        lengths = {self.base_config().epochs}
        lengths |= {self.config_for(point).epochs for point in self.points}
        for axis in all_axes(self.axes):
            if axis.key == "epochs":
                lengths |= {config.epochs for _, config in self._configs_along(axis)}
        return lengths

    def _configs_along(self, axis: Axis) -> list[tuple[Any, TrialConfig]]:
        """Each value of `axis` (a range: its ends) with the base's config at it; a value that
        needs another axis' is left out (its points are checked)."""
        values: tuple[Any, ...] = ()
        if isinstance(axis, Choice):
            values = tuple(axis.values)
        elif isinstance(axis, Fixed):
            values = (axis.value,)
        elif isinstance(axis, Range):
            values = (axis.low, axis.high)
            values = tuple(int(v) for v in values) if axis.integer else values
        configs = []
        for value in values:
            try:
                configs.append((value, self.config_for({axis.key: value}, combination=False)))
            except DseError:
                continue
        return configs

    def fingerprint(self) -> Fingerprint:
        return Fingerprint(
            base=dict(self.base),
            axes=dict(self.raw.get("axes", {})),
            objectives=dict(self.objectives),
            constraints=[str(c) for c in self.constraints],
        )

    def with_param_names(self, recorded: dict[str, Any]) -> SearchSpace:
        """The space as a study that recorded these parameter distributions can take it: an
        axis optuna cannot change under its name (a categorical with other choices) gets a new
        parameter name (`optimizer.lr#2`); its points then count as new points."""
        return replace(self, axes=rename_incompatible(self.axes, recorded))

    def contains(self, params: dict[str, Any]) -> bool:
        """Whether optuna params (named as `encoded` names them) are a point of this space:
        each active axis given a value in its domain, and no other parameter."""
        by_name = {axis.name: axis for axis in all_axes(self.axes) if not isinstance(axis, Fixed)}
        if not set(params) <= set(by_name):
            return False
        values = {by_name[name].key: decode(value) for name, value in params.items()}
        active = [a for a in active_axes(self.axes, values) if not isinstance(a, Fixed)]
        if {a.name for a in active} != set(params):
            return False
        return all(_within(axis, values[axis.key]) for axis in active)

    # -- from values to configs --
    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Ask the trial's sampler for a value of every active axis; returns decoded values."""
        values: dict[str, Any] = {}
        suggest_values(self.axes, trial, values)
        return values

    def config_for(
        self, values: dict[str, Any], name: str | None = None, combination: bool = True
    ) -> TrialConfig:
        """The TrialConfig of a point: base (or the chosen preset), fixed values, then values.

        combination=False checks the values one by one but not how they combine (an axis
        value that needs another axis' value, like warm_adabatch needing adabatch).
        """
        active = active_axes(self.axes, values)
        fixed = {a.key: a.value for a in active if isinstance(a, Fixed)}
        # Section names first: naming a new kind resets its section (see config.set_values).
        chosen = dict(
            sorted({**fixed, **values}.items(), key=lambda kv: not kv[0].endswith(".name"))
        )
        preset_name = chosen.pop(PRESET_KEY, None) or self.base.get(PRESET_KEY)
        data = preset(preset_name).to_dict() if preset_name else TrialConfig().to_dict()
        base = {k: v for k, v in self.base.items() if k != PRESET_KEY}
        data = _merge(data, base)
        data = set_values(data, list(chosen.items()), where=lambda key: f"{self.source}: {key}")
        if name is not None:
            data["name"] = name
        return TrialConfig.from_dict(data, source=self.source, combination=combination)

    def encoded(self, values: dict[str, Any]) -> dict[str, Any]:
        """Values as optuna params, named as the sampler names them (for enqueue_trial)."""
        return {
            axis.name: encode(values[axis.key])
            for axis in active_axes(self.axes, values)
            if not isinstance(axis, Fixed) and axis.key in values
        }


def _within(axis: Choice | Range, value: Any) -> bool:
    if isinstance(axis, Choice):
        return encode(value) in [encode(v) for v in axis.values]
    return isinstance(value, int | float) and axis.low <= value <= axis.high


def _merge(data: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Nested update; a tagged section whose name changes starts from the update alone."""
    out = dict(data)
    for key, value in update.items():
        old = out.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            same_kind = "name" not in value or value.get("name") == old.get("name")
            out[key] = _merge(old, value) if same_kind else dict(value)
        else:
            out[key] = value
    return out
