"""Worker slots: which device each trial worker gets, and how many CPU threads.

`--gpus 0,1` gives one worker per listed GPU (a GPU listed twice runs two trials at once);
each worker sees only its GPU (CUDA_VISIBLE_DEVICES is set before CUDA starts in it).
Without `--gpus`, every GPU present gets a worker, or `--workers N` deals N workers over the
GPUs in turn (2 on one GPU: two trials share it). Without GPUs (`--gpus cpu`, or none present)
`--workers N` CPU workers split the cores (N at most PER_CPU per CPU).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

from dse.errors import ConfigError, option


@dataclass(frozen=True)
class Slot:
    index: int
    device: str  # as recorded: "cpu" or "cuda:N" with N the physical GPU index
    threads: int  # torch threads in the worker

    @property
    def label(self) -> str:
        return f"{self.device}#{self.index}"

    def environment(self) -> dict[str, str]:
        """Variables the worker process sets before importing CUDA."""
        if self.device.startswith("cuda:"):
            return {"CUDA_VISIBLE_DEVICES": self.device.removeprefix("cuda:")}
        return {}

    @property
    def local_device(self) -> str:
        """The device name inside the worker: its one visible GPU is cuda:0."""
        return "cuda:0" if self.device.startswith("cuda:") else "cpu"


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def busy_cpus(sample_s: float = 0.1) -> float:
    """How many of this process's CPUs other programs keep busy now: the non-idle share of each
    over `sample_s`, summed (Linux /proc/stat; elsewhere 0). Read before a run's workers start,
    it is other programs' load."""
    try:
        allowed = os.sched_getaffinity(0)
        first, own_before, started = _cpu_times(allowed), _own_cpu_s(), time.monotonic()
        time.sleep(sample_s)
        second, own_after, ended = _cpu_times(allowed), _own_cpu_s(), time.monotonic()
    except (AttributeError, OSError, ValueError):
        return 0.0
    busy = 0.0
    for cpu, (idle, total) in second.items():
        idle_before, total_before = first.get(cpu, (idle, total))
        if total > total_before:
            busy += 1 - (idle - idle_before) / (total - total_before)
    # this process's own threads (torch's pool still spinning after its last op) are not others'
    own = (own_after - own_before) / max(ended - started, 1e-9)
    return max(0.0, busy - own)


def _own_cpu_s() -> float:
    """CPU seconds this process (all its threads) has run."""
    times = os.times()
    return times.user + times.system


def _cpu_times(allowed: set[int]) -> dict[int, tuple[int, int]]:
    """(idle, total) clock ticks of each allowed CPU since boot (idle includes iowait)."""
    times = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in allowed:
            ticks = [int(f) for f in fields[:8]]  # user nice system idle iowait irq softirq steal
            times[int(name[3:])] = (ticks[3] + ticks[4], sum(ticks))
    return times


def idle_cpus(cores: int) -> int:
    """The CPUs of `cores` that other programs leave idle (at least 1): a torch thread on a
    busy CPU holds up every parallel op of a step until the scheduler gives it a turn. Measured
    here (a CapsNet on 2 cores, one busy with another program), 2 threads took 2.6x as long as
    1 thread; on idle cores 2 threads took 0.58x. A CPU counts as busy at 3/4 of its time."""
    return max(1, min(cores, cores - math.floor(busy_cpus() + 0.25)))


def cpu_threads(threads: int | None, default: int, did: str) -> tuple[int, str | None]:
    """The torch threads of one command on this CPU (train, bench, profile, calibrate) and a
    line for after its result. Without `threads`: `default` (torch's), or the CPUs other
    programs leave idle when they are fewer, and the line says so (`did`: what the command did
    with them, "trained"). With `threads` more than the idle CPUs: those, and a warning that
    the timings are slowed by the other programs (up to the idle CPUs, the threads have them)."""
    cores = cpu_count()
    idle = idle_cpus(cores)
    busy = f"{cores - idle} of {cores} CPUs were busy with other programs when it started"
    if threads:
        if threads <= idle:
            return threads, None
        return threads, (
            f"warning: {busy}: the timings with {option('threads')} {threads} are slowed by them "
            f"(without it, {idle} thread(s) on the idle ones)"
        )
    if idle >= min(cores, default):
        return default, None
    return idle, f"{did} with {idle} thread(s): {busy} ({option('threads')} sets it)"


