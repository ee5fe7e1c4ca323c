from __future__ import annotations

import re

import pytest

from dse.errors import ConfigError
from dse.search.devices import plan_slots


def test_one_worker_per_listed_gpu_a_gpu_listed_twice_runs_two():
    slots = plan_slots("0,1,1", None, gpu_count=2, cores=16)
    assert [s.device for s in slots] == ["cuda:0", "cuda:1", "cuda:1"]
    assert [s.environment() for s in slots] == [
        {"CUDA_VISIBLE_DEVICES": "0"},
        {"CUDA_VISIBLE_DEVICES": "1"},
        {"CUDA_VISIBLE_DEVICES": "1"},
    ]
    assert all(s.local_device == "cuda:0" and s.threads == 5 for s in slots)
    assert [s.label for s in slots] == ["cuda:0#0", "cuda:1#1", "cuda:1#2"]


def test_all_present_gpus_by_default_else_cpu():
    assert [s.device for s in plan_slots(None, None, gpu_count=2, cores=8)] == ["cuda:0", "cuda:1"]
    cpu = plan_slots(None, 2, gpu_count=0, cores=2)
    assert [(s.device, s.threads, s.environment()) for s in cpu] == [("cpu", 1, {}), ("cpu", 1, {})]
    assert plan_slots("cpu", None, gpu_count=4, cores=2)[0].threads == 2


def test_workers_alone_on_a_gpu_host_are_dealt_over_the_gpus():
    """`--workers 3` without `--gpus` on 2 GPUs: 0, 1, 0 (not an error about a list not given)."""
    slots = plan_slots(None, 3, gpu_count=2, cores=12)
    assert [s.device for s in slots] == ["cuda:0", "cuda:1", "cuda:0"]
    assert [s.threads for s in slots] == [4, 4, 4]
    assert [s.device for s in plan_slots(None, 2, gpu_count=1, cores=16)] == ["cuda:0"] * 2


@pytest.mark.parametrize(
    ("gpus", "workers", "message"),
    [
        ("0,2", None, "gpus 0,2: no GPU 2 (2 CUDA devices visible)"),
        ("a,b", None, "expected GPU indices like 0,1 (or cpu), got 'a'"),
        ("0,", None, "got ''"),
        ("cpu", 0, "workers 0: must be at least 1"),
        ("0,1", 3, "GPU runs get one worker per listed GPU"),
    ],
)
def test_bad_gpu_lists(gpus, workers, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        plan_slots(gpus, workers, gpu_count=2, cores=8)


def test_more_cpu_workers_than_cores_are_refused():
    """`--workers 1000` on 2 cores started 1000 torch processes (the machine ran out of
    memory); CPU workers split the cores, so at most PER_CPU (4) per core."""
    assert len(plan_slots("cpu", 2, gpu_count=0, cores=2)) == 2
    assert [s.threads for s in plan_slots("cpu", 8, gpu_count=0, cores=2)] == [1] * 8
    with pytest.raises(ConfigError, match=re.escape("workers 1000: choose 1 to 8 (4 per CPU")):
        plan_slots(None, 1000, gpu_count=0, cores=2)
    with pytest.raises(ConfigError, match=re.escape("workers 9: choose 1 to 8")):
        plan_slots("cpu", 9, gpu_count=4, cores=2)
