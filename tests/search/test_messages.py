"""Messages between the runner and its workers: plain-data round trips, and the pools' shape."""

from __future__ import annotations

import inspect

import pytest

from dse.search.dask_pool import DaskPool
from dse.search.messages import (
    EpochDone,
    Pool,
    RungQuestion,
    TrialDone,
    TrialFailed,
    TrialStarted,
    from_wire,
    to_wire,
)
from dse.search.records import EpochPoint, Placement
from dse.search.workers import WorkerPool
from dse.train.result import EpochRecord, TrialResult

RESULT = TrialResult(
    config={"seed": 3},
    train_time_s=1.5,
    time_to_best_s=1.0,
    best_epoch=1,
    val_accuracy=0.5,
    test_accuracy=0.4,
    n_params=10,
    peak_mem_mb=1.0,
    train_gflops=0.1,
    samples_per_s=100.0,
    history=[EpochRecord(1, 32, 10, 1e-3, 1e-3, 2.0, {"margin": 1.5}, 0.5, 1.5)],
    environment={"torch": "x"},
)
PLACED = Placement("tcp://10.0.0.1:1234", "cuda:1", "host-a", "worker-0")


@pytest.mark.parametrize(
    "message",
    [
        TrialStarted(-1, 7, PLACED),
        EpochDone(-1, 7, 9, EpochPoint(2, 32, 1.25, 2.5, 0.75)),
        RungQuestion(0, 7, 3),
        TrialDone(1, 7, RESULT, wall_s=4.0, placement=PLACED),
        TrialFailed(1, 7, "out of memory", "CUDA out of memory"),
    ],
    ids=lambda m: type(m).__name__,
)
def test_a_message_survives_its_plain_data_form(message):
    wire = to_wire(message)
    assert all(isinstance(v, str | int | float | dict | list | None) for v in wire.values())
    assert from_wire(wire) == message


def test_both_pools_implement_the_pool_protocol():
    local = WorkerPool([])  # no slot: no process started
    try:
        assert isinstance(local, Pool)
    finally:
        local.close()
    for name, member in inspect.getmembers(Pool, inspect.isfunction):
        if not name.startswith("_"):
            ours = inspect.signature(getattr(DaskPool, name))
            assert list(ours.parameters) == list(inspect.signature(member).parameters), name
