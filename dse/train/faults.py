"""Fault injection for tests and drills, off unless its environment variable is set. Workers
inherit the variables, so a fault set before `dse run` reaches every trial.

DSE_FAULT_OOM_ABOVE_BATCH=N: every epoch whose batch size exceeds N fails at its first step
with torch.OutOfMemoryError, as a device that holds batches of at most N would. The error is
torch's own type, raised where a real allocation would fail, so everything above the trainer
(workers, runner, --retry-oom) handles it as a real out-of-memory error.

DSE_FAULT_KILL_AT=E:S: the training process kills itself with SIGKILL (as `kill -9` would)
after step S of epoch E (both counted from 1), unless the run resumed from a checkpoint: the
retry of a killed worker's trial resumes past the fault and completes.

DSE_FAULT_WORKER_START=MESSAGE: every local worker process of `dse run` raises RuntimeError
(MESSAGE) as it starts, before it takes a trial, as a worker that cannot load would.
"""

from __future__ import annotations

import os
import signal

import torch

from dse.errors import ConfigError

FAULT_OOM_ENV = "DSE_FAULT_OOM_ABOVE_BATCH"
FAULT_KILL_ENV = "DSE_FAULT_KILL_AT"
FAULT_WORKER_START_ENV = "DSE_FAULT_WORKER_START"


def injected_oom_limit() -> int | None:
    value = os.environ.get(FAULT_OOM_ENV)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{FAULT_OOM_ENV}={value!r}: expected a batch size") from None


def inject_oom(limit: int | None, batch_size: int, epoch: int) -> None:
    if limit is not None and batch_size > limit:
        raise torch.OutOfMemoryError(
            f"simulated out of memory ({FAULT_OOM_ENV}={limit}): batch of {batch_size} "
            f"at epoch {epoch + 1}, step 1"
        )


def injected_kill() -> tuple[int, int] | None:
    """(epoch, step) of DSE_FAULT_KILL_AT, counted from 1."""
    value = os.environ.get(FAULT_KILL_ENV)
    if not value:
        return None
    try:
        epoch, step = (int(part) for part in value.split(":"))
    except ValueError:
        raise ConfigError(f"{FAULT_KILL_ENV}={value!r}: expected EPOCH:STEP") from None
    return epoch, step


def kill_if_due(kill_at: tuple[int, int] | None, epoch: int, step: int) -> None:
    """Called after step `step` of epoch `epoch` (both from 0)."""
    if kill_at == (epoch + 1, step + 1):
        os.kill(os.getpid(), signal.SIGKILL)


def fail_worker_start_if_set() -> None:
    message = os.environ.get(FAULT_WORKER_START_ENV)
    if message:
        raise RuntimeError(f"{message} ({FAULT_WORKER_START_ENV})")
