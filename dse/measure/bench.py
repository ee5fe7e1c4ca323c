"""`dse bench`: time full training steps of config variants side by side, against the ceiling.

A step is what the trainer does per batch: forward, loss, backward, optimizer update (on a
random batch of the dataset's shape). Variants are stepped in turn (round robin) after a
warm-up, so machine noise hits them alike and their ratios mean something. The device's
matmul ceiling (fp32 and bf16) is measured in the same run.
"""

from __future__ import annotations

import itertools
import resource
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch

from dse import yamlio
from dse.config import TrialConfig
from dse.data.datasets import INFO
from dse.errors import ConfigError, option
from dse.measure.quiet import native_stderr_silenced
from dse.model import build_model, summarize
from dse.model.costs import TRAIN_FLOPS_FACTOR
from dse.model.stacked import StackedCapsNet
from dse.train.compiled import compile_seconds, forward_loss
from dse.train.environment import bf16_hardware, synchronize
from dse.train.fused import can_fuse
from dse.train.trainer import build_optimizer, set_up_for_speed


@dataclass
class StepTiming:
    name: str
    batch: int
    ms_per_step: float  # median over the timed steps
    samples_per_s: float
    gflops: float  # achieved, from the analytic FLOP count
    ceiling_share: float  # gflops / the measured matmul ceiling of the variant's precision
    peak_mem_mb: float  # peak tensor memory of one step (CUDA: allocator; CPU: profiler)
    ratio: float = 1.0  # samples/s relative to the first variant
    process_rss_mb: float = 0.0  # peak resident set of the benchmarking process (all variants)
    compile_s: float = 0.0  # torch.compile's seconds compiling at the first step (0: eager)
    models: int = 1  # models stepped at once: K for a fused variant (dse.train.fused)
    samples_per_s_per_model: float = 0.0  # samples_per_s / models: each fused seed's pace
    threads: int = 0  # torch's CPU threads the steps ran with
    ceiling_gflops: float = 0.0  # the matmul ceiling of ceiling_share (the variant's precision)


class StepRunner:
    """One model + optimizer + a random batch of the right shape, ready to be stepped; with
    `models` K > 1, K CapsNets of the config fused as training fuses seeds (StackedCapsNet,
    a batch of `batch` per model, one Adam)."""

    def __init__(
        self,
        name: str,
        config: TrialConfig,
        device: torch.device,
        batch: int,
        compiled: bool = False,
        models: int = 1,
    ):
        info = INFO[config.dataset.name]
        self.name, self.config, self.device, self.batch = name, config, device, batch
        self.models = models
        shape = (info.channels, info.crop, info.crop)
        nets = []
        for k in range(models):  # seeded as seeds seed, seed+1, ... would be
            torch.manual_seed(config.seed + k)
            nets.append(build_model(config.model, shape, info.n_classes))
        per_model_flops = TRAIN_FLOPS_FACTOR * summarize(nets[0]).flops_per_sample * batch
        self.flops = per_model_flops * models
        if models > 1:
            self.model: torch.nn.Module = StackedCapsNet(nets).to(device)
            lead: tuple[int, ...] = (models, batch)
        else:
            self.model, lead = nets[0].to(device), (batch,)
        self.optimizer = build_optimizer(self.model, config)
        self.x = torch.rand(*lead, *shape, device=device)
        self.y = torch.randint(0, info.n_classes, lead, device=device)
        self.times: list[float] = []
        # Asked for, or the config's own setting; fused models train eagerly (dse.train.fused).
        self.compiled = (compiled or config.compile) and models == 1
        self.step_loss = forward_loss(
            self.model, config, device, compiled=self.compiled, batch_sizes=(batch,)
        )
        self.compile_s = 0.0  # torch.compile's seconds in the first step

    def step(self) -> float:
        """Seconds of one training step: CUDA events on a GPU, the wall clock on a CPU."""
        if self.device.type == "cuda":
            start_event = torch.cuda.Event(enable_timing=True)
            end_event = torch.cuda.Event(enable_timing=True)
            start_event.record()
            self._step()
            end_event.record()
            end_event.synchronize()
            return start_event.elapsed_time(end_event) / 1e3
        start = time.perf_counter()
        self._step()
        return time.perf_counter() - start

    def _step(self) -> None:
        loss = self.step_loss(self.x, self.y)["loss"].sum()  # fused: each model's own gradient
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def peak_memory_mb(self) -> float:
        """Peak tensor memory of one step, above what is allocated before it."""
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            base = torch.cuda.memory_allocated(self.device)
            self.step()
            return (torch.cuda.max_memory_allocated(self.device) - base) / 2**20
        return _cpu_step_peak_mb(self.step)


def _cpu_step_peak_mb(step) -> float:
    """The CPU allocator has no peak counter: replay the profiler's allocations and frees."""
    from torch.profiler import ProfilerActivity, profile

    with (
        native_stderr_silenced(),
        profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof,
    ):
        step()
    deltas = []
    for event in prof.events():
        delta = event.cpu_memory_usage if event.name == "[memory]" else event.self_cpu_memory_usage
        if delta:
            deltas.append((event.time_range.start, delta))
    current = peak = 0
    for _, delta in sorted(deltas):
        current += delta
        peak = max(peak, current)
    return peak / 2**20


