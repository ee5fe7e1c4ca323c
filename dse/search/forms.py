"""The stored forms a trial's record is made of: where it ran (Placement), each finished epoch
(EpochPoint), and MO-ASHA's decision at a rung (Decision). Read and written as part of a
trial's record (records.TrialRecord), which re-exports them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Placement:
    """Where a trial runs, as recorded with it."""

    slot: str  # "cpu#0", "cuda:1#1", or the Dask worker's address
    device: str  # "cpu" or "cuda:N"
    host: str | None = None
    dask_worker: str | None = None  # the Dask worker's name (Dask runs only)


@dataclass(frozen=True)
class EpochPoint:
    """One finished epoch of a trial, as the worker reports it and the trial's curve keeps it."""

    epoch: int  # counted from 1
    batch_size: int
    epoch_time_s: float
    elapsed_train_s: float  # training time of epochs 1..epoch
    val_accuracy: float
    # Wall seconds from the trial's dispatch to the runner hearing of this epoch (set by the
    # runner; None in curves stored before): how long an attempt had run at its last checkpoint.
    at_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    """MO-ASHA's decision for a trial at a rung, as stored in the trial's record."""

    rung: int
    values: tuple[float, ...]  # the objectives estimated at the rung
    proceed: bool
    position: int  # 1-based, in the rung's order
    of: int  # records ranked, the newcomer included
    cutoff: int  # how many positions go on: floor(of / eta) + 1
    # An earlier rung whose records, as they stand at this rung, stopped the trial (the rest is
    # its ranking there); None: ranked at this rung (and every decision stored before)
    ranked_at: int | None = None

    def to_attr(self) -> dict[str, Any]:
        stored = {
            "values": list(self.values),
            "proceed": self.proceed,
            "position": self.position,
            "of": self.of,
            "cutoff": self.cutoff,
        }
        return stored if self.ranked_at is None else {**stored, "ranked_at": self.ranked_at}

    @classmethod
    def from_attr(cls, rung: int, stored: dict[str, Any]) -> Decision:
        values = tuple(stored["values"])
        proceed, position, of, cutoff = (stored[k] for k in ("proceed", "position", "of", "cutoff"))
        return cls(rung, values, proceed, position, of, cutoff, stored.get("ranked_at"))


def param_key(params: dict[str, Any]) -> str:
    """A stable identity of a point: its params, sorted."""
    return repr(sorted(params.items()))
