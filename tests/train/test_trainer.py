from __future__ import annotations

import dataclasses
import platform
import time

import pytest
import torch

from dse.config import TrialConfig
from dse.errors import ConfigError
from dse.model import build_model, kernel_choice, summarize
from dse.train.clock import StepsClock
from dse.train.result import TrialResult
from dse.train.schedules import make_plan
from dse.train.trainer import Observer, resolve_device, train
from tests.conftest import REAL_MNIST, tiny_config


def test_records_every_metric(digits_root):
    config = tiny_config("epochs=3", "optimizer.lr=3e-3")
    result = train(config, data_dir=digits_root)
    assert [r.epoch for r in result.history] == [1, 2, 3]
    assert result.train_time_s == pytest.approx(sum(r.epoch_time_s for r in result.history))
    best = max(result.history, key=lambda r: r.val_accuracy)
    assert result.val_accuracy == best.val_accuracy and result.best_epoch == best.epoch
    assert result.time_to_best_s == pytest.approx(
        sum(r.epoch_time_s for r in result.history[: best.epoch])
    )
    model = build_model(config.model, (1, 28, 28), 10)
    summary = summarize(model)
    assert result.n_params == summary.params
    assert result.train_gflops == pytest.approx(3 * summary.flops_per_sample * 500 * 3 / 1e9)
    assert result.peak_mem_mb > 0 and 0 <= result.test_accuracy <= 1
    assert result.history[-1].train_loss < result.history[0].train_loss  # it learns
    assert set(result.history[0].loss_parts) == {"margin", "reconstruction"}
    env = result.environment
    assert env["device"] == "cpu" and env["torch"] == torch.__version__ and env["seed"] == 0
    assert env["threads"] == torch.get_num_threads()
    assert env["denormals_flushed"] is (platform.machine() in ("x86_64", "AMD64"))
    assert TrialConfig.from_dict(result.config) == config
    assert TrialResult.from_dict(result.to_dict()) == result


def test_train_time_leaves_out_evaluation_and_time_to_best_ends_at_the_best_epoch(
    digits_root, monkeypatch
):
    """SPEC "What every trial records": train_time_s counts the training steps "without
    evaluation"; time_to_best_s is the training time up to the best validation epoch (here
    epoch 2 of 3, so it differs from train_time_s)."""
    pause = 0.2
    val_accuracies = iter([0.5, 0.9, 0.7, 0.3])  # three epochs, then the test split

    def slow_evaluate(*_args) -> float:
        time.sleep(pause)
        return next(val_accuracies)

    class SlowObserver(Observer):
        def on_epoch(self, record, elapsed_train_s):
            time.sleep(pause)

    monkeypatch.setattr("dse.train.trainer.evaluate", slow_evaluate)
    start = time.perf_counter()
    result = train(tiny_config("epochs=3"), data_dir=digits_root, observer=SlowObserver())
    wall = time.perf_counter() - start
    assert wall - result.train_time_s >= 7 * pause  # 4 evaluations and 3 epoch reports
    assert result.train_time_s == pytest.approx(sum(r.epoch_time_s for r in result.history))
    assert (result.best_epoch, result.val_accuracy, result.test_accuracy) == (2, 0.9, 0.3)
    times = [r.epoch_time_s for r in result.history]
    assert result.time_to_best_s == pytest.approx(times[0] + times[1])
    assert result.time_to_best_s < result.train_time_s


@pytest.mark.skipif(platform.system() != "Linux", reason="the peak is reset through /proc")
def test_peak_memory_is_the_runs_own_not_an_earlier_runs(digits_root, one_thread):
    # A worker trains trial after trial in one process: a small trial after a large one read
    # the process's peak resident set, the large one's (862 MB against 385 MB run first).
    small = tiny_config("dataset.train_subset=200", "model.decoder=none")
    large = tiny_config(
        "dataset.train_subset=200", "model.primary_types=32", "model.class_dim=16"
    ).with_overrides(["batch_schedule.batch_size=200", "eval_batch_size=200"])
    first = train(small, data_dir=digits_root).peak_mem_mb
    peak = train(large, data_dir=digits_root).peak_mem_mb
    again = train(small, data_dir=digits_root).peak_mem_mb
    assert peak > first + 100
    assert again < peak - 100


def test_history_follows_the_batch_and_lr_schedule(digits_root):
    config = tiny_config(
        "epochs=3",
        "batch_schedule.name=adabatch",
        "batch_schedule.batch_size=25",
        "batch_schedule.milestones=[[1, 100]]",
        "lr_policy.name=warm_adabatch",
    )
    result = train(config, data_dir=digits_root)
    assert [(r.batch_size, r.steps) for r in result.history] == [(25, 20), (100, 5), (100, 5)]
    plan = make_plan(config, 500)
    assert [r.lr_first for r in result.history] == [
        plan.lr(0, 0, 0),
        plan.lr(20, 1, 0),
        plan.lr(25, 2, 0),
    ]
    assert result.history[0].lr_first == result.history[1].lr_first == pytest.approx(1e-2)


