"""The clock of an epoch's training steps: what `epoch_time_s` and `train_time_s` count."""

from __future__ import annotations

import time

import torch

from dse.model import kernel_choice
from dse.train.compiled import compile_seconds
from dse.train.environment import synchronize


class StepsClock:
    """An epoch's training-step time: between two device synchronizations, less the set-up
    done meanwhile: timing kernels for this machine (once per machine and shape:
    dse.model.kernel_choice) and compiling (dse.train.compiled: `compiled_seconds`)."""

    def __init__(self, device: torch.device):
        self.device = device
        synchronize(device)
        self.start, self.timing_start = time.perf_counter(), kernel_choice.timing_seconds()
        self.compile_start = compile_seconds()

    def compiled_seconds(self) -> float:
        return compile_seconds() - self.compile_start

    def seconds(self) -> float:
        synchronize(self.device)
        timing = kernel_choice.timing_seconds() - self.timing_start
        return time.perf_counter() - self.start - timing - self.compiled_seconds()
