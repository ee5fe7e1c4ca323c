"""Search-space files: schema, validation with file/key-precise errors, shipped spaces.

A space is a base config plus axes over dotted TrialConfig keys:

    name: quick
    base: {preset: baseline, epochs: 2, dataset: {train_subset: 3000}}
    axes:
      preset: [baseline, warm_adabatch]          # the pseudo-key `preset` picks the base preset
      model.routing_iterations: [1, 3]           # choices
      optimizer.lr: {low: 1.0e-4, high: 1.0e-2, log: true}   # a float range
      model.conv_channels: {low: 16, high: 64, step: 16}     # an int range
      precision: fp32                            # a fixed value
      lr_policy.name:                            # choices with parameters of their own
        constant: {}
        warm_restarts: {lr_policy.T_0: [1, 2]}
    points: [{preset: warm_adabatch}]            # run first
    objectives: {train_time_s: minimize, val_accuracy: maximize}
    constraints: ["val_accuracy >= 0.9"]
    n_trials: 20                                 # default: the whole grid

See search_spaces/README.md for the full reference.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dse import yamlio
from dse.config import TrialConfig, describe_validation_error
from dse.config_keys import known_keys
from dse.errors import ConfigError, nearest, option
from dse.presets import PRESETS, preset
from dse.space.axes import Axis, Choice, Fixed, Range, active_axes, encode, name_params
from dse.space.checks import check_one_axis_per_key, check_values
from dse.space.model import DEFAULT_OBJECTIVES, PRESET_KEY, Constraint, SearchSpace
from dse.train.result import METRICS, current_metric, current_metrics

_RANGE_KEYS = {"low", "high", "log", "step"}
_NUMBER = r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_CONSTRAINT = re.compile(rf"^\s*([a-z_]+)\s*(>=|<=)\s*({_NUMBER})\s*$")


# --- the file --------------------------------------------------------------------------------


class _SpaceFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str | None = None
    base: dict[str, Any] = {}
    axes: dict[str, Any] = {}
    points: list[dict[str, Any]] = []
    objectives: dict[str, Literal["minimize", "maximize"]] = DEFAULT_OBJECTIVES
    constraints: list[str] = []
    n_trials: int | None = Field(None, ge=1)
    repeats: int | None = Field(None, ge=1)  # seeds per trial (base.repeats)
    reference_point: dict[str, float] | None = None


# --- parsing ---------------------------------------------------------------------------------


def _parse_axis(key: str, spec: Any, where: str) -> Axis:
    if isinstance(spec, list):
        if not spec:
            raise ConfigError(f"{where}: axes.{key}: empty list of choices")
        _check_distinct(key, spec, where)
        return Choice(key, tuple(spec))
    if isinstance(spec, dict) and _range_like(spec):
        return _parse_range(key, spec, where)
    if isinstance(spec, dict) and set(spec) == {"value"}:  # a fixed list or mapping
        return Fixed(key, spec["value"])
    if isinstance(spec, dict):
        if not spec:
            raise ConfigError(f"{where}: axes.{key}: empty mapping of choices")
        _check_not_a_section(key, spec, where)
        given: dict[int, tuple[Axis, ...]] = {}
        for i, (choice, sub) in enumerate(spec.items()):
            if sub is None or sub == {}:
                continue
            if not isinstance(sub, dict):
                raise ConfigError(
                    f"{where}: axes.{key}.{choice}: expected a mapping of axes under this choice"
                )
            given[i] = tuple(_parse_axis(k, v, where) for k, v in sub.items())
        return Choice(key, tuple(spec), given)
    return Fixed(key, spec)


def _check_not_a_section(key: str, spec: dict[str, Any], where: str) -> None:
    """`model: {routing_iterations: [1, 3]}` under axes reads as choices of a key `model`:
    axes name dotted keys, so say that (it said "expected a mapping of axes under this
    choice")."""
    if any(known.startswith(f"{key}.") for known in known_keys(TrialConfig)):
        first = next(iter(spec))
        raise ConfigError(
            f"{where}: axes.{key}: a section, not a key: axes name dotted keys ({key}.{first}: ...)"
        )


def _same(a: Any, b: Any) -> bool:
    """One value for a config: 1 and 1.0 (or [1, 16] and [1.0, 16]) are, true and 1 not."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _check_distinct(key: str, choices: list[Any], where: str) -> None:
    """A choice listed twice would run its points twice."""
    for i, value in enumerate(choices):
        earlier = [w for w in choices[:i] if _same(w, value)]
        if not earlier:
            continue
        if repr(earlier[0]) == repr(value):
            raise ConfigError(f"{where}: axes.{key}: {value!r} is listed twice")
        raise ConfigError(
            f"{where}: axes.{key}: {earlier[0]!r} and {value!r} are one value, listed twice"
        )


def _range_like(spec: dict[str, Any]) -> bool:
    """A mapping with low or high and no axes under it: a range, maybe misspelt (choices map
    to mappings of sub-axes, or nothing)."""
    has_end = bool({"low", "high"} & set(spec))
    return has_end and not any(sub is None or isinstance(sub, dict) for sub in spec.values())


def _parse_range(key: str, spec: dict[str, Any], where: str) -> Range:
    unknown = sorted(set(spec) - _RANGE_KEYS, key=str)
    if unknown:
        guess = nearest(str(unknown[0]), sorted(_RANGE_KEYS))
        hint = f"; did you mean {guess}?" if guess else ""
        raise ConfigError(
            f"{where}: axes.{key}.{unknown[0]}: not a range key (low, high, log, step){hint}"
        )
    missing = [end for end in ("low", "high") if end not in spec]
    if missing:
        raise ConfigError(
            f"{where}: axes.{key}: a range needs low and high; {missing[0]} is missing"
        )
    low, high = spec["low"], spec["high"]
    step, log = spec.get("step"), spec.get("log", False)
    for name, value in (("low", low), ("high", high), ("step", step)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ConfigError(f"{where}: axes.{key}.{name}: expected a number, got {value!r}")
        if value is not None and not math.isfinite(value):  # .inf, .nan: no range to sample
            raise ConfigError(f"{where}: axes.{key}.{name}: expected a finite number, got {value}")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: axes.{key}.log: expected true or false, got {log!r}")
    if low > high:
        raise ConfigError(f"{where}: axes.{key}: low {low} is greater than high {high}")
    if log and low <= 0:
        raise ConfigError(f"{where}: axes.{key}: a log range needs low > 0, got {low}")
    if step is not None and step <= 0:
        raise ConfigError(f"{where}: axes.{key}.step: must be > 0, got {step}")
    if log and step is not None:
        raise ConfigError(f"{where}: axes.{key}: give either log or step, not both")
    if step is not None:
        steps = (high - low) / step
        if abs(steps - round(steps)) > 1e-9 * max(1.0, steps):  # optuna would cut high
            last = low + math.floor(steps + 1e-9) * step
            raise ConfigError(
                f"{where}: axes.{key}: high {high} is not low {low} plus whole steps of {step} "
                f"(the last step ends at {last:g})"
            )
    integer = all(isinstance(v, int) for v in (low, high, step) if v is not None)
    if integer:  # kept whole: a float holds integers exactly only up to 2**53
        return Range(key, low, high, integer, log, step)
    return Range(key, float(low), float(high), integer, log, step)


def _get(data: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        data = data[part]
    return data


def _point_from_preset(space: SearchSpace, name: Any, where: str) -> dict[str, Any]:
    """The axis values of a preset: `{preset: warm_adabatch}` in a space without a preset axis."""
    if name not in PRESETS:
        raise ConfigError(
            f"{where}.preset: unknown preset {name!r}; choose from {', '.join(PRESETS)}"
        )
    config = preset(name).to_dict()
    values: dict[str, Any] = {}

    def walk(axes: tuple[Axis, ...]) -> None:
        for axis in axes:
            if isinstance(axis, Fixed):
                continue
            try:
                value = _get(config, axis.key)
            except (KeyError, TypeError):
                raise ConfigError(f"{where}: preset {name} has no {axis.key}") from None
            values[axis.key] = value
            if isinstance(axis, Choice):
                encoded = [encode(v) for v in axis.values]
                if encode(value) in encoded:
                    walk(axis.given.get(encoded.index(encode(value)), ()))

    walk(space.axes)
    return values


def _parse_points(space: SearchSpace, points: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    parsed = []
    top_keys = {a.key for a in space.axes}
    for i, point in enumerate(points):
        where = f"{space.source}: points[{i}]"
        if PRESET_KEY in point and PRESET_KEY not in top_keys:
            point = {**_point_from_preset(space, point[PRESET_KEY], where), **point}
            point.pop(PRESET_KEY)
        domains = {a.key: a for a in active_axes(space.axes, point)}
        for key, value in point.items():
            axis = domains.get(key)
            if axis is None:
                raise ConfigError(f"{where}.{key}: not an axis of this space (or of its choices)")
            if isinstance(axis, Choice) and encode(value) not in [encode(v) for v in axis.values]:
                raise ConfigError(f"{where}.{key}: {value!r} is not one of the axis' choices")
            if isinstance(axis, Fixed) and not _same(encode(value), encode(axis.value)):
                raise ConfigError(f"{where}.{key}: {value!r} is not the axis' value {axis.value!r}")
            if isinstance(axis, Range) and (why := axis.refuses(value)):
                raise ConfigError(f"{where}.{key}: {value!r} {why}")
        space.config_for(dict(point))
        parsed.append(dict(point))
    return tuple(parsed)


def _parse_constraint(text: str, where: str) -> Constraint:
    match = _CONSTRAINT.match(text)
    if not match:
        raise ConfigError(f"{where}: {text!r}: expected 'METRIC >= NUMBER' or 'METRIC <= NUMBER'")
    metric, op, bound = match.groups()
    if not math.isfinite(float(bound)):
        raise ConfigError(f"{where}: {text!r}: the bound must be a finite number")
    metric = current_metric(metric)
    if metric not in METRICS:
        raise ConfigError(f"{where}: {metric!r} is not a metric; choose from {', '.join(METRICS)}")
    _check_not_test(metric, where)
    return Constraint(metric, op, float(bound))


def _check_one_name_per_metric(given: dict[str, Any], where: str) -> None:
    """A metric under its old name and its new one (params, n_params) would be one key after
    renaming: the last one silently wins."""
    seen: dict[str, str] = {}
    for name in given:
        today = current_metric(name)
        if today in seen:
            raise ConfigError(f"{where}: {seen[today]} and {name} are one metric ({today})")
        seen[today] = name


def _check_not_test(metric: str, where: str) -> None:
    """Selection never sees the test set: it is reported, never optimized or constrained."""
    if metric == "test_accuracy":
        raise ConfigError(
            f"{where}: test_accuracy is reported only (selecting on the test set overfits "
            "it); use val_accuracy"
        )


def _check_axes_mapping(data: dict[str, Any], source: str) -> None:
    """`axes:` left empty (every axis commented out) or `axes: []`: say how a space of no axes
    is written (pydantic's words were "Input should be an object (got None)")."""
    axes = data.get("axes", {})
    if isinstance(axes, dict):
        return
    got = "nothing (null)" if axes is None else repr(axes)
    hint = "; a space of its base config alone: axes: {} (or no axes key)" if not axes else ""
    raise ConfigError(
        f"{source}: axes: expected a mapping of keys to values (KEY: [choices]), got {got}{hint}"
    )


def parse_space(data: Any, source: str) -> SearchSpace:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with name, base, axes, ...; got {data!r}")
    _check_axes_mapping(data, source)
    try:
        spec = _SpaceFile.model_validate_json(json.dumps(data))
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_validation_error(exc, _SpaceFile)}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from None
    _check_one_name_per_metric(spec.objectives, f"{source}: objectives")
    _check_one_name_per_metric(spec.reference_point or {}, f"{source}: reference_point")
    spec = spec.model_copy(  # an old space's metric names, as today's
        update={
            "objectives": current_metrics(spec.objectives),
            "reference_point": spec.reference_point and current_metrics(spec.reference_point),
        }
    )
    if not 2 <= len(spec.objectives) <= 3:
        raise ConfigError(f"{source}: objectives: give 2 or 3 metrics, got {len(spec.objectives)}")
    for metric in spec.objectives:
        if metric not in METRICS:
            raise ConfigError(
                f"{source}: objectives.{metric}: not a metric; choose from {', '.join(METRICS)}"
            )
        _check_not_test(metric, f"{source}: objectives.{metric}")
    if spec.base.get(PRESET_KEY) is not None and spec.base[PRESET_KEY] not in PRESETS:
        raise ConfigError(
            f"{source}: base.preset: unknown preset {spec.base[PRESET_KEY]!r}; "
            f"choose from {', '.join(PRESETS)}"
        )
    # As the file gives them: the JSON round trip above made choice keys strings (1 -> '1')
    given = {str(key): value for key, value in data.get("axes", {}).items()}
    axes = name_params(tuple(_parse_axis(key, value, source) for key, value in given.items()))
    check_one_axis_per_key(axes, source)
    base = spec.base if spec.repeats is None else {**spec.base, "repeats": spec.repeats}
    reference = None
    if spec.reference_point is not None:
        if set(spec.reference_point) != set(spec.objectives):
            raise ConfigError(
                f"{source}: reference_point: give a value for each objective "
                f"({', '.join(spec.objectives)}), got {', '.join(spec.reference_point) or 'none'}"
            )
        reference = tuple(float(spec.reference_point[m]) for m in spec.objectives)
    space = SearchSpace(
        name=spec.name,
        source=source,
        base=base,
        axes=axes,
        points=(),
        objectives=tuple(spec.objectives.items()),
        constraints=tuple(_parse_constraint(c, f"{source}: constraints") for c in spec.constraints),
        n_trials=spec.n_trials,
        description=spec.description,
        raw=data,
        reference_point=reference,
    )
    space.config_for({})  # the base alone must be a valid config
    check_values(space)
    return replace(space, points=_parse_points(space, spec.points))


# --- where spaces come from ------------------------------------------------------------------


def shipped_spaces() -> dict[str, Path]:
    """The spaces installed with the package, by file name."""
    folder = resources.files("dse") / "search_spaces"
    return {p.name: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml")}


def find_space_file(name: str) -> Path:
    """A path as given, else a shipped space of that file name."""
    path = Path(name)
    if path.is_file():
        return path
    if path.is_dir():
        raise ConfigError(f"{option('space')} {name}: is a directory, not a space file")
    shipped = shipped_spaces()
    for candidate in (path.name, f"{path.name}.yaml"):
        if candidate in shipped:
            return shipped[candidate]
    raise ConfigError(
        f"{option('space')} {name}: no such file, "
        f"nor a shipped space ({', '.join(sorted(shipped))})"
    )


def load_space(name: str) -> SearchSpace:
    path = find_space_file(name)
    data = yamlio.load_file(path)
    if data is None:
        raise ConfigError(f"{path}: the file is empty")
    return parse_space(data, str(path))
