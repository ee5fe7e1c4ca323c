"""repeats: one trial trains k seeds; the metrics are their means, each seed's values kept.
(Three or more seeds of a CapsNet train fused after the first: tests/train/test_fused.py.)"""

from dataclasses import replace

import numpy as np
import pytest

from dse.train.result import TrialResult
from dse.train.seeds import train_seeds
from dse.train.trainer import train
from tests.conftest import tiny_config
from tests.search.test_messages import RESULT


def test_repeats_train_consecutive_seeds_and_report_means(digits_root):
    result = train_seeds(tiny_config("repeats=2", "seed=5"), "cpu", digits_root)
    assert [s["seed"] for s in result.per_seed] == [5, 6]
    accuracy = [s["val_accuracy"] for s in result.per_seed]
    assert result.val_accuracy == pytest.approx(np.mean(accuracy))
    assert result.seed_std["val_accuracy"] == pytest.approx(np.std(accuracy, ddof=1))
    times = [s["train_time_s"] for s in result.per_seed]
    assert result.train_time_s == pytest.approx(np.mean(times))
    assert result.config["repeats"] == 2 and result.config["seed"] == 5
    # Each seed is the plain run of that seed (same CPU, same numbers).
    single = train(tiny_config("seed=6"), "cpu", digits_root)
    assert single.val_accuracy == result.per_seed[1]["val_accuracy"]
    assert single.test_accuracy == result.per_seed[1]["test_accuracy"]
    assert not single.per_seed and not single.seed_std


def test_train_refuses_a_repeats_config():
    with pytest.raises(ValueError, match="train_seeds"):
        train(tiny_config("repeats=2"))


def test_the_seeds_compile_seconds_add_up():
    """Each seed compiles (the first of a shape) or loads compiled code: all of it is set-up."""
    seeds = [replace(RESULT, config={"seed": s}, compile_s=t) for s, t in ((0, 4.0), (1, 1.5))]
    assert TrialResult.mean_of(seeds, {"seed": 0, "repeats": 2}).compile_s == 5.5