def matmul_ceiling_gflops(device: torch.device, dtype: torch.dtype, seconds: float = 0.5) -> float:
    """Best GFLOP/s of square matmuls, doubling the size up to 2048 while the next size's
    product (8x the work) fits in `seconds`. bf16 converted in software (no CPU unit for it)
    multiplies at 1 GFLOP/s: stopping once one product took half of `seconds`, as before,
    spent 4.3 s at 1024 per call, where 512 gives the same rate."""
    n, best = 256, 0.0
    while True:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        a @ b  # warm-up
        synchronize(device)
        reps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 4 or reps < 2:
            a @ b
            synchronize(device)
            reps += 1
        elapsed = (time.perf_counter() - start) / reps
        best = max(best, 2 * n**3 / elapsed / 1e9)
        if n >= 2048 or 8 * elapsed > seconds:
            return best
        n *= 2


def variants_from(base: TrialConfig, compares: list[str]) -> dict[str, TrialConfig]:
    """`--compare KEY=V1,V2` options, crossed: one config per combination, named by its values."""
    axes: list[tuple[str, list[Any]]] = []
    for item in compares:
        key, options = compare_axis(item)
        if any(key == seen for seen, _ in axes):
            flag = option("compare")
            raise ConfigError(
                f"{flag} {key}: given twice; list its values once, {flag} {key}=V1,V2"
            )
        axes.append((key, options))
    if not axes:
        return {base.name or "config": base}
    variants = {}
    for combo in itertools.product(*(options for _, options in axes)):
        overrides = [f"{key}={value}" for (key, _), value in zip(axes, combo, strict=True)]
        name = " ".join(
            f"{key.split('.')[-1]}={value}" for (key, _), value in zip(axes, combo, strict=True)
        )
        variants[name] = base.with_overrides(overrides, option("compare"))
    return variants


def compare_axis(item: str) -> tuple[str, list[Any]]:
    """One `--compare KEY=V1,V2` (or KEY=[V1, V2]): its key and its distinct values."""
    flag = option("compare")
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"{flag} {item!r}: expected KEY=V1,V2,..., e.g. {flag} epochs=1,3")
    if not raw.strip():
        raise ConfigError(f"{flag} {item}: no values given after '='")
    values = yamlio.loads(raw, source=f"{flag} {key}")
    options = values if isinstance(values, list) else [v.strip() for v in str(values).split(",")]
    if any(str(v) == "" for v in options):
        raise ConfigError(f"{flag} {item}: an empty value; expected KEY=V1,V2,...")
    texts = [str(v) for v in options]
    repeated = next((t for i, t in enumerate(texts) if t in texts[:i]), None)
    if repeated is not None:
        raise ConfigError(f"{flag} {item}: {repeated} is listed twice")
    return key, options


@dataclass
class BenchReport:
    device: str
    threads: int
    batch: int
    ceilings: dict[str, float]  # GFLOP/s by precision
    rss_mb: float  # the process's peak resident set after the run
    timings: list[StepTiming]
    bf16: str = ""  # what bf16 matmuls run on here (environment.bf16_hardware)


def run_bench(
    variants: dict[str, TrialConfig],
    device: torch.device,
    batch: int,
    steps: int,
    warmup: int,
    compiled: bool = False,
    fused: int = 1,
) -> BenchReport:
    """Median step time of each variant, stepping them in turn, plus ceiling and memory;
    `compiled`: each variant also under torch.compile, a row of its own with its compile time;
    `fused` K > 1: each CapsNet variant also as K models fused, a row of its own."""
    set_up_for_speed(device)
    runners = [StepRunner(name, config, device, batch) for name, config in variants.items()]
    if fused > 1:
        runners += [
            StepRunner(f"{name} fused x{fused}", config, device, batch, models=fused)
            for name, config in variants.items()
            if can_fuse(config)
        ]
    if compiled:
        torch.compiler.reset()  # an earlier bench in this process must not hide the compile time
        runners += [
            StepRunner(f"{name} compiled", config, device, batch, compiled=True)
            for name, config in variants.items()
        ]
    for runner in runners:  # the first step: torch.compile compiles here, the others warm up
        compiled_before = compile_seconds()
        runner.step()
        runner.compile_s = compile_seconds() - compiled_before
    for _ in range(warmup):
        for runner in runners:
            runner.step()
    for _ in range(steps):
        for runner in runners:
            runner.times.append(runner.step())
    precisions = {r.config.precision for r in runners} | {"fp32"}
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    ceilings = {p: matmul_ceiling_gflops(device, dtypes[p]) for p in sorted(precisions)}
    timings = []
    threads = torch.get_num_threads()
    for runner in runners:
        median = statistics.median(runner.times)
        gflops = runner.flops / median / 1e9
        ceiling = ceilings[runner.config.precision]
        timings.append(
            StepTiming(
                name=runner.name,
                batch=batch,
                ms_per_step=median * 1e3,
                samples_per_s=batch * runner.models / median,
                gflops=gflops,
                ceiling_share=gflops / ceiling,
                peak_mem_mb=runner.peak_memory_mb(),
                compile_s=runner.compile_s,
                models=runner.models,
                samples_per_s_per_model=batch / median,
                threads=threads,
                ceiling_gflops=ceiling,
            )
        )
    for timing in timings:
        timing.ratio = timing.samples_per_s / timings[0].samples_per_s
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for timing in timings:
        timing.process_rss_mb = rss
    return BenchReport(str(device), threads, batch, ceilings, rss, timings, bf16_hardware(device))
