"""Where MO-ASHA decides: the rungs a run waits at, eta, and which rungs are a run's last
chance (late, last)."""

from __future__ import annotations

import pytest

from dse.errors import ConfigError
from dse.search.early_stop import EarlyStop, halving_rungs, parse_rungs


def test_settings_are_checked():
    assert parse_rungs("1,3,9") == (1, 3, 9)
    for bad in ("1,x", "3,1", "0,2", "1,1"):
        with pytest.raises(ConfigError, match="^rungs"):
            parse_rungs(bad)
    with pytest.raises(ConfigError, match="objectives.n_params: early_stop moasha cannot"):
        EarlyStop().check(["train_time_s", "n_params"], "s.yaml")
    assert EarlyStop((1, 3, 9)).decides_at(3, 9) and not EarlyStop((1, 3, 9)).decides_at(9, 9)


def test_default_rungs_are_successive_halvings_for_the_run():
    """Without --rungs: 1, eta, eta^2 ... each while eta times it fits in the run."""
    default = EarlyStop()
    assert [default.rungs_for(e) for e in (2, 3, 8, 9, 16, 26, 27, 80, 81)] == [
        (), (1,), (1,), (1, 3), (1, 3), (1, 3), (1, 3, 9), (1, 3, 9), (1, 3, 9, 27)
    ]  # fmt: skip
    assert halving_rungs(16, 2) == (1, 2, 4, 8) and halving_rungs(16, 2.5) == (1, 2, 6)
    assert halving_rungs(10, 4) == (1,)
    assert default.decides_at(3, 16) and not default.decides_at(9, 16)
    assert EarlyStop((1, 3, 9)).rungs_for(16) == (1, 3, 9)  # given rungs stay as given
    assert default.describe(16) == "1,3 (successive halving's for 16 epochs)"
    assert EarlyStop((1, 3, 9)).describe(16) == "1,3,9"


def test_a_rung_is_late_where_stopping_saves_little_and_last_before_the_end():
    stop = EarlyStop((1, 3, 9), 3.0)
    assert stop.late(9, 10) and not stop.late(9, 16) and not stop.late(3, 10)
    assert stop.last(9, 10) and stop.last(9, 16) and not stop.last(3, 16)
    assert stop.last(3, 9) and not stop.last(9, 9)  # rung 9 of 9 epochs is no rung
    default = EarlyStop()
    assert default.last(3, 10) and not default.last(1, 10) and default.last(1, 8)
    assert not default.last(1, 2)  # a 2-epoch run has no rung
