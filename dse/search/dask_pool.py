"""Trial workers on a Dask distributed cluster: the pool behind `dse run --backend dask`.

It implements records.Pool as the local WorkerPool does, so the runner's study logic (budget,
grid enqueued once, heartbeats, retry of a dead worker's trial) is one code path for both
backends; the runner stays the only process that talks to the study.

Why `Client.submit` and not joblib's dask backend: the runner is an ask/tell loop (the next
trial asked for when a slot frees; each trial reports its epochs and fails alone when its
worker dies), not a batch known up front; joblib's backend makes the same submit underneath.

Placement. A trial asks for `resources={"GPU": gpus_per_trial}`; each Dask worker process
declares the GPUs it owns (`dask worker tcp://HOST:8786 --nworkers 2 --resources GPU=1` on a
host with two GPUs: Dask gives every worker process the resources named, it does not split
them). The first trial in a worker process claims that many of the host's GPUs with a lock
file per GPU (held until the process exits), so two worker processes never share a GPU, and
each trial trains on a claimed GPU that no other trial of the process is using. CPU trials
(`gpus_per_trial` 0) ask for no resources: each worker thread runs one (start CPU workers
with `--nthreads 1`), with the host's cores split over the trials the host runs at once
(counted by the worker as each trial starts: trial_threads).

A worker that dies. Dask re-runs the task of a lost worker elsewhere. The task marks its first
start with a distributed Event named after the task; a second start knows the first one's
worker died and returns at once: the trial is FAIL and retried once, as on a local worker.

Messages. Trial starts (TrialStarted: worker, host, device) and finished epochs (EpochDone)
travel as scheduler events on a topic of this run, as plain data (records.to_wire); results
(TrialDone, TrialFailed) come back as the futures' values.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import threading
import time
import uuid
from concurrent.futures import CancelledError
from dataclasses import dataclass, replace
from typing import Any

from dse.errors import ConfigError, DataError, DseError, option
from dse.search.devices import Slot, cpu_count
from dse.search.forms import Placement
from dse.search.gpu_lease import GpuLease
from dse.search.messages import (
    RungAnswer,
    TrialDone,
    TrialFailed,
    TrialStarted,
    TrialTask,
    WorkerLost,
    WorkerMessage,
    from_wire,
    to_wire,
)
from dse.search.options import check_data_files
from dse.search.workers import execute_trial
from dse.space import DatasetUse

MARKER = "marker"  # in an event: the task's start marker, beside the message's wire form
CONNECT_TIMEOUT_S = 10
HANDSHAKE_GRACE_S = 5  # beyond CONNECT_TIMEOUT_S, for the scheduler's handshake
WORKERS_TIMEOUT_S = 30  # how long to wait for the first worker to join
INFO_REFRESH_S = 1.0  # how often the cluster's capacity is re-read
CONNECT_ERRORS = (OSError, TimeoutError, ValueError, MemoryError)  # no scheduler answered
CLIENT_LOGGERS = ("distributed", "tornado")  # the client's own and its event loop's


def import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ConfigError(
            f"{option('backend')} dask needs Dask distributed: pip install 'dse[dask]'"
        ) from None
    return distributed


@dataclass
class _Submitted:
    slot: Slot
    future: Any
    marker: str  # name of the Event the task sets when it first starts
    worker: str | None = None  # where it started


def quiet_client_logs() -> None:
    """Silence the client side's Dask logs in this process: a lost scheduler logged each
    reconnect and a 30-line traceback on the user's stderr, where dse says it in one line.
    The workers log in their own processes as before; DSE_DEBUG=1 keeps these too. For the
    rest of the process: a client that is let go may still log as it winds down."""
    if os.environ.get("DSE_DEBUG") == "1":
        return
    made = [name for name in logging.root.manager.loggerDict if "." in name]
    for name in [*CLIENT_LOGGERS, *made]:  # the families' later loggers inherit their level
        if name.split(".")[0] in CLIENT_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def connect_client(distributed: Any, scheduler: str) -> Any:
    """A Client of `scheduler`, or one line saying why none answered. Its timeout covers the
    connection only: a server that is no scheduler (the dashboard's port) leaves the handshake
    waiting for ever, or reads its reply as a frame of exabytes (MemoryError)."""
    made: dict[str, Any] = {}
    quiet_client_logs()

    def make() -> None:
        try:
            made["client"] = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except BaseException as exc:  # judged below; one raised as the process
            made["error"] = exc  # exits (the handshake given up on) prints no traceback

    thread = threading.Thread(target=make, name="dse-dask-connect", daemon=True)
    thread.start()
    thread.join(CONNECT_TIMEOUT_S + HANDSHAKE_GRACE_S)
    if "client" in made:
        return made["client"]
    error = made.get("error")
    if error is not None and not isinstance(error, CONNECT_ERRORS):
        raise error  # a bug: raised here, where it is seen
    detail = " ".join(str(error).split()) or type(error).__name__
    if error is None or isinstance(error, MemoryError):
        detail = f"no Dask scheduler answered within {CONNECT_TIMEOUT_S + HANDSHAKE_GRACE_S}s"
    raise DseError(f"{option('scheduler')} {scheduler}: cannot connect: {detail}")


class DaskPool:
    """Trials as Dask futures; a slot is one trial the cluster can run at once."""

    def __init__(self, client: Any, gpus_per_trial: int, data_dir: str | None):
        self.client, self.address = client, client.scheduler.address
        self.gpus_per_trial = gpus_per_trial
        self.data_dir = data_dir
        self.topic = f"dse-{uuid.uuid4().hex[:12]}"
        self.messages: queue.Queue = queue.Queue()
        self.client.subscribe_topic(self.topic, lambda event: self.messages.put(event[1]))
        self._submitted: dict[int, _Submitted] = {}  # by trial number
        self._lost: list[WorkerLost] = []
        self._info_at = 0.0
        self._capacity = 0
        self._concurrency_by_host: dict[str, int] = {}
        self._refresh(force=True)
        self.slots = [self._slot(i) for i in range(self._capacity)]

    @classmethod
    def connect(
        cls,
        scheduler: str,
        gpus_per_trial: int | None,
        data_dir: str | None,
        uses: list[DatasetUse],
    ) -> DaskPool:
        """Connect, wait for a worker, and check the data on every worker (_check_data)."""
        client = connect_client(import_distributed(), scheduler)
        try:
            try:
                client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
            except TimeoutError:
                raise DseError(
                    f"{option('scheduler')} {scheduler}: no Dask worker joined within "
                    f"{WORKERS_TIMEOUT_S}s "
                    f"(start one: dask worker {scheduler} --nthreads 1)"
                ) from None
            workers = client.scheduler_info()["workers"]
            declared = sum(w.get("resources", {}).get("GPU", 0) for w in workers.values())
            if gpus_per_trial is None:
                gpus_per_trial = 1 if declared else 0
            if gpus_per_trial > 0 and declared < gpus_per_trial:
                raise ConfigError(
                    f"{option('gpus_per_trial')} {gpus_per_trial}: the Dask workers declare "
                    f"{declared:g} "
                    "GPUs (start them with --resources GPU=1, one per GPU)"
                )
            _check_data(client, uses, data_dir)
            return cls(client, gpus_per_trial, data_dir)
        except BaseException:
            client.close()
            raise

    def _slot(self, index: int) -> Slot:
        return Slot(index, "dask", 0)

    def _refresh(self, force: bool = False) -> None:
        """Re-read the cluster's capacity (workers come and go), at most every INFO_REFRESH_S."""
        if not force and time.monotonic() - self._info_at < INFO_REFRESH_S:
            return
        try:
            workers = self.client.scheduler_info()["workers"]
        except (OSError, TimeoutError) as exc:  # the scheduler went away
            raise self._gone(str(exc)) from None
        by_host = concurrency_by_host(workers, self.gpus_per_trial)
        self._capacity = sum(by_host.values())
        self._concurrency_by_host = by_host
        self._info_at = time.monotonic()

    def _gone(self, why: str) -> DseError:
        return DseError(
            f"the Dask scheduler {self.address} is gone ({why}); restart it and its workers, "
            "then the same dse run resumes the study"
        )

    def idle(self) -> list[Slot]:
        self._refresh()
        busy = {s.slot.index for s in self._submitted.values()}
        free = max(0, self._capacity - len(busy))
        return [self._slot(i) for i in range(self._capacity + len(busy)) if i not in busy][:free]

    def submit(self, slot: Slot, task: TrialTask) -> None:
        """Submit a trial as a task (no rungs: early stopping runs on local workers)."""
        assert not task.rungs, "early stopping is refused with backend dask (RunOptions)"
        number = task.number
        key = f"dse-trial-{number}-{uuid.uuid4().hex[:8]}"
        resources = {"GPU": self.gpus_per_trial} if self.gpus_per_trial > 0 else None
        future = self.client.submit(
            run_trial,
            task,
            self.data_dir,
            self.gpus_per_trial,
            dict(self._concurrency_by_host),
            self.topic,
            key,
            key=key,
            resources=resources,
            pure=False,
        )
        self._submitted[number] = _Submitted(slot, future, marker=key)

    def answer(self, slot_index: int, answer: RungAnswer) -> None:
        raise AssertionError("no rungs with backend dask: nobody asks")

    def poll(self, timeout: float) -> list[WorkerMessage]:
        """Starts and epochs of the trials in flight, then the trials that finished."""
        distributed = import_distributed()
        futures = [s.future for s in self._submitted.values()]
        if futures:
            try:
                distributed.wait(futures, timeout=timeout, return_when="FIRST_COMPLETED")
            except (TimeoutError, distributed.TimeoutError):
                pass
            except CancelledError:  # every future, when the client lost the scheduler
                if self.client.status != "running":
                    raise self._gone("the connection to it was lost") from None
        else:
            time.sleep(timeout)
        messages = self._events()
        for number, submitted in list(self._submitted.items()):
            if submitted.future.done():
                messages.extend(self._finished(number, submitted))
        return messages

    def _events(self) -> list[WorkerMessage]:
        """Starts and epochs of the trials in flight (late ones of finished trials dropped)."""
        messages: list[WorkerMessage] = []
        while True:
            try:
                event = dict(self.messages.get_nowait())
            except queue.Empty:
                return messages
            marker = event.pop(MARKER)
            message = from_wire(event)
            submitted = self._submitted.get(message.number)
            if submitted is None or marker != submitted.marker:
                continue
            if isinstance(message, TrialStarted):
                submitted.worker = message.placement.slot
            messages.append(replace(message, slot_index=submitted.slot.index))

    def _finished(self, number: int, submitted: _Submitted) -> list[WorkerMessage]:
        del self._submitted[number]
        future = submitted.future
        where = submitted.worker or "a Dask worker"
        try:
            outcome = future.result()
        except Exception as exc:  # KilledWorker, a cancelled future, a lost scheduler
            detail = " ".join(str(exc).split())[:200] or type(exc).__name__
            reason = f"{where}: {type(exc).__name__} {detail}"
            self._lost.append(WorkerLost(submitted.slot, number, reason))
            return []
        finally:
            with contextlib.suppress(Exception):  # forget the start marker on the scheduler
                import_distributed().Event(submitted.marker, client=self.client).clear()
        if isinstance(outcome, FirstWorkerLost):
            self._lost.append(WorkerLost(submitted.slot, number, f"Dask worker {where} lost"))
            return []
        return [replace(outcome, slot_index=submitted.slot.index)]

    def replace_dead(self) -> list[WorkerLost]:
        """Trials whose Dask worker died (Dask restarts workers itself)."""
        lost, self._lost = self._lost, []
        return lost

    def close(self, abandon: bool = False) -> None:
        """Cancel the trials in flight (Dask stops them) and leave the cluster."""
        with contextlib.suppress(Exception):  # a client that lost its scheduler is closed
            for submitted in self._submitted.values():
                submitted.future.cancel()
            self.client.unsubscribe_topic(self.topic)
        self.client.close()


def concurrency_by_host(workers: dict[str, Any], gpus_per_trial: int) -> dict[str, int]:
    """How many trials each host's Dask workers run at once (`workers`: scheduler_info's)."""
    by_host: dict[str, int] = {}
    for info in workers.values():
        if gpus_per_trial > 0:
            room = int(info.get("resources", {}).get("GPU", 0) // gpus_per_trial)
        else:
            room = int(info.get("nthreads", 1))
        by_host[info["host"]] = by_host.get(info["host"], 0) + room
    return by_host


def _check_data(client: Any, uses: list[DatasetUse], data_dir: str | None) -> None:
    """Every worker checks the data as a local run checks it here (they train; the
    submitting host may have none): files found, read through, subsets that fit them."""
    problems = client.run(_data_problem, uses, data_dir)
    for address, problem in sorted(problems.items()):
        if problem:
            raise DataError(f"Dask worker {address}: {problem}")


def _data_problem(uses: list[DatasetUse], data_dir: str | None) -> str | None:
    try:
        check_data_files(uses, data_dir)
    except DataError as exc:
        return exc.args[0]  # as raised: the CLI names its inputs by their options
    return None


# --- in the Dask worker process ---------------------------------------------------------------


_gpus = GpuLease()  # the GPUs of this worker process


def trial_threads(worker: Any, gpus_per_trial: int, at_submit: dict[str, int]) -> int:
    """Torch threads for a trial starting now: the host's cores over the trials its workers
    run at once, as the scheduler counts them now (a worker restarting when the trial was
    submitted is back by now: counted then, two trials took every core each), and never
    fewer than at submit (a worker away now comes back)."""
    from distributed import get_client

    host = worker.address.split("://")[-1].rsplit(":", 1)[0]
    try:
        workers = get_client().scheduler_info()["workers"]
    except (OSError, TimeoutError):  # the scheduler went away: the pool says so
        workers = {}
    now = concurrency_by_host(workers, gpus_per_trial).get(host, 1)
    return max(1, cpu_count() // max(1, now, at_submit.get(host, 1)))


@dataclass(frozen=True)
class FirstWorkerLost:
    """A task started a second time: the worker of its first start died mid-trial."""


def run_trial(
    task: TrialTask,
    data_dir: str | None,
    gpus_per_trial: int,
    at_submit: dict[str, int],
    topic: str,
    marker: str,
) -> TrialDone | TrialFailed | FirstWorkerLost:
    """The Dask task of one trial (slot_index -1: the pool knows the slot; `at_submit`: the
    trials each host ran at once when it was submitted)."""
    import torch
    from distributed import Event, get_worker

    worker = get_worker()
    first_start = Event(marker)
    if first_start.is_set():
        return FirstWorkerLost()
    first_start.set()

    torch.set_num_threads(trial_threads(worker, gpus_per_trial, at_submit))
    gpus: list[int] = []
    if gpus_per_trial > 0:
        declared = int(worker.state.total_resources.get("GPU", gpus_per_trial))
        try:
            gpus = _gpus.take(gpus_per_trial, declared)
        except DseError as exc:
            return TrialFailed(-1, task.number, type(exc).__name__, str(exc))
    device = f"cuda:{gpus[0]}" if gpus else "cpu"
    placement = Placement(worker.address, device, socket.gethostname(), str(worker.name))

    def send(message: WorkerMessage) -> None:
        worker.log_event(topic, {MARKER: marker, **to_wire(message)})

    send(TrialStarted(-1, task.number, placement))
    try:
        outcome = execute_trial(task, -1, device, data_dir, send)
    finally:
        _gpus.give_back(gpus)
    if isinstance(outcome, TrialDone):
        outcome = replace(outcome, placement=placement)
    return outcome
