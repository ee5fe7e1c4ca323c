"""Measuring a configuration: step throughput (bench), op by op (profile), noise (calibrate)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from dse.commands.paths import check_output_dir, check_writable
from dse.config_bounds import seeds_overflow
from dse.errors import ConfigError, choose_from, option
from dse.output import Rows, Shown, note
from dse.presets import config_source, resolve_config
from dse.search.devices import check_threads, set_torch_threads
from dse.search.signals import interrupted_in_one_line


def bench(
    config: str | None,
    preset_name: str | None,
    overrides: list[str],
    device: str = "cpu",
    batch: int = 128,
    steps: int = 5,
    warmup: int = 2,
    compare: list[str] | None = None,
    threads: int | None = None,
    header: bool = True,
    compiled: bool = False,
    fused: int | None = None,
) -> Shown:
    """Full training steps of config variants side by side, against the matmul ceiling;
    `header`: a line with the device, threads and ceilings before the table; `compiled`: each
    variant also under torch.compile (its compile time in compile_s); `fused` K: each CapsNet
    variant also as K seeds fused (samples/s in all and per model)."""
    from dse.measure.bench import run_bench, variants_from
    from dse.train.fused import can_fuse
    from dse.train.trainer import resolve_device

    base = resolve_config(config, preset_name, overrides)
    check_threads(threads)
    torch_device = resolve_device(device)
    variants = variants_from(base, compare or [])
    if fused is not None:
        if fused < 2:
            raise ConfigError(f"{option('fused')} {fused}: fuses at least 2 models")
        if not any(can_fuse(v) for v in variants.values()):
            raise ConfigError(
                f"{option('fused')} {fused}: model.name is {base.model.name}; "
                "only CapsNet seeds train fused"
            )
        overflow = [
            (v.seed, why) for v in variants.values() if (why := seeds_overflow(v.seed, fused))
        ]
        if overflow:  # fused model k is seeded seed+k
            seed, why = overflow[0]
            raise ConfigError(f"{option('fused')} {fused} with seed {seed}: {why}")
    busy = set_torch_threads(threads, torch_device.type, "measured")
    with interrupted_in_one_line(lambda: "interrupted before the benchmark finished"):
        report = run_bench(variants, torch_device, batch, steps, warmup, compiled, fused or 1)
    preface = []
    if header:
        ceilings = ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in report.ceilings.items())
        preface.append(
            f"{report.device}, {report.threads} threads, batch {batch}; "
            f"matmul ceiling: {ceilings}; process peak RSS {report.rss_mb:.0f} MB; "
            f"bf16 runs on: {report.bf16}"
        )
    rows = [asdict(t) for t in report.timings]
    notes = [busy] if busy else []
    return Shown(tables=[Rows(rows, "training step")], preface=preface, notes=notes)


MODES = ("train", "test")
PROFILE_VIEWS = ("op", "layer")


def profile(
    config: str | None,
    preset_name: str | None,
    overrides: list[str],
    device: str = "cpu",
    steps: int = 3,
    warmup: int = 2,
    batch: int = 128,
    mode: str = "train",
    by: str = "op",
    top: int = 15,
    out: str = "results/profile",
    threads: int | None = None,
) -> Shown:
    """Op-by-op (or layer-by-layer) time and memory of a training or test step; `threads`:
    torch's (default: the CPUs other programs leave idle)."""
    from dse.measure.profile import profile_steps
    from dse.train.trainer import resolve_device

    if mode not in MODES:
        raise ConfigError(choose_from(option("mode"), mode, MODES))
    if by not in PROFILE_VIEWS:
        raise ConfigError(choose_from(option("by"), by, PROFILE_VIEWS))
    resolved = resolve_config(config, preset_name, overrides)
    check_threads(threads)
    torch_device = resolve_device(device)
    check_output_dir(out, "out")
    busy = set_torch_threads(threads, torch_device.type, "profiled")
    with interrupted_in_one_line(lambda: "interrupted before the profile finished"):
        result = profile_steps(resolved, torch_device, batch, steps, warmup, mode, Path(out))
    rows = [asdict(r) for r in (result.ops[:top] if by == "op" else result.layers)]
    notes = [
        f"measured step {result.step_ms:.1f} ms under the profiler; layers sum to "
        f"{result.layer_sum_ms:.1f} ms ({result.layer_sum_ms / result.step_ms:.0%})",
        f"table: {result.ops_csv} and {result.layers_csv}",
        f"trace: {result.trace} (open in ui.perfetto.dev or TensorBoard)",
        *([busy] if busy else []),
    ]
    return Shown(tables=[Rows(rows, f"{mode} step by {by}")], notes=notes)


def calibrate(
    config: str | None,
    preset_name: str | None,
    overrides: list[str],
    runs: int = 3,
    device: str = "cpu",
    data_dir: str | None = None,
    out: str | None = None,
    wrote_note: bool = True,
    threads: int | None = None,
) -> Shown:
    """Train one configuration `runs` times: the CV of epoch time and the spread of accuracy;
    the calibration is written to `out` (`dse run` stores it with the study). `threads`:
    torch's (default: the CPUs other programs leave idle)."""
    from dse.data.datasets import check_data
    from dse.measure.calibrate import DEFAULT_PATH, check_runs, run_calibration
    from dse.train.trainer import resolve_device

    out = out or DEFAULT_PATH
    base = resolve_config(config, preset_name, overrides)
    check_runs(base, runs)
    check_threads(threads)
    if out != DEFAULT_PATH or Path(out).parent.is_dir():
        check_writable(out, "out")  # a folder, a missing or read-only one: refused, as --save
    else:
        check_output_dir(Path(out).parent, "out")  # results/ is made, as by every command

    done = [0]  # runs finished, for the line of an interruption

    def on_run(i: int, result: dict[str, Any]) -> None:
        done[0] = i + 1
        note(
            f"run {i + 1}/{runs}: seed {result['config']['seed']}, train "
            f"{result['train_time_s']:.1f} s, val_accuracy {result['val_accuracy']:.4f}"
        )

    def stopped() -> str:
        return f"interrupted after {done[0]} of {runs} runs: {out} not written"

    device_type = resolve_device(device).type
    check_data(base.dataset, config_source(config, preset_name, overrides), data_dir)
    busy = set_torch_threads(threads, device_type, "trained")
    with interrupted_in_one_line(stopped):
        result = run_calibration(base, runs, device, data_dir, on_run)
    result.save(out)
    rows = [
        {"measure": "epoch time CV", "value": result.epoch_time_cv},
        {"measure": "train time CV", "value": result.train_time_cv},
        {"measure": "mean epoch time s", "value": result.epoch_time_mean_s},
        {"measure": "val accuracy mean", "value": result.val_accuracy_mean},
        {"measure": "val accuracy std", "value": result.val_accuracy_std},
        {"measure": "val accuracy spread", "value": result.val_accuracy_spread},
    ]
    title = f"calibration of {result.config} on {result.device}, {result.threads} torch thread(s)"
    notes = [*([f"wrote {out}"] if wrote_note else []), *([busy] if busy else [])]
    return Shown(tables=[Rows(rows, title)], data=result.to_dict(), notes=notes)
