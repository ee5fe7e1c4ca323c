"""The CUDA paths, end to end in fresh processes (CUDA starts in each as it would for a user).

They run only where a GPU is present: CI has none, so there they are skipped. On a GPU host,
`pytest -m gpu` runs these alone. A fresh process matters: `dse run --gpus 0` once failed every
trial because a new worker reset CUDA's peak-memory counters before CUDA had started.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import torch

from tests.conftest import dse_command, load_study, write_space

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here"),
]

TINY = [
    "--set", "epochs=2",
    "--set", "dataset.val_size=100",
    "--set", "dataset.test_subset=100",
    "--set", "model.conv_channels=16",
    "--set", "model.primary_types=4",
    "--set", "batch_schedule.batch_size=50",
]  # fmt: skip


def _dse(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    command, env = dse_command(*args)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_train_on_the_gpu_in_a_fresh_process(digits_root, precision):
    result = _dse(
        "train", *TINY, "--set", f"precision={precision}", "--device", "cuda",
        "--data-dir", str(digits_root), "--format", "json",
    )  # fmt: skip
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["environment"]["device"] == "cuda:0"
    assert data["environment"]["device_name"] == torch.cuda.get_device_name(0)
    assert data["environment"]["native_bf16"] is torch.cuda.is_bf16_supported()
    assert data["peak_mem_mb"] > 0  # CUDA's own counter, reset at the start
    assert data["train_time_s"] > 0 and len(data["history"]) == 2
    assert data["val_accuracy"] > 0.3  # 10 classes: well above chance after 2 epochs


def test_bench_on_the_gpu_times_fp32_and_bf16_with_cuda_events():
    result = _dse(
        "bench", "--preset", "baseline", "--device", "cuda", "--steps", "3", "--warmup", "1",
        "--set", "model.conv_channels=32", "--set", "model.primary_types=8",
        "--compare", "precision=fp32,bf16", "--format", "json",
    )  # fmt: skip
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    assert [r["name"] for r in rows] == ["precision=fp32", "precision=bf16"]
    for row in rows:
        assert row["samples_per_s"] > 0 and 0 < row["ceiling_share"] < 1
        assert row["peak_mem_mb"] > 0
    assert rows[1]["peak_mem_mb"] < rows[0]["peak_mem_mb"]  # bf16 activations are half the size


def test_workers_alone_share_the_gpu_and_record_it(workdir):
    """`dse run --workers 2` on a GPU host: two workers on GPU 0 at once, each trial records it."""
    space = write_space(workdir, epochs=3)
    _dse("run", "--space", str(space), "--workers", "2", "-q")
    trials = load_study("sqlite:///results/dse.db", "tiny").get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    assert {t.user_attrs["slot"] for t in trials} == {"cuda:0#0", "cuda:0#1"}
    assert {t.user_attrs["device"] for t in trials} == {"cuda:0"}
    for t in trials:
        assert t.user_attrs["environment"]["device_name"] == torch.cuda.get_device_name(0)
        assert t.user_attrs["metrics"]["peak_mem_mb"] > 0  # CUDA's counter, per trial
    first = {t.user_attrs["slot"]: t for t in reversed(trials)}  # each slot's first trial
    a, b = first.values()
    assert a.datetime_start < b.datetime_complete and b.datetime_start < a.datetime_complete


def test_profile_on_the_gpu_reports_kernel_time_not_launches(tmp_path):
    """On a GPU the op table is the kernels' time per launching op: no launch call carries time."""
    args = ["profile", "--preset", "baseline", "--device", "cuda", "--batch", "64"]
    args += ["--steps", "2", "--warmup", "1", "--top", "500", "--out", str(tmp_path)]
    ops = json.loads(_dse(*args, "--format", "json").stdout.strip().splitlines()[-1])
    assert ops[0]["self_ms"] > 0 and abs(sum(r["share"] for r in ops) - 1) < 1e-6
    assert not ops[0]["name"].startswith("cuda")  # not a host API call (cudaLaunchKernel was)
    result = _dse(*args, "--by", "layer", "--format", "json")
    layers = {r["name"]: r for r in json.loads(result.stdout.strip().splitlines()[-1])}
    assert layers["class_caps.routing"]["forward_ms"] > 0
    assert layers["class_caps.routing"]["backward_ms"] > 0
