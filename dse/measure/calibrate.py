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
from dse.config import TrialConfig, seeds_overflow
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

    @classmethod
    def from_runs(
        cls, config: str, device: str, seeds: list[int], results: list[dict[str, Any]]
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
    from dse.data.datasets import load_dataset
    from dse.train.environment import device_name
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
    return Calibration.from_runs(config.name or "config", device_name(torch_device), seeds, results)


def noise_ties(
    rows: list[dict[str, Any]], metric_names: list[str], calibration: dict[str, Any]
) -> list[tuple[int, int, str]]:
    """Pairs of front members whose every objective differs by less than the measured noise.

    Times (metrics ending in _s) compare relatively against the training-time CV, accuracies
    absolutely against the seed standard deviation; a metric without a measured noise (n_params,
    GFLOPs) never counts as tied. Returns (number, number, reason) for neighbours on the front.
    """
    noise = {}
    for name in metric_names:
        if name.endswith("_s"):
            noise[name] = ("relative", calibration["train_time_cv"])
        elif name.endswith("accuracy"):
            noise[name] = ("absolute", calibration["val_accuracy_std"])
    if set(noise) != set(metric_names):
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
    return [
        f"warning: front members {a} and {b} differ by less than the measured noise "
        f"({reason}; calibration on {calibration['device']})"
        for a, b, reason in noise_ties(rows, metric_names, calibration)
    ]
