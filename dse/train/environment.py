"""Where a run happened: device, library versions, threads, the project's commit, the host."""

from __future__ import annotations

import contextlib
import platform
import resource
import socket
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

import dse
from dse.train.allocator import release_freed, tune_malloc
from dse.train.denormals import flush_denormals


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 matmuls run in hardware here (CUDA, or a CPU with AVX512-BF16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def bf16_hardware(device: torch.device) -> str:
    """What bf16 matmuls run on here, in words (`dse bench` and bench/ say it)."""
    if device.type == "cuda":
        return "CUDA" if torch.cuda.is_bf16_supported() else "none: this GPU has no bf16 units"
    flags = cpu_flags()
    if "amx_bf16" in flags:
        return "AMX tiles (amx_bf16)"
    if "avx512_bf16" in flags:
        return "AVX512-BF16 dot products, no AMX (amx_bf16 absent)"
    return "no hardware behind it: no AMX or AVX512-BF16, so bf16 is converted to fp32 and slower"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return _cpu_model()


@lru_cache(maxsize=1)
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the dse source tree, when it is a git checkout."""
    root = Path(dse.__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment(device: torch.device, seed: int) -> dict[str, Any]:
    return {
        "device": str(device),
        "device_name": device_name(device),
        "host": socket.gethostname(),
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "native_bf16": native_bf16(device),
        "malloc_tuned": device.type == "cpu" and tune_malloc(),
        "denormals_flushed": device.type == "cpu" and flush_denormals(),
        "git_commit": git_commit(),
        "dse": dse.__version__,
        "seed": seed,
    }


def reset_peak_memory(device: torch.device) -> None:
    """Start a run's peak memory afresh: a worker trains trial after trial in one process, and
    the process's peak resident set would otherwise carry the largest earlier trial's."""
    if device.type == "cuda":
        torch.cuda.init()  # a fresh worker has no allocator yet: resetting its stats would raise
        torch.cuda.reset_peak_memory_stats(device)
        return
    release_freed()
    # Linux: "5" resets the peak resident set (VmHWM, what ru_maxrss reads) to the current one;
    # elsewhere, or with /proc read-only, the peak stays the process's since it started.
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
