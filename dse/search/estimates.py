"""The study's objectives estimated at a rung from a trial's curve so far, for MO-ASHA (moasha.py):
the best validation accuracy so far (moasha.py adds the gain expected after the rung, gains.py),
and the full run's training time.

train_time_s and time_to_best_s are the projected full-run training time: measured epoch
times plus, for each remaining epoch, the mean measured time of epochs with that epoch's batch size
(the TrainingPlan's batch size per epoch). A batch size the trial has not run yet (AdaBatch's
later epochs) takes the time of its nearest measured size (by ratio), scaled by how epoch
time changes between the two sizes in the study's other curves (`size_scale`): the median
ratio over trials that ran both sizes, else the ratio of mean epoch times over all trials,
else 1 (no scaling, which errs long: a larger batch is rarely slower per epoch). Unscaled,
AdaBatch 16 -> 64 was projected 20% long at rung 1 of quick.yaml and lost to fixed batches it
beats at the end. time_to_best_s cannot be known before the end: the whole run is what it
may cost.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence

from dse.search.forms import EpochPoint

ESTIMABLE = ("train_time_s", "time_to_best_s", "val_accuracy")
SizeScale = Callable[[int, int], float]  # (measured, wanted) -> epoch time ratio


def _mean_times(curve: Sequence[EpochPoint]) -> dict[int, float]:
    """Mean epoch time per batch size."""
    by_size: dict[int, list[float]] = {}
    for point in curve:
        by_size.setdefault(point.batch_size, []).append(point.epoch_time_s)
    return {size: sum(times) / len(times) for size, times in by_size.items()}


def size_scale(others: Sequence[Sequence[EpochPoint]], measured: int, wanted: int) -> float:
    """Epoch time at batch `wanted` over epoch time at batch `measured`, from other curves."""
    means = [_mean_times(curve) for curve in others]
    paired = [m[wanted] / m[measured] for m in means if wanted in m and m.get(measured, 0) > 0]
    if paired:
        return statistics.median(paired)
    at = {
        size: [p.epoch_time_s for curve in others for p in curve if p.batch_size == size]
        for size in (measured, wanted)
    }
    if at[measured] and at[wanted] and statistics.fmean(at[measured]) > 0:
        return statistics.fmean(at[wanted]) / statistics.fmean(at[measured])
    return 1.0


def projected_train_time(
    curve: Sequence[EpochPoint],
    batch_sizes: Sequence[int],
    others: Sequence[Sequence[EpochPoint]] = (),
    scale: SizeScale | None = None,
) -> float:
    """Measured training time plus the remaining epochs' estimated times (see the module doc);
    `others` are the study's other curves, for batch sizes this trial has not run yet, and
    `scale` their size_scale, when a caller computes it once for many curves."""
    scale = scale or (lambda measured, wanted: size_scale(others, measured, wanted))
    mean = _mean_times(curve)
    estimate = dict(mean)  # plus each unrun size, estimated once from the measured ones
    total = sum(point.epoch_time_s for point in curve)
    for size in batch_sizes[len(curve) :]:
        if size not in estimate:
            nearest = min(mean, key=lambda m: (abs(math.log(m / size)), m))
            estimate[size] = mean[nearest] * scale(nearest, size)
        total += estimate[size]
    return total


def rung_values(
    metric_names: Sequence[str],
    curve: Sequence[EpochPoint],
    batch_sizes: Sequence[int],
    others: Sequence[Sequence[EpochPoint]] = (),
    scale: SizeScale | None = None,
) -> tuple[float, ...]:
    """The study's objectives estimated after the epochs in `curve` (`others`, `scale`: as
    projected_train_time's)."""
    values = []
    for metric in metric_names:
        if metric == "val_accuracy":
            values.append(max(point.val_accuracy for point in curve))
        elif metric in ("train_time_s", "time_to_best_s"):
            values.append(projected_train_time(curve, batch_sizes, others, scale))
        else:
            raise ValueError(f"{metric} cannot be estimated at a rung")
    return tuple(values)
