"""What a trial's validation accuracy still gains after a rung, learned from the study's complete
trials: MO-ASHA's accuracy estimate at a rung (moasha.py) is the best accuracy so far plus this.

The best accuracy so far says how a run starts, not how it ends: on efficiency_policies.yaml a
one-cycle LR trails the constant LR while it warms up (0.734 against 0.766 after epoch 1 with
AdaBatch) and finishes ahead (0.968 against 0.961), and with a fixed batch of 64 every trial is
at chance after epoch 1 (0.108) whatever it reaches at the end. Ranked by what it has so far, a
trial that starts slow is stopped before it shows what it is worth.

The model: each complete trial's gain after the rung (its best accuracy over the whole run less
its best up to the rung) is fitted as a sum of per-parameter-value effects plus a mean (one-hot
ridge regression, `RIDGE` pulling an effect seen in few trials towards the mean), and a trial's
expected gain is the fit at its parameter values. A value no complete trial has contributes
nothing; with no complete trial the gain is 0 (the plain MO-ASHA estimate). Parameters with more
than `MAX_LEVELS` distinct values among the trials (continuous ones, sampled) are left out: a
value seen once says nothing about another; with no parameter left the gain is 0 (one mean gain
for every trial would change no order, only crowd the best at the 1.0 a gain is clipped to).

A complete trial is ranked at a rung by the same estimate as the others (its accuracy at the rung
plus the fitted gain), not by its known end: a fit pulled towards the mean errs alike for every
trial, an end known exactly beside estimates does not. In replay on efficiency_policies' record
(30 seeds, 2 workers, rungs 1,3,9, eta 3) MO-ASHA read 0.961 [0.938, 0.984] of the grid's
hypervolume at 0.354 of its training seconds this way, 0.963 [0.940, 0.985] at 0.381 with
complete trials at their known end; RIDGE 0.3 read 0.943 at 0.355, 3 read 0.921 at 0.339.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

RIDGE = 1.0  # the penalty on each effect: one trial with a value moves its effect halfway
MAX_LEVELS = 32  # a parameter with more distinct values is not a factor the model learns


@dataclass(frozen=True)
class Finished:
    """A complete trial as the model reads it: its parameters and its accuracy per epoch."""

    params: Mapping[str, Any]
    accuracies: Sequence[float]


def _level(value: Any) -> str:
    """A parameter's value as a level's name (lists and dicts as their JSON)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return f"{type(value).__name__}:{value!r}"  # many calls per decision: no JSON encoder
    return json.dumps(value, sort_keys=True, default=str)


class GainModel:
    """Expected accuracy gain after `rung`, fitted on the complete trials that ran past it."""

    def __init__(self, rung: int, finished: Sequence[Finished], queried: Sequence[Mapping]):
        """`queried`: the parameters the model will be asked about (their values count towards
        a parameter's levels, so a sampled parameter is left out as soon as it is one)."""
        past = [f for f in finished if len(f.accuracies) > rung and np.isfinite(f.accuracies).all()]
        self.weights: np.ndarray | None = None
        self.columns: list[tuple[str, str]] = []
        if not past:
            return
        levels: dict[str, set[str]] = {}
        for params in [f.params for f in past] + list(queried):
            for name, value in params.items():
                levels.setdefault(name, set()).add(_level(value))
        self.columns = [
            (name, level)
            for name in sorted(levels)
            if len(levels[name]) <= MAX_LEVELS
            for level in sorted(levels[name])
        ]
        if not self.columns:
            return  # the mean alone would lift every trial alike: no gain changes no order
        x = np.array([self._features(f.params) for f in past])
        y = np.array([max(f.accuracies) - max(f.accuracies[:rung]) for f in past])
        penalty = np.full(x.shape[1], RIDGE)
        penalty[0] = 0.0  # the mean is not pulled anywhere
        self.weights = np.linalg.solve(x.T @ x + np.diag(penalty), x.T @ y)

    def _features(self, params: Mapping[str, Any]) -> list[float]:
        levels = {name: _level(value) for name, value in params.items()}
        return [1.0] + [1.0 if levels.get(name) == level else 0.0 for name, level in self.columns]

    def gain(self, params: Mapping[str, Any], best_so_far: float) -> float:
        """The expected gain, between 0 (a best so far is a floor) and what is left up to 1."""
        if self.weights is None:
            return 0.0
        fitted = float(np.array(self._features(params)) @ self.weights)
        return min(max(fitted, 0.0), max(1.0 - best_so_far, 0.0))
