"""Which of several kernels that compute the same thing runs here: timed once per machine and
shape, and recorded, so every later process on the machine takes the same one.

The faster kernel depends on the CPU: for a CPU convolution's weight gradient (dse.model.conv),
oneDNN's backward-weights kernel beats the gradient computed as a forward convolution on an
AVX-512 Xeon for narrow layers, and loses to it by 1.3-10x on an AVX2 EPYC. So the first time a
shape meets a machine, every candidate runs on it (one warm-up call, then TIMED_CALLS timed
ones; the lowest time counts) and the fastest is recorded in `$DSE_CACHE_DIR` (else
`~/.cache/dse`)/kernel-choices.json, under the machine's identity (CPU model and flags, torch
version). A process reads the file once, so a trial retrained, resumed or repeated later on
the machine runs the same kernels and gets the same numbers, bit for bit. Two processes timing
one shape at once record it once: the first to write wins, the other takes its choice.
`DSE_KERNELS=<candidate>[,<candidate>...]` (e.g. onednn, or as_forward,phases) forces them
wherever they are candidates.
The seconds spent timing are counted (`timing_seconds`), so a trial's clock can leave them out:
they are this machine's set-up, not the trial's training.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from dse.data.sources import cache_dir
from dse.errors import ConfigError

ENV = "DSE_KERNELS"
FILE_NAME = "kernel-choices.json"
TIMED_CALLS = 2

_recorded: dict[str, str] = {}  # this machine's choices, read once per process (and file)
_read_from: Path | None = None  # the file they were read from
_unrecordable = False  # the file could not be written (warned once)
_timing_s = 0.0  # seconds this process spent timing candidates


def timing_seconds() -> float:
    """Seconds this process has spent timing candidates so far (a running total)."""
    return _timing_s


@functools.cache
def machine_identity() -> str:
    """The CPU model, its vector flags and the torch version: what a kernel's speed depends on."""
    model = platform.processor() or platform.machine()
    flags: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and ":" in line:
                wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
                flags = [f for f in wanted if f in line.split(":", 1)[1].split()]
                break
    except OSError:
        pass  # not Linux: the model name alone
    return f"{model} [{' '.join(flags)}] torch {torch.__version__}"


def choices_file() -> Path:
    return cache_dir() / FILE_NAME


def choose(
    key: str,
    names: tuple[str, ...],
    candidates: Callable[[], dict[str, Callable[[], object]]],
    known: tuple[str, ...] = (),
) -> str:
    """Which of `names` computes `key`'s work here: forced (ENV), recorded, or timed now and
    recorded. `candidates()` (called only to time them) gives each name's kernel, run once per
    call. ENV may name several kernels, comma-separated: the first of `names` among them is
    taken; one that is neither in `names` nor `known` (other choices' kernels) is refused."""
    forced = [name.strip() for name in os.environ.get(ENV, "").split(",") if name.strip()]
    if forced:
        unknown = [name for name in forced if name not in names + known]
        if unknown:
            expected = ", ".join(dict.fromkeys(names + known))
            raise ConfigError(f"{ENV}={unknown[0]}: expected one of {expected}")
        hits = [name for name in forced if name in names]
        if hits:
            return hits[0]
    # Called on every training step (each convolution's forward): one lookup when recorded.
    recorded = _machine_choices().get(key)
    if recorded is not None:
        return recorded
    global _timing_s
    start = time.perf_counter()
    timed = {name: _best_time(run) for name, run in candidates().items()}
    _record(key, min(timed, key=lambda name: timed[name]))
    _timing_s += time.perf_counter() - start
    return _machine_choices()[key]


def _best_time(run: Callable[[], object]) -> float:
    run()  # warm-up: oneDNN builds its primitive on the first call
    best = float("inf")
    for _ in range(TIMED_CALLS):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _machine_choices() -> dict[str, str]:
    global _recorded, _read_from
    path = choices_file()
    if path != _read_from:
        mine = _read(path).get(machine_identity())
        _recorded, _read_from = (mine if isinstance(mine, dict) else {}), path
    return _recorded


def _read(path: Path) -> dict[str, dict[str, str]]:
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: timed again and rewritten
    return content if isinstance(content, dict) else {}


def _record(key: str, choice: str) -> None:
    """Store `choice` for `key` unless another process stored one first (then take that)."""
    global _recorded, _unrecordable
    path, machine = choices_file(), machine_identity()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            content = _read(path)
            mine = content.get(machine)
            mine = content[machine] = mine if isinstance(mine, dict) else {}
            mine.setdefault(key, choice)
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(json.dumps(content, indent=1, sort_keys=True))
            partial.replace(path)
        _recorded = mine
    except OSError as error:  # a read-only home: this process keeps its choice, and says so once
        if not _unrecordable:
            warnings.warn(
                f"cannot record kernel choices in {path} ({error}); each process times its "
                "own, so reruns may differ in the last bits",
                stacklevel=2,
            )
        _unrecordable = True
        _machine_choices()[key] = choice
