"""Trial worker processes: one long-lived process per slot, pinned to its device.

The runner (parent) owns the study: it asks for trials, sends each worker a TrialConfig, and
records what comes back. Workers only train. A worker is a `spawn`ed process, so CUDA starts
fresh in it after CUDA_VISIBLE_DEVICES is set; it dies with its parent (PR_SET_PDEATHSIG), so
a killed runner leaves no orphan training on. Messages to the parent are tuples:

    ("epoch", slot, number, epoch, epochs, val_acc, elapsed_train_s, epoch_time_s, batch_size)
                                                      an epoch of trial `number` finished
    ("done", slot, number, result_dict)               the trial finished (or stopped early)
    ("error", slot, number, kind, message)            the trial raised

A task is (number, config_dict, rungs). After an epoch listed in `rungs`, the worker waits on its
task queue for the runner's decision, "continue" or "stop" (early stopping: the runner owns the
study, so it decides); a stop ends training at that epoch boundary.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import queue
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dse.search.devices import Slot

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux: orphans possible, no worse
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died while this process was still starting
        os._exit(1)


def _error_kind(exc: BaseException) -> str:
    import torch

    from dse.errors import DseError

    if isinstance(exc, torch.OutOfMemoryError):
        return "out of memory"
    if isinstance(exc, DseError):
        return type(exc).__name__
    return f"bug: {type(exc).__name__}"


def execute_trial(
    number: int,
    config_dict: dict[str, Any],
    device: str,
    data_dir: str | None,
    on_epoch: Callable[..., None],
    rungs: tuple[int, ...] = (),
    decide: Callable[[], bool] | None = None,
) -> tuple:
    """Train one trial in this process: ("done", result_dict) or ("error", kind, message).

    `on_epoch(number, epoch, epochs, val_accuracy, elapsed_train_s, epoch_time_s, batch_size)`
    hears each finished epoch; after an epoch in `rungs`, `decide()` says whether to go on
    (False stops training at that epoch boundary). Shared by the local workers and the Dask
    task, so both record a trial the same way.
    """
    import torch

    from dse.config import TrialConfig
    from dse.train.seeds import train_seeds
    from dse.train.trainer import Observer

    class ReportEpochs(Observer):
        def __init__(self, epochs: int):
            self.epochs, self.stop = epochs, False

        def on_epoch(self, record, elapsed_train_s):
            on_epoch(
                number,
                record.epoch,
                self.epochs,
                record.val_accuracy,
                elapsed_train_s,
                record.epoch_time_s,
                record.batch_size,
            )
            if record.epoch in rungs and decide is not None:
                self.stop = not decide()

        def should_stop(self):
            return self.stop

    started = time.perf_counter()
    try:
        config = TrialConfig.from_dict(config_dict)
        result = train_seeds(config, device, data_dir, observer=ReportEpochs(config.epochs))
        payload = result.to_dict()
        payload["environment"]["wall_s"] = time.perf_counter() - started  # the whole task
        return ("done", payload)
    except Exception as exc:  # recorded as the trial's failure; the worker goes on
        kind = _error_kind(exc)
        message = " ".join(str(exc).split()) or type(exc).__name__
        if kind.startswith("bug"):  # a bug keeps its traceback, on one line
            message += " | " + " | ".join(traceback.format_exc(limit=6).splitlines())
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return ("error", kind, message)


def worker_main(slot: Slot, tasks: Any, results: Any, data_dir: str | None, parent: int) -> None:
    """Entry point of a worker process."""
    _die_with_parent(parent)
    os.environ.update(slot.environment())
    import torch

    torch.set_num_threads(slot.threads)

    def on_epoch(number: int, *epoch_info: Any) -> None:
        results.put(("epoch", slot.index, number, *epoch_info))

    def decide() -> bool:
        """Wait for the runner's answer at a rung."""
        decision = tasks.get()
        if decision is None:  # the pool is closing: stop, then leave
            tasks.put(None)
        return decision == "continue"

    while True:
        task = tasks.get()
        if task is None:
            return
        number, config_dict, rungs = task
        outcome = execute_trial(
            number, config_dict, slot.local_device, data_dir, on_epoch, rungs, decide
        )
        if outcome[0] == "done":
            outcome[1]["environment"]["slot"] = slot.label
            outcome[1]["environment"]["device"] = slot.device
        results.put((outcome[0], slot.index, number, *outcome[1:]))


@dataclass
class _Worker:
    slot: Slot
    process: Any
    tasks: Any
    busy: int | None = None  # trial number in progress


@dataclass
class WorkerPool:
    """Long-lived worker processes, one per slot; a dead worker is replaced."""

    slots: list[Slot]
    data_dir: str | None = None
    _ctx: Any = field(default_factory=lambda: mp.get_context("spawn"))
    _workers: dict[int, _Worker] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.results = self._ctx.Queue()
        for slot in self.slots:
            self._start(slot)

    def _start(self, slot: Slot) -> None:
        tasks = self._ctx.Queue()
        process = self._ctx.Process(
            target=worker_main,
            args=(slot, tasks, self.results, self.data_dir, os.getpid()),
            name=f"dse-worker-{slot.label}",
            daemon=True,
        )
        process.start()
        self._workers[slot.index] = _Worker(slot, process, tasks)

    def idle(self) -> list[Slot]:
        return [w.slot for w in self._workers.values() if w.busy is None and w.process.is_alive()]

    def busy(self) -> dict[int, int]:
        """Trial number by slot index, for the slots that are training."""
        return {i: w.busy for i, w in self._workers.items() if w.busy is not None}

    def submit(
        self, slot: Slot, number: int, config: dict[str, Any], rungs: tuple[int, ...] = ()
    ) -> None:
        """Start trial `number`; after each epoch in `rungs` the worker waits for `decide`."""
        worker = self._workers[slot.index]
        worker.busy = number
        worker.tasks.put((number, config, tuple(rungs)))

    def decide(self, slot_index: int, proceed: bool) -> None:
        """Answer a worker waiting at a rung: go on training, or stop at this epoch."""
        self._workers[slot_index].tasks.put("continue" if proceed else "stop")

    def poll(self, timeout: float) -> list[tuple]:
        """Messages from the workers (waiting up to `timeout` for the first one)."""
        messages = []
        try:
            messages.append(self.results.get(timeout=timeout))
            while True:
                messages.append(self.results.get_nowait())
        except queue.Empty:
            pass
        for message in messages:
            if message[0] in ("done", "error"):
                self._workers[message[1]].busy = None
        return messages

    def replace_dead(self) -> list[tuple[Slot, int | None, str]]:
        """Restart workers that died; returns (slot, trial number it held, why it died)."""
        dead = []
        for _index, worker in list(self._workers.items()):
            if not worker.process.is_alive():
                dead.append((worker.slot, worker.busy, f"exit code {worker.process.exitcode}"))
                self._start(worker.slot)
        return dead

    def close(self) -> None:
        for worker in self._workers.values():
            if worker.process.is_alive():
                worker.tasks.put(None)
        for worker in self._workers.values():
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=5)
