"""Trial worker processes: one long-lived process per slot, pinned to its device.

The runner (parent) owns the study: it asks for trials, sends each worker a TrialConfig, and
records what comes back. Workers only train. A worker is a `spawn`ed process, so CUDA starts
fresh in it after CUDA_VISIBLE_DEVICES is set; it dies with its parent (PR_SET_PDEATHSIG), so
a killed runner leaves no orphan training on. Tasks and messages are the dataclasses of
messages.py: a TrialTask in; TrialStarted as the worker takes it (a worker that dies before
any does could not start: the runner ends the run after a few), EpochDone per epoch,
RungQuestion at a rung (then the worker waits on its task queue for the runner's RungAnswer:
the runner owns the study, so it decides), and TrialDone or TrialFailed out.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import queue
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dse.search.devices import Slot
from dse.search.forms import EpochPoint, Placement
from dse.search.messages import (
    EpochDone,
    RungAnswer,
    RungQuestion,
    TrialDone,
    TrialFailed,
    TrialStarted,
    TrialTask,
    WorkerLost,
    WorkerMessage,
)

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux: orphans possible, no worse
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died while this process was still starting
        os._exit(1)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while a worker starts. Ctrl-C reaches the whole process group; the
    runner records and ends the trials in flight, while a worker still importing torch would
    die of it with a KeyboardInterrupt traceback. An ignored SIGINT survives exec, and Python
    then installs no handler of its own."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _error_kind(exc: BaseException) -> str:
    from dse.errors import DseError
    from dse.train.memory import is_out_of_memory

    if is_out_of_memory(exc):  # a GPU's, and a CPU allocator's too
        return "out of memory"
    if isinstance(exc, DseError):
        return type(exc).__name__
    return f"bug: {type(exc).__name__}"


def execute_trial(
    task: TrialTask,
    slot_index: int,
    device: str,
    data_dir: str | None,
    send: Callable[[WorkerMessage], None],
    ask: Callable[[], RungAnswer] | None = None,
) -> TrialDone | TrialFailed:
    """Train one trial in this process; returns how it ended.

    Each finished epoch is sent as an EpochDone, after its checkpoint is written; after an
    epoch in `task.rungs`, a RungQuestion is sent and `ask()` waits for the answer (stop:
    training ends at that epoch boundary). A trial resumed from its checkpoint sends the
    restored epochs first (no rung is asked again). Shared by the local workers and the Dask
    task, so both record a trial alike.
    """
    import torch

    from dse.config import TrialConfig
    from dse.train.resume import ResumeFile
    from dse.train.seeds import train_seeds
    from dse.train.trainer import Observer

    class ReportEpochs(Observer):
        def __init__(self, epochs: int):
            self.epochs, self.stop = epochs, False

        def report(self, record, elapsed_train_s):
            point = EpochPoint(
                record.epoch,
                record.batch_size,
                record.epoch_time_s,
                elapsed_train_s,
                record.val_accuracy,
            )
            send(EpochDone(slot_index, task.number, self.epochs, point))

        def on_resume(self, history):
            elapsed = 0.0
            for record in history:
                elapsed += record.epoch_time_s
                self.report(record, elapsed)

        def on_epoch(self, record, elapsed_train_s):
            self.report(record, elapsed_train_s)
            if record.epoch in task.rungs and ask is not None:
                send(RungQuestion(slot_index, task.number, record.epoch))
                self.stop = not ask().proceed

        def should_stop(self):
            return self.stop

    started = time.perf_counter()
    resume = None
    if task.checkpoint is not None:
        resume = ResumeFile(Path(task.checkpoint), keep=task.keep_checkpoint)
    try:
        config = TrialConfig.from_dict(task.config)
        observer = ReportEpochs(config.epochs)
        result = train_seeds(config, device, data_dir, observer=observer, resume=resume)
        return TrialDone(slot_index, task.number, result, wall_s=time.perf_counter() - started)
    except Exception as exc:  # recorded as the trial's failure; the worker goes on
        if resume is not None:  # failed for a reason of its own: nothing will resume it
            resume.finish()
        kind = _error_kind(exc)
        message = " ".join(str(exc).split()) or type(exc).__name__
        if kind.startswith("bug"):  # a bug keeps its traceback, on one line
            message += " | " + " | ".join(traceback.format_exc(limit=6).splitlines())
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return TrialFailed(slot_index, task.number, kind, message)


CAUSE_CHARS = 500  # the most of a dead worker's exception its trial's error shows


def worker_main(
    slot: Slot, tasks: Any, results: Any, data_dir: str | None, parent: int, cause: Any
) -> None:
    """Entry point of a worker process: TrialTasks (and RungAnswers) in, messages out. An
    exception that ends it (it cannot load, say) is left in `cause` for the runner to record
    and say in its line, and the process exits with code 1 without printing its traceback:
    each worker that fails so (3 before the run stops) printed the same one into the run's
    output. DSE_DEBUG=1 raises it, traceback and all, as the CLI's error boundary does."""
    try:
        _serve(slot, tasks, results, data_dir, parent)
    except BaseException as exc:
        text = " ".join(f"{type(exc).__name__}: {exc}".split())
        cause.value = text.encode("utf-8", "replace")[: CAUSE_CHARS - 1]
        if isinstance(exc, SystemExit) or os.environ.get("DSE_DEBUG") == "1":
            raise
        raise SystemExit(1) from None


