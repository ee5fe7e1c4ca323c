from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from dse.cli import app
from dse.errors import ConfigError, as_cli
from dse.search.devices import busy_cpus, cpu_count, cpu_threads, idle_cpus, plan_slots
from tests.conftest import load_study, write_space

runner = CliRunner()


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


@pytest.mark.parametrize(
    ("busy", "threads", "default", "expected"),
    [
        (0.0, None, 4, (4, None)),  # nothing busy: torch's default
        (0.0, 2, 4, (2, None)),
        (1.0, None, 1, (1, None)),  # one thread has the idle CPUs to itself
        (1.0, 3, 4, (3, None)),  # 3 idle of 4: the threads given have idle CPUs
        (
            2.0,
            None,
            4,
            (2, "trained with 2 thread(s): 2 of 4 CPUs were busy with other programs when it "
             "started (--threads sets it)"),
        ),
        (
            2.0,
            3,
            4,
            (3, "warning: 2 of 4 CPUs were busy with other programs when it started: the "
             "timings with --threads 3 are slowed by them (without it, 2 thread(s) on the idle "
             "ones)"),
        ),
    ],
)  # fmt: skip
def test_a_commands_threads_leave_busy_cpus_or_warn_when_given(
    monkeypatch, busy, threads, default, expected
):
    """Without --threads, the CPUs other programs leave idle (a line says so); with more
    threads than those, a warning that the timings suffer (4 CPUs, `busy` of them busy)."""
    monkeypatch.setattr("dse.search.devices.cpu_count", lambda: 4)
    monkeypatch.setattr("dse.search.devices.busy_cpus", lambda: busy)
    used, line = cpu_threads(threads, default, "trained")
    assert (used, as_cli(line) if line else None) == expected


@contextlib.contextmanager
def _busy_loop_on(cpu: int):
    """Another program keeping one CPU busy (pytest takes the warnings of in-process runs)."""
    loop = subprocess.Popen(
        [sys.executable, "-c", "while True: pass"],
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )
    try:
        time.sleep(0.5)  # started and spinning
        yield
    finally:
        loop.kill()
        loop.wait()


@pytest.mark.skipif(cpu_count() < 2, reason="needs 2 CPUs: one busy, one idle")
def test_a_cpu_another_program_keeps_busy_is_counted_and_left_to_it(workdir, recwarn):
    """Measured on 2 cores, one busy elsewhere: a CapsNet step with 2 threads took 2.6x as
    long as with 1 (every parallel op waits for the thread on the busy core)."""
    cores = cpu_count()
    with _busy_loop_on(min(os.sched_getaffinity(0))):
        assert busy_cpus() >= 0.7
        assert idle_cpus(cores) <= cores - 1
        space = write_space(workdir)
        result = runner.invoke(app, ["run", "--space", str(space), "--workers", "1", "--quiet"])
    assert result.exit_code == 0, result.stderr
    (warning,) = [w for w in recwarn if "busy with other programs" in str(w.message)]
    assert f"of {cores} CPUs are busy with other programs" in str(warning.message)
    trials = load_study("sqlite:///results/dse.db", "tiny").get_trials()
    assert {t.user_attrs["environment"]["threads"] for t in trials} <= set(range(1, cores))
