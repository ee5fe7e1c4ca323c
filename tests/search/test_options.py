"""RunOptions: every combination that cannot run is refused before anything starts, naming the
library's inputs; plan_run resolves sampler, budget, grid and slots."""

from __future__ import annotations

from pathlib import Path

import pytest

from dse.errors import ConfigError, as_cli
from dse.search.early_stop import EarlyStop
from dse.search.options import RunOptions, checkpoint_folder, plan_run, tidy_checkpoints
from dse.space import load_space, parse_space


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
    assert grid.study_name == "smoke"
    assert {use.config.name for use in grid.dataset_configs} == {"mnist"}
    assert grid.base == space.base_config()
    sampled = plan_run(space, RunOptions(sampler="random", n_trials=3), gpu_count=2)
    assert (sampled.sampler, sampled.planned, sampled.grid) == ("random", 3, None)
    assert [s.device for s in sampled.slots] == ["cuda:0", "cuda:1"]


CLASH = {  # warm_adabatch needs adabatch: two of the grid's four points are no config
    "model.routing_iterations": [1, 2],
    "lr_policy.name": ["constant", "warm_adabatch"],
    "batch_schedule.name": {
        "fixed": {},
        "adabatch": {"batch_schedule.milestones": {"value": [[1, 32]]}},
    },
}


def test_a_clash_refuses_a_grid_run_but_not_a_sampled_one():
    space = parse_space({"name": "t", "base": {"epochs": 1}, "axes": CLASH}, "t.yaml")
    with pytest.raises(ConfigError, match="t.yaml: lr_policy warm_adabatch restarts at"):
        plan_run(space, RunOptions(workers=1), gpu_count=0)
    # sampled, an invalid draw is failed and drawn again (README): the space may run
    sampled = plan_run(space, RunOptions(sampler="random", n_trials=3, workers=1), gpu_count=0)
    assert (sampled.sampler, sampled.planned) == ("random", 3)


def test_a_huge_grid_is_counted_and_refused_without_listing_it():
    axes = {"seed": {"low": 0, "high": 10**9}, "model.routing_iterations": [1, 2, 3]}
    space = parse_space({"name": "t", "base": {"epochs": 1}, "axes": axes}, "t.yaml")
    assert space.grid_size() == 3 * (10**9 + 1)  # counted, not enumerated: this test is instant
    with pytest.raises(ConfigError, match=r"t.yaml: a grid of 3,000,000,003 points, more than "):
        plan_run(space, RunOptions(workers=1), gpu_count=0)
    sampled = plan_run(space, RunOptions(n_trials=5, workers=1), gpu_count=0)
    assert (sampled.sampler, sampled.planned, sampled.grid) == ("tpe", 5, None)
    assert not space.enumerable


def test_early_stopping_without_a_rung_for_the_run_is_named(recwarn):
    """Successive halving's rungs need eta x epoch 1 to fit: smoke.yaml's 1-epoch runs have
    none, so MO-ASHA would stop nothing, and the run says so (given rungs are taken as given)."""
    plan_run(load_space("smoke"), RunOptions(early_stop=EarlyStop()), gpu_count=0)
    (warning,) = [w for w in recwarn if "no rung" in str(w.message)]
    assert as_cli(str(warning.message)) == (
        "--early-stop moasha: runs of 1 epochs have no rung with eta 3 (successive halving's "
        "need 3 x the rung to fit in the run), so no trial is stopped; pass --rungs 1 to decide "
        "after epoch 1"
    )
    recwarn.clear()
    plan_run(load_space("quick"), RunOptions(early_stop=EarlyStop()), gpu_count=0)  # 3 epochs: 1
    plan_run(load_space("smoke"), RunOptions(early_stop=EarlyStop((1,))), gpu_count=0)
    assert not [w for w in recwarn if "no rung" in str(w.message)]


def test_given_rungs_that_never_decide_are_named_not_refused(recwarn):
    """--rungs 1,50 on 1-epoch runs said nothing: no run reaches 50, and a run decides nothing
    at its last epoch, so neither rung ever decides. One warning names them; in a space of
    several run lengths, the rungs past the longest."""

    def idle_warnings(axes: dict, rungs: tuple[int, ...]) -> list[str]:
        recwarn.clear()
        space = parse_space({"name": "s", "base": {"epochs": 1}, "axes": axes}, "s.yaml")
        plan_run(space, RunOptions(early_stop=EarlyStop(rungs)), gpu_count=0)
        return [as_cli(str(w.message)) for w in recwarn if "decides nothing" in str(w.message)]

    one_epoch = {"optimizer.lr": [0.001, 0.01]}
    assert idle_warnings(one_epoch, (1, 50)) == [
        "--rungs 1,50: at or past the trials' last epoch (1), so MO-ASHA decides nothing there"
    ]
    lengths = {"epochs": [1, 60]}
    assert idle_warnings(lengths, (1, 50)) == []  # the 60-epoch runs decide at both
    assert idle_warnings(lengths, (1, 60, 70)) == [
        "--rungs 60,70: at or past the longest trials' last epoch (60), so MO-ASHA decides "
        "nothing there"
    ]
    ranged = {"epochs": {"low": 2, "high": 9}}
    assert idle_warnings(ranged, (3, 9)) == [
        "--rungs 9: at or past the longest trials' last epoch (9), so MO-ASHA decides nothing there"
    ]


@pytest.mark.parametrize("results_before", [False, True])
def test_a_run_leaves_no_folder_it_made_for_checkpoints_empty(
    tmp_path, monkeypatch, results_before
):
    """Beside a PostgreSQL storage checkpoints go to results/checkpoints/STUDY-ID: the run's
    first checkpoint makes results/, and tidying removed only the two folders below it, so an
    empty results/ was left. A results/ there before the run stays."""
    monkeypatch.chdir(tmp_path)
    if results_before:
        (tmp_path / "results").mkdir()
    options = RunOptions(storage="postgresql://u@db.example/dse")
    folder = checkpoint_folder(options, "tiny", "abc")
    assert folder.path == str(tmp_path / "results" / "checkpoints" / "tiny-abc")
    Path(folder.path).mkdir(parents=True)  # a worker writing its first checkpoint
    (Path(folder.path) / "trial-0.pt").write_bytes(b"x")
    (Path(folder.path) / "trial-0.pt").unlink()  # removed as its trial completed
    tidy_checkpoints(options, folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["results"] if results_before else [])
