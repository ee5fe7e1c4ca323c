"""Denormal floats flushed to zero in CPU training (the x86 FTZ and DAZ modes).

Adam's first moment of a weight whose gradient stays zero (the decoder's weights behind a ReLU
unit that no longer fires) decays by beta1 each step: after some 800 steps it sinks below
1.2e-38, into the denormal range, where x86 arithmetic runs through microcode at a fraction of
its speed. Small batches get there first (more steps per epoch). Measured on efficiency.yaml's
smallest model at batch 16 (`dse train`, 3,000 digits, 16 epochs, 1 thread, an AMX Xeon): each
epoch took 1.1 s until epoch 3, then 3.1-3.5 s, with half of the last decoder layer's Adam
moments denormal after 5 epochs; flushed, every epoch took 1.1 s (train_time_s 45.7 -> 17.4 s)
and the run ended at the same accuracies (val 0.983, test 0.981). A denormal is below 1.2e-38:
read as zero it moves no weight that a float32 step can resolve.

The mode belongs to a thread (torch's intra-op threads take it too): set by the thread that
trains, at the start of each run (trainer.prepare_device), so a worker thread that started
before it is covered. DSE_FLUSH_DENORMALS=0 turns it off, to measure without.
"""

from __future__ import annotations

import os

import torch


def flush_denormals() -> bool:
    """Flush denormals to zero in the calling thread's CPU arithmetic; True when in effect
    (False on a CPU without the modes, or when DSE_FLUSH_DENORMALS=0)."""
    if os.environ.get("DSE_FLUSH_DENORMALS", "1") == "0":
        return False
    return torch.set_flush_denormal(True)
