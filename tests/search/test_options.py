"""RunOptions: every combination that cannot run is refused before anything starts, naming the
library's inputs; plan_run resolves sampler, budget, grid and slots."""

from __future__ import annotations

import pytest

from dse.errors import ConfigError
from dse.search.moasha import EarlyStop
from dse.search.options import RunOptions, plan_run
from dse.space import load_space


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (RunOptions(sampler="bogus"), "sampler bogus: choose from grid, random, nsga2, tpe, gp"),
        (RunOptions(workers=0), "workers 0: must be at least 1"),
        (RunOptions(seed=-1), "seed -1: must be 0 to 4294967295"),
        (RunOptions(seed=2**32), "seed 4294967296: must be 0 to 4294967295"),
        (RunOptions(db_outage_limit=-1), "db_outage_limit -1: must be 0 seconds or more"),
        (RunOptions(backend="ray"), "backend ray: choose from local, dask"),
        (RunOptions(scheduler="tcp://h:1"), "scheduler needs backend dask"),
        (RunOptions(backend="dask"), "backend dask needs scheduler tcp://HOST:8786"),
        (
            RunOptions(backend="dask", scheduler="tcp://h:1", workers=2),
            "workers with backend dask: the Dask workers decide (use gpus_per_trial)",
        ),
        (
            RunOptions(backend="dask", scheduler="tcp://h:1", early_stop=EarlyStop()),
            "early_stop with backend dask",
        ),
        (
            RunOptions(backend="dask", scheduler="tcp://h:1", gpus_per_trial=-1),
            "gpus_per_trial -1: must be 0 or more",
        ),
    ],
)
def test_options_that_cannot_run(options, message):
    with pytest.raises(ConfigError) as raised:
        plan_run(load_space("smoke"), options, gpu_count=0)
    assert message in str(raised.value)
    assert "--" not in str(raised.value)  # the library names inputs, the CLI names flags


def test_early_stop_with_repeats_is_refused():
    space = load_space("smoke").with_repeats(2)
    with pytest.raises(ConfigError, match="early_stop with repeats"):
        plan_run(space, RunOptions(early_stop=EarlyStop((1,))), gpu_count=0)


def test_a_plan_for_a_grid_and_for_a_budget():
    space = load_space("smoke")  # a grid of 4 points
    grid = plan_run(space, RunOptions(workers=2), gpu_count=0)
    assert (grid.sampler, grid.planned, len(grid.grid)) == ("grid", 4, 4)
    assert [s.label for s in grid.slots] == ["cpu#0", "cpu#1"]
    assert grid.study_name == "smoke" and grid.datasets == {"mnist"}
    assert grid.base == space.base_config()
    sampled = plan_run(space, RunOptions(sampler="random", n_trials=3), gpu_count=2)
    assert (sampled.sampler, sampled.planned, sampled.grid) == ("random", 3, None)
    assert [s.device for s in sampled.slots] == ["cuda:0", "cuda:1"]
