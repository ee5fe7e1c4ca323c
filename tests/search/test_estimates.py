"""A trial's objectives estimated at a rung: the projected training time follows the batch
schedule, and batch sizes not run yet are scaled by the study's other curves."""

from __future__ import annotations

import pytest

from dse.search.estimates import projected_train_time, rung_values
from dse.search.forms import EpochPoint


def _points(times: list[float], batches: list[int], accuracy: list[float]) -> list[EpochPoint]:
    elapsed, points = 0.0, []
    for e, (t, b, a) in enumerate(zip(times, batches, accuracy, strict=True), start=1):
        elapsed += t
        points.append(EpochPoint(e, b, t, elapsed, a))
    return points


def test_projected_time_follows_the_batch_schedule():
    plan = [16, 16, 16, 64, 64]  # adabatch: batch 16 for 3 epochs, then 64
    early = _points([10, 12], [16, 16], [0.5, 0.6])
    # epoch 3 at batch 16: 11 (the mean); epochs 4-5 at 64, not measured yet: 16's time
    assert projected_train_time(early, plan) == pytest.approx(22 + 11 + 11 + 11)
    late = _points([10, 12, 11, 4], [16, 16, 16, 64], [0.5, 0.6, 0.7, 0.8])
    assert projected_train_time(late, plan) == pytest.approx(37 + 4)
    assert projected_train_time(late[:5], plan[:4]) == pytest.approx(37)  # nothing left
    values = rung_values(["time_to_best_s", "val_accuracy", "train_time_s"], late[:2], plan)
    assert values == pytest.approx((55, 0.6, 55))
    dipped = _points([1, 1], [8, 8], [0.7, 0.6])
    assert rung_values(["val_accuracy"], dipped, [8] * 4) == (0.7,)  # the best so far


def test_a_batch_size_not_run_yet_is_scaled_by_the_studys_other_curves():
    plan = [16, 16, 16, 64, 64]
    early = _points([10, 12], [16, 16], [0.5, 0.6])
    # trials that ran both sizes: the median of their ratios (0.4, 0.5, 0.9 -> 0.5)
    paired = [
        _points([10, 10, 4], [16, 16, 64], [0.1] * 3),
        _points([8, 4], [16, 64], [0.1] * 2),
        _points([10, 9], [16, 64], [0.1] * 2),
        _points([3, 3], [128, 128], [0.1] * 2),  # other sizes: no say
    ]
    assert projected_train_time(early, plan, paired) == pytest.approx(22 + 11 + 2 * 11 * 0.5)
    # nobody ran both: the ratio of mean epoch times at each size over all curves (3 / 12)
    unpaired = [_points([12, 12], [16, 16], [0.1] * 2), _points([2, 4], [64, 64], [0.1] * 2)]
    assert projected_train_time(early, plan, unpaired) == pytest.approx(22 + 11 + 2 * 11 * 0.25)
    values = rung_values(["val_accuracy", "train_time_s"], early, plan, unpaired)
    assert values == pytest.approx((0.6, 38.5))
    # nobody ran 64 at all: unscaled, as without other curves
    alone = [_points([12], [16], [0.1])]
    assert projected_train_time(early, plan, alone) == projected_train_time(early, plan)


def test_nearest_measured_batch_size_by_ratio():
    points = _points([8, 2], [16, 128], [0.1, 0.2])
    assert projected_train_time(points, [16, 128, 32]) == pytest.approx(10 + 8)  # 32 nearer 16
    assert projected_train_time(points, [16, 128, 100]) == pytest.approx(10 + 2)
