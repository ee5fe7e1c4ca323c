"""config compile: true: the training step under torch.compile, its compile seconds kept out
of the training time and reported apart."""

from __future__ import annotations

import time

import pytest
import torch

from dse.model import build_model
from dse.train.clock import StepsClock
from dse.train.compiled import compile_seconds, forward_loss
from dse.train.trainer import train
from tests.conftest import tiny_config


def test_compile_seconds_count_each_compilation_once():
    before = compile_seconds()
    double = torch.compile(lambda x: x.sin() * 2 + 1)
    x = torch.linspace(0, 1, 5)
    assert torch.allclose(double(x), x.sin() * 2 + 1)
    compiled = compile_seconds()
    assert compiled > before  # the first call compiled
    double(x + 1)
    assert compile_seconds() == compiled  # same shape: no compilation


def test_the_step_clock_leaves_out_compiling():
    clock = StepsClock(torch.device("cpu"))
    torch.compile(lambda x: x.cos() - x)(torch.ones(7))
    assert clock.compiled_seconds() > 0
    assert 0 <= clock.seconds() < 0.05 + 0.1 * clock.compiled_seconds()


def test_forward_loss_compiles_only_on_request():
    config = tiny_config()
    model = build_model(config.model, (1, 28, 28), 10)
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    eager = forward_loss(model, config, torch.device("cpu"))
    assert set(eager(x, y)) == {"loss", "margin", "reconstruction"}
    assert not hasattr(eager, "_torchdynamo_orig_callable")
    config = config.with_overrides(["compile=true"])
    compiled = forward_loss(model, config, torch.device("cpu"), batch_sizes=(4,))
    got, want = compiled(x, y), eager(x, y)
    assert torch.allclose(got["loss"], want["loss"], rtol=1e-5)
    # A batch of another size (an epoch's smaller last one) runs eagerly: nothing compiles.
    before = compile_seconds()
    assert torch.equal(compiled(x[:3], y[:3])["loss"], eager(x[:3], y[:3])["loss"])
    assert compile_seconds() == before


def test_a_compiled_trial_reports_its_compile_time_apart(digits_root):
    # Batch 70 leaves a smaller last batch (500 / 70), which runs eagerly.
    sets = ("epochs=2", "batch_schedule.batch_size=70", "optimizer.lr=3e-3")
    eager = train(tiny_config(*sets), data_dir=digits_root)
    start = time.perf_counter()
    compiled = train(tiny_config(*sets, "compile=true"), data_dir=digits_root)
    wall = time.perf_counter() - start
    assert eager.compile_s == 0.0 and compiled.compile_s > 0.0
    assert compiled.config["compile"] is True
    # The first epoch compiled; its seconds are its own, apart from its training time.
    assert compiled.history[0].compile_s == compiled.compile_s > 0
    assert compiled.history[1].compile_s == 0.0
    assert compiled.train_time_s == pytest.approx(sum(r.epoch_time_s for r in compiled.history))
    assert wall >= compiled.train_time_s + compiled.compile_s
    # Same seed, same data order: the compiled step computes the same losses up to rounding.
    for a, b in zip(eager.history, compiled.history, strict=True):
        assert b.train_loss == pytest.approx(a.train_loss, rel=1e-3)
    assert abs(compiled.val_accuracy - eager.val_accuracy) <= 0.02


def test_compile_seconds_still_count_after_a_reset():
    compile_seconds()
    torch.compiler.reset()  # clears dynamo's callbacks (dse bench resets before compiling)
    before = compile_seconds()
    torch.compile(lambda x: x.tan() + 3)(torch.ones(2))
    assert compile_seconds() > before