def test_checkpoint_holds_config_and_best_weights(digits_root, tmp_path):
    config = tiny_config("epochs=2")
    result = train(config, data_dir=digits_root, checkpoint=tmp_path / "m.pt")
    saved = torch.load(tmp_path / "m.pt", weights_only=True)
    assert TrialConfig.from_dict(saved["config"]) == config
    assert saved["result"]["test_accuracy"] == result.test_accuracy
    model = build_model(config.model, (1, 28, 28), 10)
    model.load_state_dict(saved["state_dict"])
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    "sets",
    [
        ("model.name=cnn_baseline",),
        ("precision=bf16",),
        ("model.weight_sharing=per_type", "model.decoder=small"),
        ("model.squash=approx", "model.decoder=none", "dataset.augment=false"),
    ],
)
def test_variants_train(digits_root, sets):
    result = train(tiny_config(*sets), data_dir=digits_root)
    assert (
        0 <= result.val_accuracy <= 1
        and result.history[0].train_loss == result.history[0].train_loss
    )


def test_an_observer_can_stop_the_run(digits_root):
    class Stop(Exception):
        pass

    class StopAfterFirst(Observer):
        def on_epoch(self, record, elapsed_train_s):
            assert elapsed_train_s == record.epoch_time_s
            raise Stop

    with pytest.raises(Stop):
        train(tiny_config("epochs=3"), data_dir=digits_root, observer=StopAfterFirst())


def test_a_stop_request_ends_training_at_the_epoch_boundary(digits_root):
    class StopAfterSecond(Observer):
        def __init__(self):
            self.epochs = 0

        def on_epoch(self, record, elapsed_train_s):
            self.epochs = record.epoch

        def should_stop(self):
            return self.epochs == 2

    observer = StopAfterSecond()
    result = train(tiny_config("epochs=4"), data_dir=digits_root, observer=observer)
    assert result.stopped_at == 2 and [r.epoch for r in result.history] == [1, 2]
    assert result.train_time_s == pytest.approx(sum(r.epoch_time_s for r in result.history))
    assert result.val_accuracy == max(r.val_accuracy for r in result.history)
    assert 0 <= result.test_accuracy <= 1  # of the best weights so far
    full = train(tiny_config("epochs=2"), data_dir=digits_root, observer=StopAfterSecond())
    assert full.stopped_at is None  # a stop after the last epoch stops nothing


def test_unknown_devices_are_config_errors():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="expected cpu, cuda or cuda:N"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(
            ConfigError, match=r"device cuda:0: no such GPU \(0 CUDA devices visible\)"
        ):
            resolve_device("cuda:0")


@pytest.mark.slow
@pytest.mark.skipif(not REAL_MNIST.is_dir(), reason="real MNIST not in ../shared/data")
def test_learns_real_mnist(monkeypatch):
    """Two epochs on 3,000 real MNIST digits with a small CapsNet."""
    monkeypatch.setenv("DSE_DATA_DIR", str(REAL_MNIST.parent))
    config = tiny_config(
        "epochs=2",
        "dataset.train_subset=3000",
        "dataset.val_size=1000",
        "dataset.test_subset=1000",
        "model.conv_channels=32",
        "model.primary_types=8",
        "model.primary_dim=8",
        "model.class_dim=16",
        "batch_schedule.batch_size=32",
        "lr_policy.name=exp_decay",
    )
    result = train(config)
    assert result.val_accuracy >= 0.9 and result.test_accuracy >= 0.9
    assert dataclasses.asdict(result.history[0])["steps"] == 94


def test_the_step_clock_leaves_out_kernel_timing():
    """Timing kernels for this machine (once per shape) is set-up, not the trial's training.
    Checked by what the timing must hold and what the clock must leave out, not by the wall
    time outside them (reading the choices file: 20 ms beside a busy torch, over a 10 ms
    tolerance this had)."""
    clock = StepsClock(torch.device("cpu"))
    before = kernel_choice.timing_seconds()
    start = time.perf_counter()

    def candidates():
        return {"slow": lambda: time.sleep(0.05), "fast": lambda: None}

    def since_clock_started() -> float:
        return time.perf_counter() - clock.start

    assert kernel_choice.choose("step clock test", ("slow", "fast"), candidates) == "fast"
    wall = time.perf_counter() - start
    timed = kernel_choice.timing_seconds() - before
    slow_calls = 0.05 * (1 + kernel_choice.TIMED_CALLS)  # its warm-up and timed calls
    assert slow_calls <= timed <= wall  # the candidates' runs, within the call
    assert 0 <= clock.seconds() <= since_clock_started() - timed  # all of it left out
    time.sleep(0.05)  # a recorded choice is not timed again: the clock runs on
    assert kernel_choice.choose("step clock test", ("slow", "fast"), candidates) == "fast"
    assert kernel_choice.timing_seconds() - before == timed
    assert 0.05 <= clock.seconds() <= since_clock_started() - timed