def set_torch_threads(threads: int | None, device_type: str, did: str) -> str | None:
    """Set this process's torch threads for one command on a device of `device_type` (on a
    CPU: cpu_threads; elsewhere `threads` when given) and return its line for after the
    result, if any (said then: an error before it stays one line)."""
    import torch

    line = None
    if device_type == "cpu":
        threads, line = cpu_threads(threads, torch.get_num_threads(), did)
    if threads:
        torch.set_num_threads(threads)
    return line


def leave_busy_cpus(slots: list[Slot], cores: int) -> tuple[list[Slot], str | None]:
    """The slots with their torch threads split over the CPUs other programs leave idle now,
    and a line saying so when some are busy (measured as the workers are about to start)."""
    idle = idle_cpus(cores)
    if idle >= cores or not slots:
        return slots, None
    threads = max(1, idle // len(slots))
    fewer = [replace(s, threads=min(s.threads, threads)) for s in slots]
    return fewer, (
        f"{cores - idle} of {cores} CPUs are busy with other programs: the workers' torch "
        f"threads split the {idle} idle one(s) (a thread on a busy CPU holds up every step)"
    )


# Threads or CPU workers per CPU at most. A few more than the CPUs is a user's choice (a
# trial waiting on data or evaluation leaves its core idle); beyond this each only waits its
# turn, and each CPU worker is a process holding its own torch (1000 on 2 cores filled memory).
PER_CPU = 4


def most_per_cpu(cores: int) -> int:
    return PER_CPU * cores


def check_threads(threads: int | None) -> None:
    """Refuse more CPU threads than PER_CPU per CPU this process may run on."""
    most = most_per_cpu(cpu_count())
    if threads is not None and not 1 <= threads <= most:
        raise ConfigError(
            f"{option('threads')} {threads}: choose 1 to {most} ({PER_CPU} per CPU here; more "
            "only take turns on the cores)"
        )


def plan_slots(gpus: str | None, workers: int | None, gpu_count: int, cores: int) -> list[Slot]:
    """Slots for `gpus` (None: every GPU present, else CPU) and `workers` (at least 1); the
    workers' torch threads split the cores (leave_busy_cpus: those other programs leave idle)."""
    if workers is not None and workers < 1:
        raise ConfigError(f"{option('workers')} {workers}: must be at least 1")
    if gpus is None:  # every GPU present; --workers N alone deals N workers over them in turn
        n = workers or gpu_count
        gpus = ",".join(str(i % gpu_count) for i in range(n)) if gpu_count else "cpu"
    if gpus.strip().lower() == "cpu":
        n = workers or 1
        if n > most_per_cpu(cores):  # each worker a process with torch (see PER_CPU)
            raise ConfigError(
                f"{option('workers')} {n}: choose 1 to {most_per_cpu(cores)} ({PER_CPU} per CPU "
                "here; CPU workers split the cores, more only take turns on them)"
            )
        return [Slot(i, "cpu", max(1, cores // n)) for i in range(n)]
    items = [item.strip() for item in gpus.split(",")]
    for item in items:  # the syntax of the whole list first, then which GPUs exist
        if not item.isdigit():
            raise ConfigError(
                f"{option('gpus')} {gpus}: expected GPU indices like 0,1 (or cpu), got {item!r}"
            )
    indices = [int(item) for item in items]
    for index in indices:
        if index >= gpu_count:
            raise ConfigError(
                f"{option('gpus')} {gpus}: no GPU {index} ({gpu_count} CUDA devices visible)"
            )
    if workers is not None and workers != len(indices):
        raise ConfigError(
            f"{option('workers')} {workers} with {option('gpus')} {gpus}: "
            "GPU runs get one worker per listed GPU"
        )
    threads = max(1, cores // len(indices))
    return [Slot(i, f"cuda:{gpu}", threads) for i, gpu in enumerate(indices)]
