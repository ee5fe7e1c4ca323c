"""What crosses a process boundary in a search, defined once: the messages between the runner
and its workers, and the pool that carries them.

The runner hands a worker a `TrialTask`; the worker answers with `TrialStarted` (Dask: where it
landed), an `EpochDone` per finished epoch, a `RungQuestion` after an epoch that is a rung of
early stopping (it then waits for the runner's `RungAnswer`), and finally `TrialDone` or
`TrialFailed`. A pool reports a worker that died with `WorkerLost`. Local workers pickle these
through multiprocessing queues; Dask events carry them as plain data (`to_wire` / `from_wire`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol, runtime_checkable

from dse.search.devices import Slot
from dse.search.forms import EpochPoint, Placement
from dse.train.result import TrialResult


@dataclass(frozen=True)
class TrialTask:
    """Runner -> worker: train this config; after each epoch in `rungs`, ask before going on.
    `checkpoint`: the trial's per-epoch checkpoint file, resumed from when it is there (a retry
    of a trial whose worker died finds its failed run's), removed when the trial ends."""

    number: int
    config: dict[str, Any]  # a TrialConfig as a dict
    rungs: tuple[int, ...] = ()
    checkpoint: str | None = None  # a path the worker can reach (None: no checkpoints)
    keep_checkpoint: bool = False  # keep the file when the trial ends


@dataclass(frozen=True)
class RungAnswer:
    """Runner -> worker waiting at a rung: go on training, or stop at this epoch."""

    proceed: bool


@dataclass(frozen=True)
class TrialStarted:
    slot_index: int
    number: int
    placement: Placement


@dataclass(frozen=True)
class EpochDone:
    slot_index: int
    number: int
    epochs: int  # of the whole run
    point: EpochPoint


@dataclass(frozen=True)
class RungQuestion:
    """The worker finished a rung's epoch and waits for a RungAnswer."""

    slot_index: int
    number: int
    epoch: int


@dataclass(frozen=True)
class TrialDone:
    slot_index: int
    number: int
    result: TrialResult
    wall_s: float  # the whole task: loading data, training, evaluating
    placement: Placement | None = None  # where it ran, for its environment record


@dataclass(frozen=True)
class TrialFailed:
    slot_index: int
    number: int
    kind: str  # "out of memory", a DseError's class name, or "bug: <exception class>"
    message: str


WorkerMessage = TrialStarted | EpochDone | RungQuestion | TrialDone | TrialFailed
MESSAGE_TYPES = {kind.__name__: kind for kind in WorkerMessage.__args__}
NESTED_TYPES = {"placement": Placement, "point": EpochPoint, "result": TrialResult}


def to_wire(message: WorkerMessage) -> dict[str, Any]:
    """A message as plain data (for transports that carry no Python objects)."""
    return {"type": type(message).__name__, **asdict(message)}


def from_wire(data: dict[str, Any]) -> WorkerMessage:
    kind = MESSAGE_TYPES[data["type"]]
    values = {f.name: data[f.name] for f in fields(kind)}
    for name, value in values.items():
        nested = NESTED_TYPES.get(name)
        if nested is not None and isinstance(value, dict):
            values[name] = nested.from_dict(value) if nested is TrialResult else nested(**value)
    return kind(**values)


@dataclass(frozen=True)
class WorkerLost:
    """A worker died (killed, crashed, its Dask worker lost), with the trial it held."""

    slot: Slot
    number: int | None
    reason: str


@runtime_checkable
class Pool(Protocol):
    """Workers that train trials: local processes (workers.py) or a Dask cluster (dask_pool.py)."""

    slots: list[Slot]

    def idle(self) -> list[Slot]: ...
    def submit(self, slot: Slot, task: TrialTask) -> None: ...
    def answer(self, slot_index: int, answer: RungAnswer) -> None: ...
    def poll(self, timeout: float) -> list[WorkerMessage]: ...
    def replace_dead(self) -> list[WorkerLost]: ...
    def close(self, abandon: bool = False) -> None:
        """Stop the workers; `abandon`: at once, trials in flight included."""
