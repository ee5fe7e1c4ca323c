"""Checks of a parsed space's axes against the TrialConfig schema, before anything runs: one
axis per key at each level, and every choice and range end a valid config."""

from __future__ import annotations

from typing import Any

from dse.errors import ConfigError
from dse.presets import PRESETS
from dse.space.axes import Axis, Choice, Fixed, Range
from dse.space.model import PRESET_KEY, SearchSpace


def check_one_axis_per_key(
    axes: tuple[Axis, ...], where: str, outer: frozenset[str] = frozenset()
) -> None:
    """A sub-axis may not repeat a key in force beside its choice (a top-level axis, its own
    choice's key): one of the two values would be dropped from every point it meets."""
    here = outer | {axis.key for axis in axes}
    for axis in axes:
        if not isinstance(axis, Choice):
            continue
        for i, sub in axis.given.items():
            clash = next((s.key for s in sub if s.key in here), None)
            if clash is not None:
                raise ConfigError(
                    f"{where}: axes.{axis.key}.{axis.values[i]}.{clash}: {clash} is also an "
                    "axis beside this choice; give it under each choice, or at one level only"
                )
            check_one_axis_per_key(sub, where, here)


def check_values(space: SearchSpace) -> None:
    """Build a config for every choice and range end, so bad values are caught before a run."""

    def walk(axes: tuple[Axis, ...], context: dict[str, Any]) -> None:
        for axis in axes:
            if isinstance(axis, Fixed):
                candidates = [axis.value]
            elif isinstance(axis, Range):
                candidates = (
                    [int(axis.low), int(axis.high)] if axis.integer else [axis.low, axis.high]
                )
            else:
                candidates = list(axis.values)
            for value in candidates:
                if axis.key == PRESET_KEY and value not in PRESETS:
                    raise ConfigError(
                        f"{space.source}: axes.preset: unknown preset {value!r}; "
                        f"choose from {', '.join(PRESETS)}"
                    )
                if isinstance(axis, Range) and not axis.integer:
                    _check_float_range_end(space, axis, context, value)
                else:
                    space.config_for({**context, axis.key: value}, combination=False)
            if isinstance(axis, Choice):
                for i, sub in axis.given.items():
                    walk(sub, {**context, axis.key: axis.values[i]})

    walk(space.axes, {})


def _check_float_range_end(
    space: SearchSpace, axis: Range, context: dict[str, Any], value: float
) -> None:
    """Check a float range's end; a range with a float end or step samples floats: for a key
    that takes integers, say so (the config's own error named only the end, as if 2.0 were
    the mistake)."""
    try:
        space.config_for({**context, axis.key: value}, combination=False)
    except ConfigError:
        if not float(value).is_integer():  # 0.5, or inf: the config's error says it
            raise
        space.config_for({**context, axis.key: int(value)}, combination=False)  # else: as is
        step = f", step {axis.step:g}" if axis.step is not None else ""
        raise ConfigError(
            f"{space.source}: axes.{axis.key}: {axis.key} takes integers, but this range "
            f"(low {axis.low:g}, high {axis.high:g}{step}) gives floats; give low, high and "
            "step as integers"
        ) from None
