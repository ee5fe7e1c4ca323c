"""Setting up a run's study: created or loaded, with its records and its missing grid points
queued (the runner calls it under the set-up lock, locks.py)."""

from __future__ import annotations

import optuna

from dse.search.options import RunOptions, RunPlan
from dse.search.records import StudyRecord
from dse.search.study import (
    completed_on_grid,
    create_study,
    enqueue_missing,
    fail_stale,
    make_sampler,
    recorded_distributions,
    runner_seed,
)
from dse.space import SearchSpace


def set_up_study(
    storage: optuna.storages.BaseStorage, space: SearchSpace, options: RunOptions, plan: RunPlan
) -> tuple[optuna.Study, SearchSpace]:
    """Create or load the study and queue its missing points, then grid points (under the
    set-up lock); returns it with the space named as the study can take it
    (SearchSpace.with_param_names)."""
    sampler = make_sampler(plan.sampler, options.seed, plan.planned)
    study = create_study(storage, plan.study_name, space, sampler, options.extend)
    space = space.with_param_names(recorded_distributions(study))
    record = StudyRecord(study)
    runner = record.join()  # each run its own index, taken under the lock
    if runner > 0:  # another run's seed: not the points the runs before it proposed
        seed = runner_seed(options.seed, runner)
        study.sampler = make_sampler(plan.sampler, seed, plan.planned)
    if options.calibration is not None:  # the latest measured noise, for pareto
        record.set_calibration(options.calibration)
    record.uid()  # made here, under the lock, if the study has none yet
    fail_stale(study)
    if options.early_stop is not None:
        record.set_early_stop(options.early_stop.rungs, options.early_stop.eta)
    # The space's points first (they "run first"), then the grid up to the budget, counting
    # the points it holds: queued after the grid, the points in it were skipped as present.
    points = list(space.points)
    if plan.grid is not None:
        points = completed_on_grid(points, plan.grid)
    enqueue_missing(study, space, points, origin="point")
    if plan.grid is not None:
        enqueue_missing(study, space, plan.grid, origin="grid", up_to=plan.planned)
    return study, space
