"""What `dse run` is asked besides the space (RunOptions), checked in one place, and the plan
of the run it resolves to: the sampler, the trial budget, the grid, the base config."""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dse.config import TrialConfig
from dse.errors import ConfigError, choose_from, option
from dse.output import file_stem
from dse.search.devices import Slot, cpu_count, plan_slots
from dse.search.early_stop import EarlyStop
from dse.search.grid_order import spread_order
from dse.search.outage import DEFAULT_OUTAGE_LIMIT_S
from dse.search.storage import DEFAULT_STORAGE, OPEN_WAIT_S, journal_path, sqlite_path
from dse.search.study import SAMPLERS
from dse.space import DatasetUse, SearchSpace
from dse.space.axes import all_axes

BACKENDS = ("local", "dask")


@dataclass(frozen=True)
class RunOptions:
    """How to run a space's study: where it is stored, how it samples, where trials train."""

    storage: str = DEFAULT_STORAGE
    study_name: str | None = None  # default: the space's name
    sampler: str | None = None  # one of SAMPLERS; default: grid if the grid fits, else tpe
    n_trials: int | None = None  # the budget; default: the space's n_trials, else its grid
    seed: int = 0  # the sampler's seed
    gpus: str | None = None  # local: GPU indices like "0,1", or "cpu"; default: every GPU
    workers: int | None = None  # local: worker processes (CPU), or workers dealt over GPUs
    data_dir: str | None = None
    calibration: dict[str, Any] | None = None  # from `dse calibrate`, stored with the study
    retry_oom: bool = False  # retry an out-of-memory trial once at half the batch size
    backend: str = "local"  # local | dask
    scheduler: str | None = None  # the Dask scheduler's address, for backend dask
    gpus_per_trial: int | None = None  # dask: GPUs a trial asks for (default: 1 if declared)
    early_stop: EarlyStop | None = None  # MO-ASHA rungs and eta; None runs every trial in full
    extend: bool = False  # run an existing study with another space: its points join the study
    db_outage_limit: float = DEFAULT_OUTAGE_LIMIT_S  # seconds the database may stay unreachable
    checkpoint_dir: str | None = None  # per-epoch trial checkpoints; default: beside the database
    keep_checkpoints: bool = False  # keep a trial's checkpoint after it ends

    @property
    def open_wait_s(self) -> float:
        """How long a database server that does not answer yet (restarting) is waited for as
        the run starts, and as it ends and reads the front: briefly, never past the limit."""
        return min(OPEN_WAIT_S, self.db_outage_limit)

    def validate(self, space: SearchSpace) -> None:
        """Every combination of options that cannot run, before anything starts (and, for
        local workers, `plan_slots` checks the GPU list against the GPUs present)."""
        if self.sampler is not None and self.sampler not in SAMPLERS:
            raise ConfigError(choose_from(option("sampler"), self.sampler, SAMPLERS))
        if self.sampler == "grid" and not space.finite:
            raise ConfigError(
                f"{option('sampler')} grid: {space.source} has continuous ranges (no grid)"
            )
        if not 0 <= self.seed < 2**32:  # numpy's seed range, which the samplers use
            raise ConfigError(f"{option('seed')} {self.seed}: must be 0 to {2**32 - 1}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"{option('workers')} {self.workers}: must be at least 1")
        if not self.db_outage_limit >= 0:
            raise ConfigError(
                f"{option('db_outage_limit')} {self.db_outage_limit}: must be 0 seconds or more"
            )
        self._check_backend()
        if self.early_stop is not None:
            self.early_stop.check(space.metric_names, space.source)
            if space.base_config().repeats > 1:
                raise ConfigError(
                    f"{space.source}: {option('early_stop')} with repeats: rungs compare one "
                    "training curve per trial; use one or the other"
                )
            self._warn_if_no_rung(space)

    def _warn_if_no_rung(self, space: SearchSpace) -> None:
        """Successive halving's rungs need eta times the first (epoch 1) to fit in the run:
        runs shorter than eta epochs (2 with eta 3) are never stopped, unless --rungs says.
        Given rungs at or past the longest run's last epoch never decide: named, not refused
        (a space may have runs of several lengths, and the others decide)."""
        stop = self.early_stop
        if stop is None:
            return
        if stop.rungs is not None:
            lengths = space.run_lengths()
            note = stop.idle_rungs_note(max(lengths), longest=len(lengths) > 1)
            if note:
                warnings.warn(note, stacklevel=2)
            return
        if any(axis.key == "epochs" for axis in all_axes(space.axes)):
            return  # each run's own length decides
        epochs = space.base_config().epochs
        if not stop.rungs_for(epochs):
            warnings.warn(
                f"{option('early_stop')} moasha: runs of {epochs} epochs have no rung with eta "
                f"{stop.eta:.12g} (successive halving's need {stop.eta:.12g} x the rung to fit in "
                f"the run), so no trial is stopped; pass {option('rungs')} 1 to decide after "
                "epoch 1",
                stacklevel=2,
            )

    def _check_backend(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(choose_from(option("backend"), self.backend, BACKENDS))
        if self.backend == "local":
            if self.scheduler is not None or self.gpus_per_trial is not None:
                given = "scheduler" if self.scheduler is not None else "gpus_per_trial"
                raise ConfigError(f"{option(given)} needs {option('backend')} dask")
            return
        if self.scheduler is None:
            raise ConfigError(
                f"{option('backend')} dask needs {option('scheduler')} tcp://HOST:8786"
            )
        if self.early_stop is not None:
            raise ConfigError(
                f"{option('early_stop')} with {option('backend')} dask: rung decisions reach "
                f"local workers only (use {option('backend')} local, or several `dse run` on "
                "one PostgreSQL study)"
            )
        if self.gpus is not None or self.workers is not None:
            given = "gpus" if self.gpus is not None else "workers"
            raise ConfigError(
                f"{option(given)} with {option('backend')} dask: the Dask workers decide "
                f"(use {option('gpus_per_trial')})"
            )
        if self.gpus_per_trial is not None and self.gpus_per_trial < 0:
            raise ConfigError(
                f"{option('gpus_per_trial')} {self.gpus_per_trial}: must be 0 or more"
            )


def choose_sampler(space: SearchSpace, sampler: str | None, n_trials: int | None) -> str:
    """The sampler asked for; by default grid for a finite space whose grid fits the budget,
    else tpe."""
    if sampler is not None:
        return sampler
    if space.finite:
        budget = n_trials or space.n_trials
        if budget is None or budget >= (space.grid_size() or 0):
            return "grid"
    return "tpe"


@dataclass(frozen=True)
class RunPlan:
    """What a run of a space's study will do, resolved from the space and the options."""

    study_name: str
    sampler: str  # one of SAMPLERS
    planned: int  # trials to finish, the study's earlier trials included
    grid: list[dict[str, Any]] | None  # sampler grid: the whole grid, in queue order
    base: TrialConfig  # the space's base config (no axis chosen)
    dataset_configs: list[DatasetUse]  # the dataset sections trials may run (checked first)
    slots: list[Slot]  # the local workers' device slots (backend dask: the cluster decides)

    def check_local_data(self, data_dir: str | None) -> None:
        """Local workers train here: check_data_files on this host."""
        check_data_files(self.dataset_configs, data_dir)


def check_data_files(uses: list[DatasetUse], data_dir: str | None) -> None:
    """Where trials train (this host, or each Dask worker), the datasets must be there and
    readable to the end (a corrupt file would fail every trial), and each dataset section's
    subsets must fit their files (refused, not failed), named by where they come from."""
    from dse.data.datasets import check_files  # imports torch

    datasets = sorted({use.config.name for use in uses})
    sizes = {dataset: check_files(dataset, data_dir, whole=True) for dataset in datasets}
    for use in uses:
        sizes[use.config.name].check(use.config, use.where)


def plan_run(space: SearchSpace, options: RunOptions, gpu_count: int | None = None) -> RunPlan:
    """Check the options against the space and the machine, then resolve the local workers'
    slots, the sampler, the budget and the grid. `gpu_count` overrides the number of CUDA
    devices seen (tests of GPU slot planning)."""
    options.validate(space)
    slots = []
    if options.backend == "local":
        if gpu_count is None:
            import torch

            gpu_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        slots = plan_slots(options.gpus, options.workers, gpu_count, cpu_count())
    sampler = choose_sampler(space, options.sampler, options.n_trials)
    if sampler == "grid":
        space.check_grid()
    grid = spread_order(space.grid(), options.seed) if sampler == "grid" else None
    if grid is not None:  # kept whole: set-up queues its first missing points up to `planned`
        budget = options.n_trials or space.n_trials or len(grid)
        planned = min(budget, len(grid))
    else:
        planned = space.planned_trials(options.n_trials)
    dataset_configs = space.dataset_configs()  # each point's config made once, names and all
    return RunPlan(
        study_name=options.study_name or space.name,
        sampler=sampler,
        planned=planned,
        grid=grid,
        base=space.base_config(),
        dataset_configs=dataset_configs,
        slots=slots,
    )


@dataclass(frozen=True)
class CheckpointFolder:
    """Where a study's per-epoch trial checkpoints go (`path`), and the folders of that path
    missing before the run (`made`, deepest first): its first checkpoint makes them, and the
    run's tidying removes them again when they are left empty (no empty results/ is left
    beside a PostgreSQL storage)."""

    path: str
    made: tuple[Path, ...] = ()


def checkpoint_folder(options: RunOptions, study_name: str, study_uid: str) -> CheckpointFolder:
    """The folder of the study's per-epoch trial checkpoints: `checkpoint_dir`, by default a
    `checkpoints` folder beside a SQLite or journal file (else results/checkpoints), then one
    folder per study (its name and its random id: two databases never share one). Local
    workers get it absolute; Dask workers as given (relative: to each worker's folder)."""
    if options.checkpoint_dir is not None:
        root = Path(options.checkpoint_dir)
    else:
        journal = journal_path(options.storage)
        database = sqlite_path(options.storage) or (Path(journal) if journal else None)
        root = database.parent / "checkpoints" if database else Path("results/checkpoints")
    if options.backend == "local":
        root = root.resolve()
    path = root / f"{file_stem(study_name)}-{study_uid}"
    return CheckpointFolder(str(path), tuple(p for p in (path, *path.parents) if not p.exists()))


def tidy_checkpoints(options: RunOptions, folder: CheckpointFolder) -> None:
    """After a run on local workers (none is left writing): the study's checkpoint folder,
    the default `checkpoints` folder above it, and the folders the run made, removed if empty."""
    if options.backend != "local":
        return
    path = Path(folder.path)
    default = [path, path.parent] if options.checkpoint_dir is None else [path]
    for empty in dict.fromkeys([*default, *folder.made]):  # deepest first
        with contextlib.suppress(OSError):  # not empty: kept checkpoints, trials to resume
            empty.rmdir()
