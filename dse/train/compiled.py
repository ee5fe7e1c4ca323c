"""A training step's forward and loss, under torch.compile when the config asks
(TrialConfig.compile), and the seconds compiling takes.

torch.compile traces the model's forward, its loss and the backward passes written by hand
(routing, squash, the convolutions' chosen kernels) into one graph that inductor fuses. It
compiles at the first step of each batch size of the schedule (an AdaBatch change compiles
again; an epoch's smaller last batch runs eagerly): seconds that are set-up, not training, so
the trainer leaves them out of `train_time_s` and reports them as `compile_s`. Inductor
caches the compiled code on disk (TORCHINDUCTOR_CACHE_DIR, by default
/tmp/torchinductor_USER), so on one machine the trials of a study after the first of a shape
load it instead of compiling it again.

Measured with `dse bench --compile` (2 threads, a 2-core AMX Xeon): efficiency.yaml's
smallest model at batch 32 stepped 1.28x faster compiled, quick.yaml's width at batch 64
1.19x, the standard CapsNet at batch 128 as fast as eagerly (658 against 646 ms).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection

import torch
from torch import nn

from dse.config import TrialConfig
from dse.model import kernel_choice
from dse.train.precision import autocast
from dse.train.torch_private import on_compilations

LossParts = dict[str, torch.Tensor]
ForwardLoss = Callable[[torch.Tensor, torch.Tensor], LossParts]


class _CompileClock:
    """Seconds spent in torch.compile's compilations in this process (dynamo's callbacks
    run at the start and end of each outermost compilation, a lazily compiled backward too),
    less the kernel timing done while tracing (dse.model.conv chooses kernels then): that is
    counted by kernel_choice.timing_seconds already."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.total = 0.0
        self.started: tuple[float, float] | None = None  # (wall clock, kernel timing) at start

    def install(self) -> None:
        """Register the callbacks, again after torch.compiler.reset() (which clears them)."""
        with self.lock:
            on_compilations(self._start, self._end)

    def _start(self, _args: object) -> None:
        self.started = time.perf_counter(), kernel_choice.timing_seconds()

    def _end(self, _args: object) -> None:
        if self.started is not None:
            wall, timing = self.started
            kernel_timing = kernel_choice.timing_seconds() - timing
            self.total += time.perf_counter() - wall - kernel_timing
            self.started = None


_clock = _CompileClock()


def compile_seconds() -> float:
    """Seconds torch.compile has spent compiling in this process so far."""
    _clock.install()
    return _clock.total


def forward_loss(
    model: nn.Module,
    config: TrialConfig,
    device: torch.device,
    compiled: bool | None = None,
    batch_sizes: Collection[int] = (),
) -> ForwardLoss:
    """(x, labels) -> the model's loss parts ({'loss': ..., ...}), the forward under the
    config's precision; compiled when `compiled` (by default config.compile) is true, for
    the `batch_sizes` of the schedule: a batch of another size (an epoch's smaller last
    batch) runs eagerly. Compiling a graph for any size at the second size (torch's dynamic
    recompile) cost more than that one step an epoch: a 2-epoch trial of a small CapsNet
    (batch 32, 3,000 digits) compiled 9.3 s against 5.7 s for a new width, 20.6 against 14.4
    s with an empty cache, 1.9 against 1.5 s with a warm one (2 AMX Xeon cores)."""

    def step_loss(x: torch.Tensor, y: torch.Tensor) -> LossParts:
        with autocast(config, device):
            out = model(x, y)
        return model.loss(out, x, y)

    if not (config.compile if compiled is None else compiled):
        return step_loss
    _clock.install()
    compiled_step = torch.compile(step_loss, dynamic=False)  # one static graph per size
    sizes = frozenset(batch_sizes)

    def step(x: torch.Tensor, y: torch.Tensor) -> LossParts:
        return compiled_step(x, y) if x.shape[0] in sizes else step_loss(x, y)

    return step