def _serve(slot: Slot, tasks: Any, results: Any, data_dir: str | None, parent: int) -> None:
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as it started (_sigint_ignored)
    os.environ.update(slot.environment())
    import torch

    from dse.train.faults import fail_worker_start_if_set

    torch.set_num_threads(slot.threads)
    fail_worker_start_if_set()
    placement = Placement(slot.label, slot.device, socket.gethostname())  # as the runner sent it

    def ask() -> RungAnswer:
        """Wait for the runner's answer at a rung."""
        answer = tasks.get()
        if answer is None:  # the pool is closing: stop, then leave
            tasks.put(None)
            return RungAnswer(proceed=False)
        return answer

    while True:
        task = tasks.get()
        if task is None:
            return
        # a trial reached a worker: the runner counts later deaths as the trial's, not start-up's
        results.put(TrialStarted(slot.index, task.number, placement))
        outcome = execute_trial(task, slot.index, slot.local_device, data_dir, results.put, ask)
        if isinstance(outcome, TrialDone):  # recorded in the trial's environment
            outcome = replace(outcome, placement=Placement(slot.label, slot.device))
        results.put(outcome)


@dataclass
class _Worker:
    slot: Slot
    process: Any
    tasks: Any
    cause: Any  # the exception that ended the process, as worker_main leaves it (bytes)
    busy: int | None = None  # trial number in progress

    def death(self) -> str:
        """Why the process ended: its exit code, and the exception it raised, if any."""
        cause = self.cause.value.decode("utf-8", "replace")
        code = f"exit code {self.process.exitcode}"
        return f"{code}: {cause}" if cause else code


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
        cause = self._ctx.Array("c", CAUSE_CHARS)
        process = self._ctx.Process(
            target=worker_main,
            args=(slot, tasks, self.results, self.data_dir, os.getpid(), cause),
            name=f"dse-worker-{slot.label}",
            daemon=True,
        )
        with _sigint_ignored():  # inherited: the worker ignores Ctrl-C from its first moment
            process.start()
        self._workers[slot.index] = _Worker(slot, process, tasks, cause)

    def idle(self) -> list[Slot]:
        return [w.slot for w in self._workers.values() if w.busy is None and w.process.is_alive()]

    def busy(self) -> dict[int, int]:
        """Trial number by slot index, for the slots that are training."""
        return {i: w.busy for i, w in self._workers.items() if w.busy is not None}

    def submit(self, slot: Slot, task: TrialTask) -> None:
        """Start a trial; after each epoch in `task.rungs` the worker waits for an answer."""
        worker = self._workers[slot.index]
        worker.busy = task.number
        worker.tasks.put(task)

    def answer(self, slot_index: int, answer: RungAnswer) -> None:
        """Answer a worker waiting at a rung: go on training, or stop at this epoch."""
        self._workers[slot_index].tasks.put(answer)

    def poll(self, timeout: float) -> list[WorkerMessage]:
        """Messages from the workers (waiting up to `timeout` for the first one)."""
        messages = []
        try:
            messages.append(self.results.get(timeout=timeout))
            while True:
                messages.append(self.results.get_nowait())
        except queue.Empty:
            pass
        for message in messages:
            if isinstance(message, TrialDone | TrialFailed):
                self._workers[message.slot_index].busy = None
        return messages

    def replace_dead(self) -> list[WorkerLost]:
        """Restart workers that died; each with the trial it held and why it died."""
        dead = []
        for worker in list(self._workers.values()):
            if not worker.process.is_alive():
                dead.append(WorkerLost(worker.slot, worker.busy, worker.death()))
                self._start(worker.slot)
        return dead

    def close(self, abandon: bool = False) -> None:
        """Let idle workers leave; `abandon`: end training workers at once (SIGTERM)."""
        for worker in self._workers.values():
            if worker.process.is_alive():
                worker.tasks.put(None)
                if abandon and worker.busy is not None:
                    worker.process.terminate()
        for worker in self._workers.values():
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=5)
