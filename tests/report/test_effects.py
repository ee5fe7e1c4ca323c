"""What each choice buys, checked against a hand computation."""

from __future__ import annotations

import math

import pytest

from dse.report.effects import (
    MAX_LEVELS,
    Point,
    effects,
    explained,
    levels,
    most_explaining,
    varied_axes,
)

# Four trials: axis a (x, x, y, y), axis b (1, 2, 1, 2), a sub-axis c set only where a = y,
# and an axis d with a single value. Two objectives, m0 and m1.
POINTS = [
    Point({"a": "x", "b": 1, "d": 4}, (1.0, 10.0)),
    Point({"a": "x", "b": 2, "d": 4}, (3.0, 20.0)),
    Point({"a": "y", "b": 1, "c": 1, "d": 4}, (5.0, 30.0)),
    Point({"a": "y", "b": 2, "c": 2, "d": 4}, (7.0, 60.0)),
]


def by_key(found):
    return {(e.axis, e.level, e.metric): e for e in found}


def test_each_value_against_the_other_trials_with_the_standard_error_of_the_difference():
    found = by_key(effects(POINTS, ["m0", "m1"]))
    # a = x: m0 mean (1 + 3) / 2 = 2 vs (5 + 7) / 2 = 6; both sample variances 2, so the
    # standard error of the difference is sqrt(2/2 + 2/2)
    ax = found["a", "x", "m0"]
    assert (ax.n, ax.n_other, ax.mean, ax.mean_other) == (2, 2, 2.0, 6.0)
    assert ax.difference == -4.0 and ax.stderr == pytest.approx(math.sqrt(2))
    assert found["a", "y", "m0"].difference == 4.0
    # a = x on m1: 15 vs 45, variances 50 and 450: sqrt(50/2 + 450/2)
    ax1 = found["a", "x", "m1"]
    assert ax1.difference == -30.0 and ax1.stderr == pytest.approx(math.sqrt(250))
    # b = 1: (1 + 5) / 2 = 3 vs (3 + 7) / 2 = 5; variances 8 and 8: sqrt(8)
    b1 = found["b", "1", "m0"]
    assert b1.difference == -2.0 and b1.stderr == pytest.approx(math.sqrt(8))


def test_a_sub_axis_is_weighed_among_the_trials_that_set_it_and_one_value_says_nothing():
    found = by_key(effects(POINTS, ["m0", "m1"]))
    c1 = found["c", "1", "m0"]  # trial 2 (5) against trial 3 (7), not against a = x
    assert (c1.n, c1.n_other, c1.difference) == (1, 1, -2.0)
    assert c1.stderr is None  # one trial a side: no variance to take
    assert not any(axis == "d" for axis, _, _ in found)
    assert varied_axes(POINTS) == ["a", "b", "c"]
    # axes by name, levels in order, for each objective
    assert [(e.axis, e.level, e.metric) for e in effects(POINTS, ["m0", "m1"])][:4] == [
        ("a", "x", "m0"),
        ("a", "y", "m0"),
        ("a", "x", "m1"),
        ("a", "y", "m1"),
    ]


def test_the_share_of_variance_an_axis_explains_allows_for_its_number_of_values():
    """Epsilon squared: (between - (levels - 1) * within mean square) / total, at least 0."""
    # m0 mean 4, total sum of squares 9 + 1 + 1 + 9 = 20
    # a: level means 2 and 6, between 16, within 4 over 2 degrees of freedom: (16 - 2) / 20
    assert explained(POINTS, "a") == pytest.approx(14 / 20)
    # b: level means 3 and 5, between 4, within 16 / 2 = 8 a degree: below 0, so 0
    assert explained(POINTS, "b") == 0.0
    # c: levels {5}, {7} and the trials that do not set it {1, 3}: between 1 + 9 + 2 * 4 =
    # 18 (all but 2 of the 20), within 2 over 1 degree, 3 levels: (18 - 2 * 2) / 20. Unadjusted
    # (eta squared) c would explain 18 / 20 against a's 16 / 20, most of it by its groups of one.
    assert explained(POINTS, "c") == pytest.approx(14 / 20)
    assert explained(POINTS, "d") == 0.0
    assert most_explaining(POINTS) == "a"  # a tie: the first by name
    # m1 (mean 30, total 1400): a between 900, within 500 / 2; c between 1350, within 50 / 1
    assert explained(POINTS, "a", index=1) == pytest.approx((900 - 250) / 1400)
    assert explained(POINTS, "c", index=1) == pytest.approx((1350 - 2 * 50) / 1400)
    assert explained(POINTS, "b", index=1) == 0.0  # between 400, within 1000 / 2
    assert most_explaining(POINTS, index=1) == "c"
    assert most_explaining([Point({"d": 4}, (1.0,)), Point({"d": 4}, (2.0,))]) is None


def test_a_value_per_trial_explains_nothing_and_an_axis_that_does_is_chosen():
    """A sampled learning rate gives every trial a value of its own: unadjusted, it would
    explain all the variance of any objective. The decoder, which sets the time, is chosen."""
    sampled = [
        Point({"lr": 0.0011423254155608373, "decoder": "none"}, (0.15,)),
        Point({"lr": 0.0005431, "decoder": "none"}, (0.18,)),
        Point({"lr": 0.0019578897201213002, "decoder": "small"}, (0.41,)),
        Point({"lr": 0.0046262, "decoder": "small"}, (0.35,)),
    ]
    assert explained(sampled, "lr") == 0.0
    assert explained(sampled, "decoder") > 0.9
    assert most_explaining(sampled) == "decoder"
    alone = [Point({"lr": p.params["lr"]}, p.values) for p in sampled]
    assert most_explaining(alone) is None  # nothing to colour by


def test_long_floats_are_labelled_with_the_digits_that_tell_them_apart():
    labels = levels(
        [Point({"lr": v}, (0.0,)) for v in (0.0011423254155608373, 0.00114239, 3.0, 1e-05)],
        "lr",
    ).labels
    assert labels == ("1e-05", "0.0011423", "0.00114239", "3.0")  # 5 digits: 0.0011424 apart
    short = levels([Point({"lr": v}, (0.0,)) for v in (0.0003, 0.001, 0.003)], "lr").labels
    assert short == ("0.0003", "0.001", "0.003")


def test_numbers_sort_as_numbers_and_a_many_valued_numeric_axis_is_split_at_its_median():
    few = levels([Point({"n": v}, (0.0,)) for v in (10, 2, 1)], "n")
    assert few.labels == ("1", "2", "10") and not few.split
    many = [Point({"lr": (i + 1) / 10}, ((i + 1) * 1.0,)) for i in range(MAX_LEVELS + 2)]
    halves = levels(many, "lr")
    assert halves.split and halves.labels == ("≤ 0.55", "> 0.55")
    assert halves.members == ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9))
    assert halves.label_of(7) == "> 0.55" and levels(POINTS, "c").label_of(0) is None
    low, high = effects(many, ["m"])
    assert low.difference == pytest.approx(3.0 - 8.0) and high.difference == 5.0
