"""`dse profile`: where a training (or test) step spends its time and memory, op by op and by layer.

Runs warm-up steps, then N steps under torch.profiler (shapes and memory recorded), and reports:

- ops: name, calls, self time per step, total time per step, self allocated bytes per step,
  and the op's share of all self time (the framework's op names: aten::convolution_backward,
  aten::bmm, ...);
- layers: the model's named scopes (conv1, primary_caps, class_caps.u_hat, class_caps.routing,
  decoder) plus loss and optimizer, each with its forward time and the backward time of the
  autograd nodes its forward ops created (matched by the profiler's sequence numbers), next to
  the measured wall time of a step.

On a GPU every time is the time of the GPU kernels an op (or a scope) launched, as the
profiler's CUDA activity records it; host-side time there is mostly kernel launches and says
little. On a CPU it is the host time.

It also writes the table as CSV and a Chrome trace (open it in https://ui.perfetto.dev or
TensorBoard).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function

from dse.config import TrialConfig
from dse.files import publish, publish_with
from dse.measure.bench import StepRunner
from dse.measure.quiet import native_stderr_silenced
from dse.train.environment import synchronize
from dse.train.precision import autocast
from dse.train.trainer import set_up_for_speed

STEP_SCOPES = ("loss", "optimizer")
BACKWARD_PREFIX = "autograd::engine::evaluate_function: "


@dataclass
class OpRow:
    name: str
    calls: float  # per step
    self_ms: float  # per step
    total_ms: float  # per step
    self_bytes: float  # per step
    share: float  # of all self time


@dataclass
class LayerRow:
    name: str
    forward_ms: float  # per step
    backward_ms: float  # per step
    total_ms: float
    share: float  # of the measured step time


@dataclass
class ProfileResult:
    mode: str
    steps: int
    step_ms: float  # measured wall time per step, under the profiler
    ops: list[OpRow]
    layers: list[LayerRow]
    trace: Path | None = None
    ops_csv: Path | None = None
    layers_csv: Path | None = None

    @property
    def layer_sum_ms(self) -> float:
        return sum(row.total_ms for row in self.layers)


def _layer_names(runner: StepRunner) -> list[str]:
    return [cost.name for cost in runner.model.costs()] + list(STEP_SCOPES)


def _scope_of(event, scopes: set[str]) -> str | None:
    node = event
    while node is not None:
        if node.name in scopes:
            return node.name
        node = node.cpu_parent
    return None


def profile_steps(
    config: TrialConfig,
    device: torch.device,
    batch: int = 128,
    steps: int = 3,
    warmup: int = 2,
    mode: str = "train",
    out_dir: Path | None = None,
) -> ProfileResult:
    set_up_for_speed(device)
    runner = StepRunner(config.name or "profile", config, device, batch)
    model, x, y = runner.model, runner.x, runner.y

    def step() -> None:
        if mode == "test":
            model.eval()
            with torch.no_grad(), autocast(config, device):
                model(x, reconstruct=False)  # what evaluation runs
            return
        model.train()
        with autocast(config, device):  # precision=bf16 profiles the bf16 step training runs
            out = model(x, y)
        with record_function("loss"):
            loss = model.loss(out, x, y)["loss"]
        runner.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        with record_function("optimizer"):
            runner.optimizer.step()

    for _ in range(warmup):
        step()
    on_gpu = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    with (
        native_stderr_silenced(),
        profile(activities=activities, record_shapes=True, profile_memory=True) as prof,
    ):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        synchronize(device)
        elapsed = time.perf_counter() - start
    step_ms = elapsed * 1e3 / steps
    result = ProfileResult(
        mode=mode,
        steps=steps,
        step_ms=step_ms,
        ops=_op_rows(prof, steps, on_gpu),
        layers=_layer_rows(prof, steps, set(_layer_names(runner)), step_ms, on_gpu),
    )
    if out_dir is not None:
        _write(result, prof, out_dir)
    return result


def _op_rows(prof, steps: int, on_gpu: bool) -> list[OpRow]:
    averages = [a for a in prof.key_averages() if a.key not in ("[memory]",)]
    rows = []
    for avg in averages:
        if avg.key in STEP_SCOPES or avg.key.startswith("ProfilerStep"):
            continue
        if on_gpu and avg.device_type != DeviceType.CPU:
            continue  # a kernel: its time is already its launching op's (counted once)
        rows.append(
            OpRow(
                name=avg.key,
                calls=avg.count / steps,
                self_ms=_self_us(avg, on_gpu) / 1e3 / steps,
                total_ms=_total_us(avg, on_gpu) / 1e3 / steps,
                self_bytes=(avg.self_device_memory_usage if on_gpu else avg.self_cpu_memory_usage)
                / steps,
                share=0.0,
            )
        )
    total_self = sum(r.self_ms for r in rows) or 1.0
    for row in rows:
        row.share = row.self_ms / total_self
    return sorted(rows, key=lambda r: r.self_ms, reverse=True)


def _self_us(event, on_gpu: bool) -> float:
    return event.self_device_time_total if on_gpu else event.self_cpu_time_total


def _total_us(event, on_gpu: bool) -> float:
    """Inclusive time: on a GPU, the kernels of the event and of everything inside it."""
    return event.device_time_total if on_gpu else event.cpu_time_total


def _layer_rows(prof, steps: int, scopes: set[str], step_ms: float, on_gpu: bool) -> list[LayerRow]:
    events = list(prof.events())
    forward = dict.fromkeys(scopes, 0.0)
    backward = dict.fromkeys(scopes, 0.0)
    seq_scope: dict[int, str] = {}
    for event in events:
        if event.name in scopes and not event.name.startswith(BACKWARD_PREFIX):
            parent = _scope_of(event.cpu_parent, scopes) if event.cpu_parent else None
            if parent is None:  # a top-level scope: count its inclusive time once
                forward[event.name] += _total_us(event, on_gpu)
        if event.sequence_nr >= 0 and not event.name.startswith(BACKWARD_PREFIX):
            scope = _scope_of(event, scopes)
            if scope is not None:
                seq_scope.setdefault(event.sequence_nr, scope)
    for event in events:
        if event.name.startswith(BACKWARD_PREFIX) and event.cpu_parent is None:
            scope = seq_scope.get(event.sequence_nr)
            if scope is not None:
                backward[scope] += _total_us(event, on_gpu)
    rows = []
    for name in scopes:
        fwd, bwd = forward[name] / 1e3 / steps, backward[name] / 1e3 / steps
        if fwd or bwd:
            rows.append(LayerRow(name, fwd, bwd, fwd + bwd, (fwd + bwd) / step_ms))
    return sorted(rows, key=lambda r: r.total_ms, reverse=True)


def _write(result: ProfileResult, prof, out_dir: Path) -> None:
    import pandas as pd

    out_dir.mkdir(parents=True, exist_ok=True)
    result.trace = out_dir / f"trace-{result.mode}.json"
    publish_with(result.trace, lambda partial: prof.export_chrome_trace(str(partial)))
    result.ops_csv = out_dir / f"profile-{result.mode}-ops.csv"
    publish(result.ops_csv, pd.DataFrame([r.__dict__ for r in result.ops]).to_csv(index=False))
    result.layers_csv = out_dir / f"profile-{result.mode}-layers.csv"
    layers = pd.DataFrame([r.__dict__ for r in result.layers])
    publish(result.layers_csv, layers.to_csv(index=False))
