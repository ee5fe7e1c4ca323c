"""What a training run records (SPEC: What every trial records)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

# The metrics a trial reports; search objectives are chosen among these.
METRICS = (
    "train_time_s",
    "time_to_best_s",
    "val_accuracy",
    "test_accuracy",
    "n_params",
    "peak_mem_mb",
    "train_gflops",
)
# Counts: integers, though optuna stores an objective's value as a float.
COUNT_METRICS = ("n_params",)
# What a run costs: a fused seed (dse.train.fused) trains with others in one model, so its
# costs are its group's, and a trial with fused seeds reports those of its standalone seed.
COST_METRICS = ("train_time_s", "time_to_best_s", "peak_mem_mb")
# Metrics stored under another name before: `params` was the model's parameter count; dse now
# keeps that word for a trial's hyperparameters, as optuna does. Old studies and spaces read on.
RENAMED_METRICS = {"params": "n_params"}


def current_metric(name: str) -> str:
    """A metric's name today, for a name an old study or space may hold."""
    return RENAMED_METRICS.get(name, name)


def current_metrics(values: dict[str, Any]) -> dict[str, Any]:
    """Metric values keyed by today's names."""
    return {current_metric(name): value for name, value in values.items()}


@dataclass(frozen=True)
class EpochRecord:
    epoch: int  # counted from 1
    batch_size: int
    steps: int
    lr_first: float  # LR of the epoch's first and last optimizer steps
    lr_last: float
    train_loss: float  # mean over the epoch's samples
    loss_parts: dict[str, float]  # margin, reconstruction (CapsNet) or cross_entropy (CNN)
    val_accuracy: float
    epoch_time_s: float  # training steps only, device-synchronized (kernel timing left out)
    compile_s: float = 0.0  # torch.compile's seconds meanwhile (config compile), left out too


@dataclass(frozen=True)
class TrialResult:
    config: dict[str, Any]  # the resolved TrialConfig
    train_time_s: float  # wall time of all training steps (no evaluation, no checkpoints)
    time_to_best_s: float  # training time up to the end of the best validation epoch
    best_epoch: int
    val_accuracy: float  # best over the epochs: the selection metric
    test_accuracy: float  # of the best-validation weights; reported, never used to select
    n_params: int  # the model's trainable parameters
    peak_mem_mb: float  # CUDA: peak allocated; CPU: the peak resident set during this run
    train_gflops: float  # analytic: 3 x forward FLOPs x samples processed
    samples_per_s: float
    # torch.compile's seconds (config.compile; its epochs' compile_s): set-up, not in
    # train_time_s (dse.train.compiled)
    compile_s: float = 0.0
    history: list[EpochRecord] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    # With repeats > 1: each seed's metrics (seed first), and the metrics' std over the seeds;
    # the fields above are then the means (history, best_epoch: the first seed's; with fused
    # seeds, the costs too: see mean_of).
    per_seed: list[dict[str, float]] = field(default_factory=list)
    seed_std: dict[str, float] = field(default_factory=dict)
    stopped_at: int | None = None  # the epoch early stopping ended the run at (None: ran all)
    # Resumed from a per-epoch checkpoint (dse.train.resume): the complete epochs it restored
    # of the seed it resumed in, and with repeats that seed's index (None: trained from scratch).
    resumed_from_epoch: int | None = None
    resumed_seed: int | None = None
    # Trained fused with other seeds (dse.train.fused): the times are the fused group's.
    fused: bool = False

    def metrics(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in METRICS}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def mean_of(cls, results: list[TrialResult], config: dict[str, Any]) -> TrialResult:
        """One result for several seeds of a config: means, per-seed values and their std.

        With fused seeds (each marked `fused` in per_seed) the costs (COST_METRICS,
        samples_per_s) are the first seed's, which trained alone: the cost of one run; their
        std is over the standalone seeds (left out with fewer than two).
        """
        import numpy as np

        first = results[0]
        fused = any(r.fused for r in results)
        per_seed = [
            {"seed": r.config["seed"], **r.metrics(), **({"fused": r.fused} if fused else {})}
            for r in results
        ]

        def over(name: str, seeds: list[TrialResult]) -> tuple[float, float]:
            values = [getattr(r, name) for r in seeds]
            std = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
            return float(np.mean(values)), std

        alone = [r for r in results if not r.fused]
        stats = {m: over(m, alone if fused and m in COST_METRICS else results) for m in METRICS}
        samples_per_s = over("samples_per_s", alone if fused else results)[0]
        return replace(
            first,
            config=config,
            **{**{m: mean for m, (mean, _) in stats.items()}, "n_params": first.n_params},
            samples_per_s=samples_per_s,
            compile_s=math.fsum(r.compile_s for r in results),  # every seed's compiling
            per_seed=per_seed,
            seed_std={m: std for m, (_, std) in stats.items() if not np.isnan(std)},
        )

    @staticmethod
    def seconds_spent(per_seed: list[dict[str, Any]]) -> float:
        """Training seconds all the seeds of a result spent (its per_seed): each standalone
        seed's, and a fused group's once (every fused seed reports the group's time)."""
        alone = sum(seed["train_time_s"] for seed in per_seed if not seed.get("fused"))
        fused = [seed["train_time_s"] for seed in per_seed if seed.get("fused")]
        return alone + max(fused, default=0.0)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialResult:
        result = cls(**data)  # history still as dicts: read each back into its record
        return replace(result, history=[EpochRecord(**record) for record in result.history])
