"""`dse calibrate`: how much do training time and accuracy move here, run to run?

One configuration trains N times on the chosen device with seeds seed, seed+1, ... (so the
accuracy spread is the seed's); the result is the yardstick for reading a front: `dse run`
stores the latest calibration with its study, and `dse pareto` warns when two front members
differ by less than it. Epoch times leave out each run's first epoch when there are several
(it carries one-off costs: allocator warm-up, kernel selection).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from dse import yamlio
from dse.config import TrialConfig
from dse.config_bounds import seeds_overflow
from dse.errors import ConfigError, option
from dse.files import publish

DEFAULT_PATH = "results/calibration.json"


def coefficient_of_variation(values: Sequence[float]) -> float:
    """Sample standard deviation (ddof=1) over the mean; 0 for fewer than two values."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2 or x.mean() == 0:
        return 0.0
    return float(x.std(ddof=1) / x.mean())


@dataclass(frozen=True)
class Calibration:
    config: str
    device: str
    runs: int
    seeds: list[int]
    train_time_s: list[float]
    epoch_time_mean_s: float
    epoch_time_cv: float  # over every counted epoch of every run
    train_time_cv: float  # over the runs' total training times
    val_accuracy: list[float]
    val_accuracy_mean: float
    val_accuracy_std: float  # ddof=1, over the seeds
    val_accuracy_spread: float  # max - min
    created: str
    # What else the times depend on, as `dse bench` rows say it (StepTiming.threads,
    # BenchReport.bf16): torch's CPU threads and what bf16 matmuls run on
    # (environment.bf16_hardware); `device` names the CPU or GPU. None: a file written before
    # dse recorded them (calibrated_threads reads a stored one).
    threads: int | None = None
    bf16: str | None = None

    @classmethod
    def from_runs(
        cls,
        config: str,
        device: str,
        seeds: list[int],
        results: list[dict[str, Any]],
        threads: int | None = None,
        bf16: str | None = None,
    ) -> Calibration:
        """From TrialResult dicts (train_time_s, val_accuracy, history[].epoch_time_s)."""
        epochs = []
        for result in results:
            times = [record["epoch_time_s"] for record in result["history"]]
            epochs.extend(times[1:] if len(times) > 1 else times)
        accuracy = [r["val_accuracy"] for r in results]
        train_times = [r["train_time_s"] for r in results]
        return cls(
            config=config,
            device=device,
            runs=len(results),
            seeds=seeds,
            train_time_s=train_times,
            epoch_time_mean_s=float(np.mean(epochs)),
            epoch_time_cv=coefficient_of_variation(epochs),
            train_time_cv=coefficient_of_variation(train_times),
            val_accuracy=accuracy,
            val_accuracy_mean=float(np.mean(accuracy)),
            val_accuracy_std=float(np.std(accuracy, ddof=1)) if len(accuracy) > 1 else 0.0,
            val_accuracy_spread=float(max(accuracy) - min(accuracy)),
            created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            threads=threads,
            bf16=bf16,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        publish(path, json.dumps(self.to_dict(), indent=2) + "\n")


def load_calibration(path: str | Path) -> dict[str, Any]:
    """A calibration file written by `dse calibrate`, as a dict."""
    text = yamlio.read_text(path, f"{option('calibration')} {path}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{option('calibration')} {path}: not JSON (line {exc.lineno})") from None
    needed = {"epoch_time_cv", "train_time_cv", "val_accuracy_std"}
    missing = needed - set(data) if isinstance(data, dict) else needed
    if missing:
        raise ConfigError(
            f"{option('calibration')} {path}: not a dse calibration (missing {missing})"
        )
    return data


def check_runs(config: TrialConfig, runs: int) -> None:
    """Refuse, before anything trains, runs whose seeds leave torch's range: run i trains
    seeds seed+i .. seed+i+repeats-1."""
    why = seeds_overflow(config.seed, runs + config.repeats - 1)
    if why:
        repeats = f" and repeats {config.repeats}" if config.repeats > 1 else ""
        raise ConfigError(f"{option('runs')} {runs} with seed {config.seed}{repeats}: {why}")


def run_calibration(
    config: TrialConfig,
    runs: int,
    device: str,
    data_dir: str | None,
    on_run: Callable[[int, dict[str, Any]], None] | None = None,
) -> Calibration:
    """Train `config` `runs` times with consecutive seeds, one after another."""
    import torch

    from dse.data.datasets import load_dataset
    from dse.train.environment import bf16_hardware, device_name
    from dse.train.seeds import train_seeds
    from dse.train.trainer import resolve_device

    check_runs(config, runs)
    torch_device = resolve_device(device)
    data = load_dataset(config.dataset, torch_device, data_dir)
    seeds = [config.seed + i for i in range(runs)]
    results = []
    for i, seed in enumerate(seeds):
        result = train_seeds(config.with_overrides([f"seed={seed}"]), torch_device, data=data)
        results.append(result.to_dict())
        if on_run is not None:
            on_run(i, results[-1])
    name = config.name or "config"
    return Calibration.from_runs(
        name,
        device_name(torch_device),
        seeds,
        results,
        threads=torch.get_num_threads(),  # what the runs trained with (set by the command)
        bf16=bf16_hardware(torch_device),
    )


def calibrated_threads(calibration: dict[str, Any]) -> int | None:
    """The torch threads (Calibration.threads) of a stored calibration: a file, or a study's
    copy; None where it was written before dse recorded them."""
    threads = calibration.get("threads")
    return threads if isinstance(threads, int) else None


def measured_noise(
    metric_names: list[str], calibration: dict[str, Any]
) -> dict[str, tuple[str, float]] | None:
    """Each objective's noise, ("relative", training-time CV) for a time (a metric ending in
    _s) or ("absolute", seed std) for an accuracy; None when an objective has none measured
    (n_params, GFLOPs): the calibration then judges no pair."""
    noise = {}
    for name in metric_names:
        if name.endswith("_s"):
            noise[name] = ("relative", calibration["train_time_cv"])
        elif name.endswith("accuracy"):
            noise[name] = ("absolute", calibration["val_accuracy_std"])
    return noise if set(noise) == set(metric_names) else None


def noise_ties(
    rows: list[dict[str, Any]], metric_names: list[str], calibration: dict[str, Any]
) -> list[tuple[int, int, str]]:
    """Pairs of front members whose every objective differs by less than the measured noise.

    Times (metrics ending in _s) compare relatively against the training-time CV, accuracies
    absolutely against the seed standard deviation; a metric without a measured noise (n_params,
    GFLOPs) never counts as tied. Returns (number, number, reason) for neighbours on the front.
    """
    noise = measured_noise(metric_names, calibration)
    if noise is None:
        return []
    ties = []
    for a, b in pairwise(rows):
        parts = []
        for name, (kind, size) in noise.items():
            diff = abs(a[name] - b[name])
            if kind == "relative":
                diff /= max(abs(a[name]), abs(b[name]), 1e-12)
            if diff >= size:
                break
            shown = (
                f"{diff:.1%} < CV {size:.1%}"
                if kind == "relative"
                else (f"{100 * diff:.2f} < std {100 * size:.2f} points")
            )
            parts.append(f"{name} {shown}")
        else:
            ties.append((a["number"], b["number"], "; ".join(parts)))
    return ties


def noise_warnings(
    rows: list[dict[str, Any]], metric_names: list[str], calibration: dict[str, Any]
) -> list[str]:
    """A warning per pair of front neighbours closer than the measured noise: their order on
    the front is noise (`noise_ties`)."""
    threads = calibrated_threads(calibration)
    where = calibration["device"] + (f", {threads} torch thread(s)" if threads else "")
    return [
        f"warning: front members {a} and {b} differ by less than the measured noise "
        f"({reason}; calibration on {where})"
        for a, b, reason in noise_ties(rows, metric_names, calibration)
    ]


def threads_notes(
    metric_names: list[str], calibration: dict[str, Any], trial_threads: set[int]
) -> list[str]:
    """A line where the calibration's time CV judges times taken with other torch threads
    (`trial_threads`: those the compared trials trained with), or where the calibration does
    not say its threads (written before dse recorded them): a CV is one thread count's."""
    noise = measured_noise(metric_names, calibration)
    if noise is None or all(kind != "relative" for kind, _ in noise.values()):
        return []  # no time judged by it
    threads = calibrated_threads(calibration)
    trials = ", ".join(str(n) for n in sorted(trial_threads)) or "unknown"
    if threads is None:
        return [
            f"note: the calibration on {calibration.get('device', 'an unnamed device')} does not "
            f"say how many torch threads it timed (written by an older dse); the front's trials "
            f"trained with {trials}: rerun `dse calibrate` to judge their times by a CV of theirs"
        ]
    if trial_threads and trial_threads != {threads}:
        return [
            f"note: the calibration timed {threads} torch thread(s), the front's trials trained "
            f"with {trials}: its time CV is another thread count's noise"
        ]
    return []
