"""Fused seeds (dse.train.fused): seeds 1..K-1 of a repeats=K trial train as one model, each
as its standalone run would, and the trial still reports one standalone run's costs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from dse.config import TrialConfig
from dse.data.datasets import load_dataset
from dse.errors import ConfigError
from dse.model import build_model
from dse.model.stacked import StackedCapsNet
from dse.train import seeds
from dse.train.faults import FAULT_KILL_ENV
from dse.train.resume import ResumeFile, read_state
from dse.train.seeds import train_seeds
from dse.train.trainer import train
from tests.conftest import REAL_MNIST, subprocess_env, tiny_config, without_times

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def fused_on_cpu(monkeypatch):
    """Fuse here too (by default seeds fuse on CUDA only: seeds.FUSE_ENV)."""
    monkeypatch.setenv(seeds.FUSE_ENV, "1")


# The LR follows the global step, the batch size changes at epoch 2, crops are random.
SCHEDULED = (
    "epochs=2",
    "lr_policy.name=exp_decay",
    "lr_policy.decay_steps=3",
    "batch_schedule.name=adabatch",
    "batch_schedule.milestones=[[1, 100]]",
)


def _final_weights(config: TrialConfig, digits_root, path) -> dict[str, torch.Tensor]:
    train_seeds(config, data_dir=digits_root, resume=ResumeFile(path, keep=True))
    return read_state(path).model


def _worst_difference(config: TrialConfig, digits_root, tmp_path) -> tuple[float, float]:
    """Seeds 1 and 2 of `config` (repeats=3) trained fused against each trained alone: the
    largest relative difference of a weight tensor, |fused - alone| / |alone| (norms), and of
    an element (the largest element's difference over the tensor's largest element: Adam
    divides by |gradient|, so an element whose gradient is near zero turns a rounding
    difference into a visible step)."""
    fused_state = _final_weights(config, digits_root, tmp_path / "fused.pt")
    data = load_dataset(config.dataset, torch.device("cpu"), digits_root)
    model = build_model(config.model, data.input_shape, data.info.n_classes)
    stacked = StackedCapsNet([model, model])
    stacked.load_state_dict(fused_state)
    worst, worst_element = 0.0, 0.0
    for k, seed in enumerate((config.seed + 1, config.seed + 2)):
        alone = config.with_overrides([f"seed={seed}", "repeats=1"])
        own = _final_weights(alone, digits_root, tmp_path / f"seed{seed}.pt")
        fused = stacked.state_of(k)
        for name, value in own.items():
            difference = fused[name] - value
            worst = max(worst, float(difference.norm() / value.norm().clamp_min(1e-12)))
            element = difference.abs().max() / value.abs().max().clamp_min(1e-12)
            worst_element = max(worst_element, float(element))
    print(f"weights: relative difference {worst:.2e} (norms), {worst_element:.2e} (element)")
    return worst, worst_element


def test_fused_weights_after_a_few_steps_equal_the_standalone_runs(digits_root, tmp_path):
    config = tiny_config("repeats=3", "seed=5", "dataset.train_subset=150")  # 3 steps of 50
    worst, worst_element = _worst_difference(config, digits_root, tmp_path)
    # here 2.3e-7 (norms) and 4.5e-6 (element), 2 AVX-512 cores
    assert worst < 1e-5 and worst_element < 5e-5, (
        f"relative difference {worst:.2e} (norms), {worst_element:.2e} (element)"
    )


def test_fused_weights_after_training_equal_the_standalone_runs(digits_root, tmp_path):
    # (With model.class_bias the zero-initialised bias differs by about 4e-5: Adam's first
    # steps are about lr * sign(gradient), and rounding flips the sign of its tiny ones.)
    config = tiny_config("repeats=3", "seed=5", *SCHEDULED)  # 2 epochs, 15 steps
    worst, worst_element = _worst_difference(config, digits_root, tmp_path)
    # 4.6e-6 when both sides' narrow convolutions took the hand-written backward; 2.2e-5 (the
    # decoder's first layer; every other tensor <= 5e-6) since both take oneDNN's, whose
    # grouped and plain kernels sum in different orders.
    assert worst < 5e-5, f"relative difference {worst:.2e} (norms), {worst_element:.2e} (element)"


def test_repeats_3_trains_seed_0_alone_and_the_others_fused(digits_root):
    result = train_seeds(tiny_config("repeats=3", "seed=5"), data_dir=digits_root)
    assert [(s["seed"], s["fused"]) for s in result.per_seed] == [
        (5, False),
        (6, True),
        (7, True),
    ]
    first = result.per_seed[0]
    # the costs of one standalone run; accuracies are means over the three seeds
    for cost in ("train_time_s", "time_to_best_s", "peak_mem_mb"):
        assert getattr(result, cost) == first[cost]
        assert cost not in result.seed_std  # one standalone seed: no std
    mean = sum(s["val_accuracy"] for s in result.per_seed) / 3
    assert result.val_accuracy == pytest.approx(mean)
    assert "val_accuracy" in result.seed_std


def test_another_model_trains_its_seeds_one_after_another(digits_root):
    config = tiny_config("repeats=3", "model.name=cnn_baseline")
    result = train_seeds(config, data_dir=digits_root)
    assert [s["seed"] for s in result.per_seed] == [0, 1, 2]
    assert "fused" not in result.per_seed[0]
    times = [s["train_time_s"] for s in result.per_seed]
    assert result.train_time_s == pytest.approx(sum(times) / 3)


@pytest.mark.slow
@pytest.mark.skipif(not REAL_MNIST.is_dir(), reason="real MNIST not in ../shared/data")
def test_fused_seeds_reach_their_standalone_accuracy_on_real_mnist():
    config = tiny_config(
        "repeats=3",
        "epochs=3",
        "dataset.train_subset=2000",
        "dataset.val_size=1000",
        "dataset.test_subset=1000",
        "lr_policy.name=exp_decay",
    )
    result = train_seeds(config, data_dir=REAL_MNIST.parent)
    assert result.val_accuracy > 0.6  # it learns (chance: 0.1)
    for seed in (1, 2):
        alone = train(
            config.with_overrides([f"seed={seed}", "repeats=1"]), "cpu", REAL_MNIST.parent
        )
        fused = result.per_seed[seed]
        for metric in ("val_accuracy", "test_accuracy"):
            difference = abs(fused[metric] - getattr(alone, metric))
            print(f"seed {seed} {metric}: fused {fused[metric]}, alone {getattr(alone, metric)}")
            assert difference <= 0.005, f"seed {seed} {metric}: {difference * 100:.2f} points"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
def test_fused_seeds_on_cuda_reach_their_standalone_accuracy(digits_root):
    config = tiny_config("repeats=3", "epochs=2")
    result = train_seeds(config, "cuda", digits_root)
    assert [s["fused"] for s in result.per_seed] == [False, True, True]
    for seed in (1, 2):
        alone = train(config.with_overrides([f"seed={seed}", "repeats=1"]), "cuda", digits_root)
        for metric in ("val_accuracy", "test_accuracy"):  # 100 samples: one is a point
            assert abs(result.per_seed[seed][metric] - getattr(alone, metric)) <= 0.011


RUN = """
import json, sys, torch
from pathlib import Path
from dse.train.resume import ResumeFile
from dse.train import seeds
from dse.train.seeds import train_seeds
from tests.conftest import tiny_config
torch.set_num_threads(1)
config = tiny_config("repeats=3", "epochs=2")
result = train_seeds(config, data_dir=sys.argv[1], resume=ResumeFile(Path(sys.argv[2])))
print(json.dumps(result.to_dict()))
"""


def test_a_killed_repeats_run_resumes_in_seed_0_and_in_the_fused_group(digits_root, tmp_path):
    path = tmp_path / "run.pt"
    env = subprocess_env() | {FAULT_KILL_ENV: "2:3"}  # every fresh seed run dies there once
    command = [sys.executable, "-c", textwrap.dedent(RUN), str(digits_root), str(path)]
    where = []
    for _ in range(2):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == -9, done.stderr
        state = read_state(path)
        where.append((state.seed_index, state.epoch, len(state.finished)))
    assert where == [(0, 1, 0), (1, 1, 1)]  # killed in seed 0, then in the fused group
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    resumed = json.loads(done.stdout.strip().splitlines()[-1])
    assert (resumed["resumed_seed"], resumed["resumed_from_epoch"]) == (1, 1)
    assert not path.exists()

    reference = train_seeds(tiny_config("repeats=3", "epochs=2"), data_dir=digits_root)
    expected = without_times(reference) | {"resumed_seed": 1, "resumed_from_epoch": 1}
    got = without_times(type(reference).from_dict(resumed))
    for times in ("per_seed", "seed_std"):  # times differ run to run
        expected.pop(times), got.pop(times)
    assert got == expected
    for metric in ("val_accuracy", "test_accuracy"):
        assert [s[metric] for s in resumed["per_seed"]] == [s[metric] for s in reference.per_seed]


def test_a_checkpoint_of_seeds_trained_one_by_one_keeps_seed_0_and_refuses_the_rest(
    digits_root, tmp_path, monkeypatch
):
    config = tiny_config("repeats=3")
    path = tmp_path / "run.pt"
    monkeypatch.setattr(seeds, "FUSE_FROM", 4)  # as before fusing: the seeds one by one
    before = train_seeds(config, data_dir=digits_root, resume=ResumeFile(path, keep=True))
    assert read_state(path).seed_index == 2
    monkeypatch.setattr(seeds, "FUSE_FROM", 3)
    with pytest.warns(UserWarning, match="now train fused: they start afresh"):
        result = train_seeds(config, data_dir=digits_root, resume=ResumeFile(path))
    assert (result.resumed_seed, result.resumed_from_epoch) == (1, 0)
    assert [s["fused"] for s in result.per_seed] == [False, True, True]
    assert result.per_seed[0] == before.per_seed[0] | {"fused": False}


def test_on_cpu_seeds_train_one_after_another_unless_asked(digits_root, tmp_path, monkeypatch):
    """auto (the default) fuses on CUDA only; a fused group's checkpoint resumed where seeds
    do not fuse keeps seed 0 and trains the others afresh, one after another."""
    config = tiny_config("repeats=3")
    path = tmp_path / "run.pt"
    fused = train_seeds(config, data_dir=digits_root, resume=ResumeFile(path, keep=True))
    assert [s["fused"] for s in fused.per_seed] == [False, True, True]
    assert read_state(path).seed_index == 1  # the fused group's state
    monkeypatch.setenv(seeds.FUSE_ENV, "auto")
    assert seeds.first_fused(config, "cpu") is None and seeds.first_fused(config, "cuda") == 1
    with pytest.warns(UserWarning, match="trained fused; the seeds after the first now train"):
        alone = train_seeds(config, data_dir=digits_root, resume=ResumeFile(path))
    assert all("fused" not in s for s in alone.per_seed)
    assert alone.per_seed[0] == {k: v for k, v in fused.per_seed[0].items() if k != "fused"}
    monkeypatch.setenv(seeds.FUSE_ENV, "yes")
    with pytest.raises(ConfigError, match="DSE_FUSE_SEEDS=yes: expected one of auto, 1, 0"):
        train_seeds(config, data_dir=digits_root)
