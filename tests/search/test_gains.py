"""The accuracy gain a trial can still make after a rung, learned from complete trials (exact
numbers of the one-hot ridge fit), and what it changes in MO-ASHA's decisions."""

from __future__ import annotations

import pytest

from dse.search.early_stop import EarlyStop
from dse.search.gains import MAX_LEVELS, Finished, GainModel
from dse.search.moasha import EpochPoint, Peer, RungBook

TIME_ACC = ["minimize", "maximize"]


def test_no_complete_trial_past_the_rung_expects_no_gain():
    assert GainModel(1, [], [{"lr": "a"}]).gain({"lr": "a"}, 0.5) == 0.0
    ended_at_the_rung = [Finished({"lr": "a"}, [0.3])]
    assert GainModel(1, ended_at_the_rung, [{"lr": "a"}]).gain({"lr": "a"}, 0.5) == 0.0
    # a curve with a value that is not a number tells nothing (and spoils no one's estimate)
    broken = [Finished({"lr": "a"}, [0.3, float("nan")]), Finished({"lr": "b"}, [0.3, 0.5])]
    assert GainModel(1, broken, []).gain({"lr": "a"}, 0.5) == pytest.approx(0.2)


def test_effects_are_pulled_towards_the_mean_by_the_ridge():
    """Two trials, gains 0.2 (lr a) and 0.4 (lr b) after epoch 1. Solved by hand: mean 0.3,
    effects -0.05 and +0.05 (one trial moves an effect halfway); a value no complete trial has
    gets the mean."""
    done = [Finished({"lr": "a"}, [0.5, 0.7]), Finished({"lr": "b"}, [0.2, 0.5, 0.6])]
    model = GainModel(1, done, [{"lr": "c"}])
    assert model.gain({"lr": "a"}, 0.5) == pytest.approx(0.25)
    assert model.gain({"lr": "b"}, 0.5) == pytest.approx(0.35)
    assert model.gain({"lr": "c"}, 0.5) == pytest.approx(0.30)
    # after epoch 2 only b's run went on (0.1 more); a's ended there and says nothing
    assert GainModel(2, done, []).gain({"lr": "a"}, 0.5) == pytest.approx(0.1)


def test_effects_add_up_over_parameters():
    """Gains made of two additive effects (policy: +0.3 for slow starters; decoder: none) are
    told apart once enough trials share each value."""
    done = []
    for policy, gain in (("constant", 0.1), ("one_cycle", 0.4)):
        for decoder in ("small", "none"):
            done += [Finished({"policy": policy, "decoder": decoder}, [0.5, 0.5 + gain])] * 20
    model = GainModel(1, done, [])
    assert model.gain({"policy": "one_cycle", "decoder": "none"}, 0.5) == pytest.approx(
        0.4, abs=0.005
    )
    assert model.gain({"policy": "constant", "decoder": "small"}, 0.5) == pytest.approx(
        0.1, abs=0.005
    )


def test_a_gain_stays_between_nothing_and_a_perfect_score():
    done = [Finished({"lr": "a"}, [0.1, 0.9])] * 5
    model = GainModel(1, done, [])
    assert model.gain({"lr": "a"}, 0.5) == pytest.approx(0.5)  # not 1.3
    assert model.gain({"lr": "a"}, 1.0) == 0.0
    falling = [Finished({"lr": "a"}, [0.9, 0.8])]  # best so far stays the best: gain 0
    assert GainModel(1, falling, []).gain({"lr": "a"}, 0.9) == 0.0


def test_a_sampled_parameter_is_not_a_factor():
    """Continuous values never repeat: past MAX_LEVELS distinct values the parameter is left
    out; with nothing left, no gain (the mean for everyone would only crowd the best at 1.0)."""
    done = [Finished({"lr": 0.001 * (i + 1)}, [0.5, 0.5 + 0.01 * i]) for i in range(MAX_LEVELS)]
    assert GainModel(1, done, [{"lr": 0.5}]).gain({"lr": 0.001}, 0.5) == 0.0
    fewer = GainModel(1, done, [])  # 32 levels: still a factor
    assert 0 < fewer.gain({"lr": 0.001}, 0.5) < fewer.gain({"lr": 0.032}, 0.5)
    mixed = [
        Finished({**f.params, "decoder": ("small", "none")[i % 2]}, f.accuracies)
        for i, f in enumerate(done)
    ]
    model = GainModel(1, mixed, [{"lr": 0.5, "decoder": "none"}])  # lr left out, decoder kept
    none = [0.01 * i for i in range(1, MAX_LEVELS, 2)]
    assert model.gain({"lr": 0.5, "decoder": "none"}, 0.5) == pytest.approx(
        sum(none) / len(none), abs=0.01
    )


def _curve(epoch_time: float, accuracies: list[float]) -> list[EpochPoint]:
    return [EpochPoint(e, 64, epoch_time, epoch_time * e, a) for e, a in enumerate(accuracies, 1)]


def test_a_slow_starter_goes_on_once_a_complete_one_like_it_showed_its_end():
    """efficiency_policies' case: one-cycle trails constant LR after epoch 1 and finishes ahead.
    Judged by its first epoch, a one-cycle newcomer is dominated by the constant-LR trial of the
    same speed and is stopped; once a complete one-cycle trial (with another decoder) showed its
    late gain, the newcomer is expected to finish ahead and goes on. Every record at the rung is
    estimated the same way: its accuracy at the rung plus the model's gain for its parameters."""
    book = RungBook(EarlyStop((1, 3), 3.0), ["train_time_s", "val_accuracy"], TIME_ACC)
    sizes = (64,) * 4

    def peer(number, epoch_time, policy, decoder, accuracies):
        params = {"policy": policy, "decoder": decoder}
        return Peer(number, _curve(epoch_time, accuracies), sizes, params, complete=True)

    constant = peer(0, 1.0, "constant", "small", [0.77, 0.93, 0.95, 0.96])
    fast = peer(1, 0.5, "constant", "none", [0.70, 0.85, 0.88, 0.89])
    params = {"policy": "one_cycle", "decoder": "none"}
    curve = _curve(1.0, [0.73])
    alone = book.rank(1, 9, curve, sizes, [constant, fast], params)
    assert alone.values == pytest.approx((4.0, 0.73 + 0.19))  # both complete ones gained 0.19
    assert (alone.proceed, alone.position, alone.of) == (False, 3, 3)

    shown = peer(2, 1.5, "one_cycle", "small", [0.65, 0.94, 0.97, 0.98])
    told = book.rank(1, 9, curve, sizes, [constant, fast, shown], params)
    done = [Finished(p.params, [e.val_accuracy for e in p.curve]) for p in (constant, fast, shown)]
    gains = GainModel(1, done, [params])
    assert told.values == pytest.approx((4.0, 0.73 + gains.gain(params, 0.73)))
    assert told.values[1] > 0.77 + gains.gain(constant.params, 0.77)  # ahead at the same time
    assert (told.proceed, told.position, told.of) == (True, 2, 4)  # 2nd to the fastest
