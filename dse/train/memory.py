"""Out of memory: the one rule for what counts as it, shared by the trial workers (a trial's
failure kind, which --retry-oom acts on) and the command line (one line instead of a traceback).

A GPU raises torch.OutOfMemoryError (and so does the injected fault, dse.train.faults); a CPU
raises a plain RuntimeError from its allocator; numpy and Python raise MemoryError.
"""

from __future__ import annotations

import re
import sys

from dse.errors import OutOfMemory

# The CPU allocator's words (c10/core/impl/alloc_cpu.cpp): "DefaultCPUAllocator: can't
# allocate memory: you tried to allocate 32400000000 bytes. Error code 12 (...)".
_CPU_ALLOCATOR = "DefaultCPUAllocator: can't allocate memory"
# The size both name: "tried to allocate 32400000000 bytes", "Tried to allocate 2.00 GiB".
_SIZE = re.compile(r"tried to allocate ([0-9.]+) ?([A-Za-z]+)", re.IGNORECASE)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is an allocation that did not fit, on any device."""
    torch = sys.modules.get("torch")  # no torch loaded: no torch error
    if torch is not None and isinstance(exc, torch.OutOfMemoryError):
        return True
    if isinstance(exc, RuntimeError) and _CPU_ALLOCATOR in str(exc):
        return True
    return isinstance(exc, MemoryError)


def out_of_memory_error(exc: BaseException) -> OutOfMemory | None:
    """`exc` as one line a user can act on when it is out of memory; None for anything else."""
    if not is_out_of_memory(exc):
        return None
    match = _SIZE.search(str(exc))
    if match:
        amount, unit = match.groups()
        size = f"{int(amount) / 2**30:.1f} GiB" if unit.lower() == "bytes" else f"{amount} {unit}"
        what = f"a tensor of {size} did not fit"
    else:  # MemoryError, or the injected fault's own words
        what = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return OutOfMemory(f"out of memory: {what}; a smaller batch size or model may fit")
