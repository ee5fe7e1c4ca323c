"""Which failures are out of memory, and the one line they become."""

from __future__ import annotations

import pytest
import torch

from dse.errors import OutOfMemory
from dse.train.memory import is_out_of_memory, out_of_memory_error

CPU = (
    "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
    "you tried to allocate 32400000000 bytes. Error code 12 (Cannot allocate memory)"
)
CUDA = "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79 GiB"


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (RuntimeError(CPU), "out of memory: a tensor of 30.2 GiB did not fit"),
        (torch.OutOfMemoryError(CUDA), "out of memory: a tensor of 2.00 GiB did not fit"),
        (torch.OutOfMemoryError("simulated out of memory: batch of 50"), "batch of 50"),
        (MemoryError(), "out of memory: MemoryError;"),
    ],
)
def test_every_allocator_failure_is_out_of_memory(exc, line):
    assert is_out_of_memory(exc)
    error = out_of_memory_error(exc)
    assert isinstance(error, OutOfMemory) and line in str(error) and "\n" not in str(error)


@pytest.mark.parametrize("exc", [RuntimeError("shape mismatch"), ValueError(CPU), KeyError("x")])
def test_other_failures_are_not(exc):
    assert not is_out_of_memory(exc) and out_of_memory_error(exc) is None
