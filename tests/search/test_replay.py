"""Replays over recorded grids (dse/search/replay.py): fidelity to a live MO-ASHA run, the same
result for the same seed, the portable record, and one-line refusals of what cannot replay."""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import sqlite3
import time
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dse.cli import app
from dse.search.early_stop import EarlyStop
from dse.search.options import RunOptions
from dse.search.record_checks import complete_grid
from dse.search.recording import (
    FORMAT,
    RecordedTrial,
    Recording,
    load_record,
    record_study,
    save_record,
)
from dse.search.records import EpochPoint, TrialRecord, param_key
from dse.search.replay import Grid, replay_method
from dse.search.replay_summary import (
    NON_NEGATIVE,
    SHARE,
    Estimate,
    replay_methods,
    t_interval,
)
from dse.search.results import worst_plus_margin
from dse.search.runner import run_study
from dse.space import load_space
from dse.space.parse import parse_space
from tests.conftest import TINY_SPACE, last_json, load_study, write_space

FIXTURES = Path(__file__).parents[1] / "fixtures"
runner = CliRunner()


def synthetic_recording(
    epochs: int = 16, name: str = "synthetic", lengths: list[int] | None = None
) -> Recording:
    """A 24-point grid (batch x lr x width) with made-up curves: no training. `lengths`: an
    epochs axis of those run lengths (x2 or x3 the points)."""
    raw = yaml.safe_load(TINY_SPACE.format(name=name, epochs=epochs, lrs="[0.0003, 0.001, 0.003]"))
    raw["axes"]["batch_schedule.batch_size"] = [16, 32, 64, 128]
    if lengths:
        raw["axes"]["epochs"] = lengths
    del raw["base"]["batch_schedule"]
    space = parse_space(raw, name)
    trials = []
    for number, point in enumerate(space.grid()):
        batch, lr = point["batch_schedule.batch_size"], point["optimizer.lr"]
        routing = point["model.routing_iterations"]
        epoch_s = (40 / batch**0.5) * (1 + 0.3 * routing)
        ceiling = 0.99 - abs(lr - 0.001) * 20 - 0.002 * batch / 16 + 0.003 * routing
        curve, elapsed, best = [], 0.0, 0.0
        for e in range(1, point.get("epochs", epochs) + 1):
            elapsed += epoch_s * (1 + 0.01 * ((number + e) % 3))
            accuracy = ceiling * (1 - 0.5 ** (e * (0.5 + lr * 300)))
            best = max(best, accuracy)
            curve.append(
                EpochPoint(
                    e, batch, elapsed - sum(p.epoch_time_s for p in curve), elapsed, accuracy
                )
            )
        params = space.encoded(point)
        config = space.config_for(point).to_dict()
        values = [elapsed, best]
        trials.append(
            RecordedTrial(number, params, config, curve, values, {"train_time_s": elapsed})
        )
    return Recording(
        name, raw, ["train_time_s", "val_accuracy"], ["minimize", "maximize"], {}, trials
    )


def decisions_of(run) -> dict[str, list[tuple]]:
    return {
        t.point: [(d.rung, d.proceed, d.position, d.of, d.values) for d in t.decisions]
        for t in run.trials
    }


def _live_decisions(storage: str) -> dict[str, list[tuple]]:
    """Each point's MO-ASHA decisions in the live study 'tiny', rung by rung."""
    live = {}
    for trial in load_study(storage, "tiny").get_trials():
        record = TrialRecord(trial)
        decisions = sorted(record.decisions(), key=lambda d: d.rung)
        live[record.point_key()] = [
            (d.rung, d.proceed, d.position, d.of, d.values) for d in decisions
        ]
    return live


def test_replayed_moasha_takes_the_live_runs_decisions(workdir):
    """One worker, MO-ASHA over a real grid of 6: the replay over the run's own records stops
    the same trials at the same rungs, with the same positions and estimates. eta 6 lets only
    the first of a rung's epsilon-net order (the fastest) on while fewer than 6 reached it, so
    the live run stops something unless every trial came faster than all before it."""
    path = write_space(workdir, epochs=3, lrs="[0.0003, 0.001, 0.003]")
    small = "dataset: {val_size: 50, test_subset: 50, train_subset: 150}"  # 3 steps an epoch
    path.write_text(path.read_text().replace("dataset: {val_size: 100, test_subset: 100}", small))
    space = load_space(str(path))
    assert space.base["dataset"]["train_subset"] == 150
    options = RunOptions(
        storage="sqlite:///live.db", workers=1, early_stop=EarlyStop((1, 2), 6.0), seed=0
    )
    run_study(space, options)
    live = _live_decisions("sqlite:///live.db")
    assert any(not d[1] for ds in live.values() for d in ds), "the live run stopped nothing"
    recording = record_study("sqlite:///live.db", "tiny")
    replayed = replay_method(Grid(recording), "moasha", 0, 1, early_stop=EarlyStop((1, 2), 6.0))
    assert decisions_of(replayed) == live
    stopped = {t.point: t.stopped_at for t in replayed.trials}
    assert stopped == {
        TrialRecord(t).point_key(): TrialRecord(t).stopped_at
        for t in load_study("sqlite:///live.db", "tiny").get_trials()
    }


def test_replayed_moasha_takes_the_live_runs_decisions_over_runs_of_several_lengths(workdir):
    """An epochs axis: runs of 2 epochs decide at rung 1 only (2 is their last), runs of 3 at
    1 and 2; a complete trial of 2 epochs is a peer at the longer runs' rung 2. One worker,
    the run's seed: the replay takes the live run's decisions."""
    path = write_space(workdir, epochs=2)
    small = "dataset: {val_size: 50, test_subset: 50, train_subset: 150}"
    text = path.read_text().replace("dataset: {val_size: 100, test_subset: 100}", small)
    path.write_text(text.replace("axes:\n", "axes:\n  epochs: [2, 3]\n"))
    space = load_space(str(path))
    stop = EarlyStop((1, 2), 6.0)
    options = RunOptions(storage="sqlite:///live.db", workers=1, early_stop=stop, seed=3)
    run_study(space, options)
    live = _live_decisions("sqlite:///live.db")
    assert any(not d[1] for ds in live.values() for d in ds), "the live run stopped nothing"
    assert any(d[0] == 2 for ds in live.values() for d in ds), "no run of 3 reached rung 2"
    recording = record_study("sqlite:///live.db", "tiny")
    assert decisions_of(replay_method(Grid(recording), "moasha", 3, 1, early_stop=stop)) == live


@pytest.mark.parametrize(
    "method", ["random", "tpe", "nsga2", "moasha", "moasha-shuffled", "moasha-oracle"]
)
def test_the_same_seed_replays_the_same(method):
    grid = Grid(synthetic_recording())
    first = replay_method(grid, method, 7, 2, budget=8)
    again = replay_method(grid, method, 7, 2, budget=8)
    assert [(t.point, t.epochs_run) for t in first.trials] == [
        (t.point, t.epochs_run) for t in again.trials
    ]
    assert decisions_of(first) == decisions_of(again)
    assert (first.hypervolume, first.compute_s) == (again.hypervolume, again.compute_s)


def test_the_oracle_ranks_each_trial_by_its_final_objectives():
    """moasha-oracle: the rule as if every early curve told its run's end. Its decisions carry
    the recorded final values (moasha's, the rung's estimates), and it queues the same order."""
    grid = Grid(synthetic_recording())
    final = {param_key(t.params): tuple(t.values) for t in grid.recording.trials}
    oracle = replay_method(grid, "moasha-oracle", 3, 2)
    plain = replay_method(grid, "moasha", 3, 2)
    decided = [(t.point, d) for t in oracle.trials for d in t.decisions]
    assert decided and all(d.values == final[point] for point, d in decided)
    assert any(d.values != final[t.point] for t in plain.trials for d in t.decisions)
    assert [t.point for t in oracle.trials][:2] == [t.point for t in plain.trials][:2]
    assert any(t.stopped_at for t in oracle.trials)


def test_shares_are_against_the_whole_grid():
    grid = Grid(synthetic_recording())
    result = replay_methods(grid, ["grid", "random", "moasha"], 5, 2, 8, EarlyStop())
    rows = {s.method: s.row() for s in result.summaries}
    assert rows["grid"]["hv_share"] == 1.0 and rows["grid"]["compute_share"] == 1.0
    assert rows["random"]["trials"] == 8 and rows["random"]["hv_share"] < 1.0
    moasha = rows["moasha"]
    assert moasha["trials"] == 24 and moasha["stopped"] > 0 and moasha["compute_share"] < 1.0
    low, high = moasha["hv_share_ci"]
    assert low <= moasha["hv_share"] <= high
    random_runs = result.runs["random"]
    assert len({tuple(t.point for t in r.trials) for r in random_runs}) > 1  # seeds differ


@pytest.mark.parametrize("workers", [1, 2, 5, 100])
def test_the_grid_spends_exactly_the_grid(workers):
    """The grid method runs every epoch of every point: its compute share is 1.0, not 1 plus
    the rounding of adding the epoch times in another order (1.0000000000000027, past what a
    share can be), whatever the workers."""
    grid = Grid(synthetic_recording())
    result = replay_methods(grid, ["grid"], 1, workers, None, EarlyStop())
    (summary,) = result.summaries
    assert summary.compute_share.mean == 1.0 and summary.hv_share.mean == 1.0
    assert summary.curve[-1][1].mean == 1.0


def test_json_rows_keep_full_precision(tmp_path):
    """The JSON's shares are the means themselves (the table rounds its cells): rounded to 4
    places, a mean of 0.99996 read 1.0, the whole front, and hv_share differed from the
    curve's last point, which JSON gave in full."""
    path = str(save_record(synthetic_recording(), tmp_path / "grid.json.gz"))
    args = ["replay", "--record", path, "--seeds", "3", "--methods", "random", "--budget", "8"]
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.stderr
    (row,) = last_json(result)
    runs = replay_methods(Grid(synthetic_recording()), ["random"], 3, 2, 8, EarlyStop())
    (summary,) = runs.summaries
    assert row["hv_share"] == summary.hv_share.mean == row["hv_curve"][-1]["hv_share"]
    assert row["compute_share_ci"] == [summary.compute_share.low, summary.compute_share.high]
    assert all(type(v) is float for v in summary.row()["compute_share_ci"])  # not numpy's
    table = runner.invoke(app, args)
    assert table.exit_code == 0 and f"{summary.hv_share.mean:.4g}" in table.stdout
    # CSV too (it printed the table's cells, intervals as '0.2847..1'): an interval's ends
    # are columns of their own
    result = runner.invoke(app, [*args, "--format", "csv"])
    assert result.exit_code == 0, result.stderr
    (cells,) = csv.DictReader(io.StringIO(result.stdout))
    assert float(cells["hv_share"]) == row["hv_share"]
    ends = [float(cells["compute_share_ci_low"]), float(cells["compute_share_ci_high"])]
    assert ends == row["compute_share_ci"] and "hv_curve" not in cells


def test_a_search_that_found_the_front_has_a_share_of_exactly_1():
    """Three objectives, one point dominating the rest: every run that trained it found the
    whole front, and its share is 1.0, not 0.9999999999999998 (the volume summed over other,
    dominated points in another order), so `hv_share == 1` counts the seeds that found it."""
    recording = synthetic_recording()
    best = min(recording.trials, key=lambda t: t.values[0])
    top = max(t.values[1] for t in recording.trials)
    trials = [
        replace(t, values=[*t.values, 1.0 if t is best else 2.0 + n / 7])
        if t is not best
        else replace(t, values=[t.values[0], top, 1.0])
        for n, t in enumerate(recording.trials)
    ]
    trials = [replace(t, metrics={**t.metrics, "n_params": t.values[2]}) for t in trials]
    recording = replace(
        _with_space(recording, objectives={
            "train_time_s": "minimize", "val_accuracy": "maximize", "n_params": "minimize"}),
        metric_names=["train_time_s", "val_accuracy", "n_params"],
        directions=["minimize", "maximize", "minimize"],
        trials=trials,
    )  # fmt: skip
    grid = Grid(recording)
    runs = [replay_method(grid, "random", seed, 2, budget=12) for seed in range(20)]
    found = [r for r in runs if any(t.point == best.key for t in r.trials)]
    assert found and all(r.hypervolume == grid.hypervolume for r in found)


def _scaled(recording: Recording, scale: float) -> Recording:
    """Its epoch times `scale` times longer, each off by up to 10% (sums that round)."""
    rng = random.Random(0)
    trials = []
    for trial in recording.trials:
        curve, elapsed = [], 0.0
        for point in trial.curve:
            seconds = point.epoch_time_s * scale * rng.uniform(0.9, 1.1)
            elapsed += seconds
            curve.append(replace(point, epoch_time_s=seconds, elapsed_train_s=elapsed))
        values = [elapsed, trial.values[1]]
        metrics = {**trial.metrics, "train_time_s": elapsed}
        trials.append(replace(trial, curve=curve, values=values, metrics=metrics))
    return replace(recording, trials=trials)


def test_the_grid_curve_reaches_1_on_a_long_grid():
    """A grid of ~10^7 training seconds: the grid's running sum of epoch times is off its exact
    total by ~1e-8 s, more than an absolute 1e-9; its curve still reads 1.0 at compute share 1
    (it read 0.996, the last trial not counted)."""
    grid = Grid(_scaled(synthetic_recording(epochs=30), 1e4))
    assert grid.compute_s > 1e6
    (summary,) = replay_methods(grid, ["grid"], 1, 1, None, EarlyStop()).summaries
    assert summary.curve[-1][1].mean == 1.0


def test_replay_is_quick():
    """Five methods x 30 seeds on a 24-point grid: seconds, not minutes (TPE, NSGA-II in
    optuna are the slow part)."""
    grid = Grid(synthetic_recording())
    start = time.perf_counter()
    replay_methods(grid, ["grid", "random", "nsga2", "tpe", "moasha"], 30, 2, 8, EarlyStop())
    assert time.perf_counter() - start < 60


def test_a_record_file_round_trips_and_replays_by_the_cli(tmp_path):
    path = save_record(synthetic_recording(), tmp_path / "grid.json.gz")
    assert load_record(path) == synthetic_recording()
    # a trial of one seed is written as before records knew several seeds' training seconds
    assert "seeds_train_s" not in json.loads(gzip.decompress(path.read_bytes()))["trials"][0]
    again = save_record(synthetic_recording(), tmp_path / "again.json.gz")
    assert again.read_bytes() == path.read_bytes()  # no timestamp: a record diffs cleanly
    result = runner.invoke(
        app, ["replay", "--record", str(path), "--seeds", "3", "--methods", "grid,moasha",
              "--plot", "--out", str(tmp_path / "fig"), "--format", "json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = last_json(result)
    assert [r["method"] for r in rows] == ["grid", "moasha"]
    for row in rows:
        assert {
            "seeds",
            "hv_share",
            "hv_share_ci",
            "compute_share",
            "compute_share_ci",
            "trials",
        } <= set(row)
    assert (tmp_path / "fig" / "replay_synthetic.html").is_file()


def test_the_notes_name_only_what_the_methods_run_were_given(tmp_path):
    """The footnote said 'random/nsga2/tpe/gp: N trials' and moasha's rungs whatever ran."""
    path = save_record(synthetic_recording(), tmp_path / "grid.json.gz")
    args = ["replay", "--record", str(path), "--seeds", "2", "--budget", "5"]
    result = runner.invoke(app, [*args, "--methods", "grid,tpe,random"])
    assert result.exit_code == 0, result.stderr
    assert "2 virtual workers; tpe/random: 5 trials (each point at most once); " in result.stderr
    assert "moasha" not in result.stderr and "gp" not in result.stderr
    result = runner.invoke(app, [*args, "--methods", "moasha"])
    assert result.exit_code == 0, result.stderr
    assert "2 virtual workers; moasha: rungs " in result.stderr
    assert "trials (each point" not in result.stderr
    result = runner.invoke(
        app, [*args[:-2], "--budget", "1", "--workers", "1", "--methods", "random"]
    )
    assert result.exit_code == 0, result.stderr  # one of each: not '1 virtual workers', '1 trials'
    assert "1 virtual worker; random: 1 trial (each point at most once); " in result.stderr


def test_rungs_past_the_last_epoch_are_named(tmp_path):
    """Live runs decide nothing at a rung at or past a trial's last epoch; the replay says so."""
    path = save_record(synthetic_recording(epochs=16), tmp_path / "grid.json.gz")
    args = ["replay", "--record", str(path), "--seeds", "2", "--methods", "moasha"]
    result = runner.invoke(app, [*args, "--rungs", "1,16,40"])
    assert result.exit_code == 0, result.stderr
    assert "rungs 16,40: at or past the trials' last epoch (16)" in result.stderr
    result = runner.invoke(app, [*args, "--rungs", "1,3,9"])
    assert result.exit_code == 0 and "past the trials' last epoch" not in result.stderr
    result = runner.invoke(app, args)  # successive halving's for 16 epochs: 1,3
    assert result.exit_code == 0 and "moasha: rungs 1,3 (successive halving's" in result.stderr
    short = save_record(synthetic_recording(epochs=2), tmp_path / "short.json.gz")
    result = runner.invoke(app, ["replay", "--record", str(short), "--seeds", "2"])
    assert result.exit_code == 0, result.stderr
    assert "successive halving has no rung for runs of 2 epochs with eta 3" in result.stderr


def _one_line_error(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_bad_input_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recording = synthetic_recording()
    # a trial without its per-epoch history
    first = recording.trials[0]
    bare = RecordedTrial(first.number, first.params, first.config, [], first.values, {})
    save_record(
        Recording(**{**recording.__dict__, "trials": [bare, *recording.trials[1:]]}), "bare.json.gz"
    )
    _one_line_error(["replay", "--record", "bare.json.gz"], "no per-epoch history")
    # a grid with a point missing
    save_record(Recording(**{**recording.__dict__, "trials": recording.trials[1:]}), "part.json.gz")
    _one_line_error(["replay", "--record", "part.json.gz"], "not a complete grid: 23 of 24")
    # points MO-ASHA stopped are named apart from those that failed or never ran
    stopped = replace(recording.trials[1], values=None)
    save_record(replace(recording, trials=[stopped, *recording.trials[2:]]), "stopped.json.gz")
    _one_line_error(
        ["replay", "--record", "stopped.json.gz"],
        "22 of 24 points ran in full (1 stopped early, 1 failed or never ran; missing, say, ",
    )
    Path("junk.json.gz").write_text("{}")
    _one_line_error(["replay", "--record", "junk.json.gz"], "not a dse record")
    _one_line_error(["replay", "--record", "none.json.gz"], "no such file")
    # not JSON, or gzip cut short on the way: each said as what it is, not "not readable"
    Path("notes.txt").write_text("trial 3 was slow\n")
    _one_line_error(["replay", "--record", "notes.txt"], "notes.txt: not a dse record (not JSON: ")
    whole = Path("part.json.gz").read_bytes()
    Path("cut.json.gz").write_bytes(whole[: len(whole) // 2])
    _one_line_error(["replay", "--record", "cut.json.gz"], "cut.json.gz: a damaged gzip file (")
    _one_line_error(["replay", "--record", "part.json.gz", "--methods", "grid,sobol"], "sobol")
    # an empty list (an unset shell variable) is no list, not the default one
    _one_line_error(["replay", "--record", "part.json.gz", "--methods", ""], "no method given")


def _damaged(recording: Recording, trial: int, **changes) -> Recording:
    trials = list(recording.trials)
    trials[trial] = replace(trials[trial], **changes)
    return replace(recording, trials=trials)


def _with_epoch(recording: Recording, trial: int, index: int, **changes) -> Recording:
    curve = list(recording.trials[trial].curve)
    curve[index] = replace(curve[index], **changes)
    return _damaged(recording, trial, curve=curve)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda r: _damaged(r, 3, values=[None, 0.5]), "trial 3: objective values [None, 0.5]"),
        (lambda r: _damaged(r, 3, values=[1.0]), "expected 2 numbers"),
        (lambda r: _with_epoch(r, 3, 2, epoch_time_s="x"), "epoch 3 of its curve: epoch_time_s"),
        (lambda r: _with_epoch(r, 3, 2, epoch_time_s=float("nan")), "epoch_time_s nan"),
        (lambda r: _with_epoch(r, 3, 2, val_accuracy=-1.0), "val_accuracy -1.0 is not in [0, 1]"),
        (lambda r: _with_epoch(r, 3, 2, epoch=7), "numbered 7"),
        (lambda r: _with_epoch(r, 3, 2, epoch="3"), "numbered '3'"),
        (lambda r: _with_epoch(r, 3, 2, elapsed_train_s=0.01), "not the sum of epoch times 1..3"),
        (lambda r: _with_epoch(r, 3, 1, elapsed_train_s=99.0), "not the sum of epoch times 1..2"),
        (lambda r: _damaged(r, 3, values=[-1.0, 0.5]), "objective train_time_s -1.0 is out of"),
        (
            lambda r: _damaged(r, 3, values=[r.trials[3].values[0], 1.5]),
            "objective val_accuracy 1.5 is out of range",
        ),
        (lambda r: _damaged(r, 3, values=[50.0, 0.5]), "train_time_s 50.0 is not its metric"),
        (
            lambda r: _damaged(r, 3, config={**r.trials[3].config, "epochs": 2}),
            "trial 3: 16 epochs recorded of 2 run",
        ),
        (
            lambda r: replace(r, metric_names=["val_accuracy", "train_time_s"]),
            "objectives ['val_accuracy', 'train_time_s'] ['minimize', 'maximize'] are not its",
        ),
        (lambda r: _damaged(r, 4, number=3), "trial 3 is recorded twice"),
        (lambda r: _damaged(r, 4, number="four"), "trial numbers"),
        (
            lambda r: replace(r, distributions={"optimizer.lr": "garbage"}),
            "its stored space does not read",
        ),
        (lambda r: _with_epoch(r, 3, 2, batch_size=0), "batch_size 0"),
        (lambda r: replace(r, directions=["minimize"]), "one direction"),
        (lambda r: replace(r, metric_names=["a"], directions=["minimize"]), "2 or 3 objectives"),
        (lambda r: _damaged(r, 3, config="zz"), "trial 3: params and config must be mappings"),
        (lambda r: replace(r, study=5), "a damaged dse record (study 5: expected its name)"),
        (lambda r: _damaged(r, 3, config={}), "trial 3 has no config stored with it"),
        (lambda r: _damaged(r, 3, seeds_train_s=-1.0), "trial 3: seeds_train_s -1.0 is not"),
        (
            lambda r: _damaged(r, 3, config={**r.trials[3].config, "epochs": "16"}),
            "trial 3: its config's epochs '16' is not a positive whole number",
        ),
        (
            lambda r: _damaged(r, 3, config={**r.trials[3].config, "epochs": float("inf")}),
            "trial 3: its config's epochs inf is not a positive whole number",
        ),
        (
            lambda r: _damaged(r, 3, config={**r.trials[3].config, "epochs": None}),
            "trial 3: its config's epochs None is not a positive whole number",
        ),
        (lambda r: _with_epoch(r, 3, 2, epoch=3.0), "epoch 3 of its curve: numbered 3.0"),
        (lambda r: _with_epoch(r, 3, 0, epoch_time_s=0.0), "epoch_time_s 0.0 is not a positive"),
        (lambda r: _scaled(r, 1e305), "its epoch times add up past any number of seconds"),
        (
            lambda r: _damaged(r, 3, values=[1.0, r.trials[3].values[1]], metrics={}),
            "trial 3: objective train_time_s 1.0 is not what its curve gives",
        ),
        (
            lambda r: _damaged(r, 3, values=[r.trials[3].values[0], 0.999]),
            "trial 3: objective val_accuracy 0.999 is not what its curve gives",
        ),
        (
            lambda r: _damaged(_with_memory(r), 3, metrics={"peak_mem_mb": "x"}),
            "trial 3: peak_mem_mb 'x' is not a number (its constraint",
        ),
        (
            lambda r: _damaged(
                r, 3, config={**r.trials[3].config, "batch_schedule": {"batch_size": 7}}
            ),
            "trial 3, epoch 1 of its curve: batch_size 128 is not its config's (7)",
        ),
        (lambda r: replace(r, study=""), "a damaged dse record (study '': expected its name)"),
    ],
)
def test_a_damaged_record_is_refused_in_one_line(tmp_path, monkeypatch, damage, message):
    """A record file travels between machines and people: whatever in it a replay would
    compute with is checked, and named, before it is used."""
    monkeypatch.chdir(tmp_path)
    save_record(damage(synthetic_recording()), "damaged.json.gz")
    replay = ["replay", "--record", "damaged.json.gz", "--seeds", "2"]
    _one_line_error([*replay, "--plot", "--out", "fig"], message)  # the figure is named by study


def _with_space(recording: Recording, **changes) -> Recording:
    return replace(recording, space={**recording.space, **changes})


def _with_memory(recording: Recording) -> Recording:
    """Constrained by peak memory, which each trial's metrics hold."""
    trials = [replace(t, metrics={**t.metrics, "peak_mem_mb": 100.0}) for t in recording.trials]
    return _with_space(replace(recording, trials=trials), constraints=["peak_mem_mb <= 1e9"])


def test_moasha_is_left_out_or_refused_where_it_cannot_estimate_an_objective(tmp_path):
    """MO-ASHA ranks at a rung by objectives estimated from curves; peak memory is not one.
    The default methods replay without it and say so; asked for by name, it is refused."""
    recording = _with_space(
        synthetic_recording(),
        objectives={
            "train_time_s": "minimize",
            "val_accuracy": "maximize",
            "peak_mem_mb": "minimize",
        },
    )
    trials = [
        replace(t, values=[*t.values, 100.0 + n], metrics={**t.metrics, "peak_mem_mb": 100.0 + n})
        for n, t in enumerate(recording.trials)
    ]
    recording = replace(
        recording,
        metric_names=["train_time_s", "val_accuracy", "peak_mem_mb"],
        directions=["minimize", "maximize", "minimize"],
        trials=trials,
    )
    path = str(save_record(recording, tmp_path / "three.json.gz"))
    result = runner.invoke(app, ["replay", "--record", path, "--seeds", "2", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    assert [row["method"] for row in last_json(result)] == ["grid", "random", "nsga2", "tpe"]
    assert "moasha left out: study synthetic: objective peak_mem_mb" in result.stderr
    _one_line_error(
        ["replay", "--record", path, "--methods", "grid,moasha"], "peak_mem_mb cannot be estimated"
    )


def test_a_grid_of_several_run_lengths_names_each_ones_rungs(tmp_path):
    """An epochs axis: each run waits at its own length's rungs (runs of 2 epochs at none);
    the note named the longest run's only ('rungs 1,3 (successive halving's for 16 epochs)')."""
    path = save_record(synthetic_recording(lengths=[2, 16]), tmp_path / "grid.json.gz")
    args = ["replay", "--record", str(path), "--seeds", "2", "--methods", "grid,moasha"]
    result = runner.invoke(app, [*args, "--workers", "1"])
    assert result.exit_code == 0, result.stderr
    notes = "1 virtual worker; moasha: rungs 1,3 for runs of 16 epochs, none for runs of 2 epochs"
    assert f"{notes} (successive halving's), eta 3;" in result.stderr
    result = runner.invoke(app, [*args, "--rungs", "1,16"])
    assert result.exit_code == 0, result.stderr
    assert "--rungs 16: at or past the longest trials' last epoch (16)" in result.stderr
    assert "2 virtual workers; moasha: rungs 1,16, eta 3;" in result.stderr


def test_rungs_or_eta_without_moasha_are_refused(tmp_path):
    """They changed nothing and were taken silently (dse run refuses them without
    --early-stop); where MO-ASHA cannot replay the study, they ask for it and are refused."""
    path = str(save_record(synthetic_recording(), tmp_path / "grid.json.gz"))
    args = ["replay", "--record", path, "--seeds", "2"]
    _one_line_error(
        [*args, "--methods", "grid,random", "--eta", "2"],
        "--eta: only with a moasha method in --methods (grid,random has none)",
    )
    _one_line_error(
        [*args, "--methods", "tpe", "--rungs", "1", "--eta", "2"], "--rungs and --eta: only with"
    )
    result = runner.invoke(app, [*args, "--rungs", "1", "--eta", "2"])  # the default methods
    assert result.exit_code == 0 and "moasha: rungs 1, eta 2;" in result.stderr
    recording = synthetic_recording()
    trials = [replace(t, config={**t.config, "repeats": 2}) for t in recording.trials]
    repeats = str(save_record(replace(recording, trials=trials), tmp_path / "repeats.json.gz"))
    _one_line_error(
        ["replay", "--record", repeats, "--rungs", "1"],
        "--rungs: study synthetic: its trials trained 2 seeds each",
    )


def test_a_study_of_repeats_counts_every_seeds_training_seconds(workdir):
    """A trial of 2 seeds trains both on its worker, its curve is the first seed's: the grid's
    training seconds were that curve's, half what `dse pareto` counts, and the replay's clock
    ran each trial for one seed."""
    path = write_space(workdir)
    path.write_text(path.read_text() + "repeats: 2\n")
    run_study(load_space(str(path)), RunOptions(storage="sqlite:///rep.db", workers=1, seed=0))
    trials = load_study("sqlite:///rep.db", "tiny").get_trials()
    spent = sum(TrialRecord(t).train_seconds() for t in trials)
    grid = Grid(complete_grid(record_study("sqlite:///rep.db", "tiny")))
    assert grid.compute_s == pytest.approx(spent, rel=1e-9)
    assert grid.compute_s > 1.5 * sum(TrialRecord(t).curve[-1].elapsed_train_s for t in trials)
    run = replay_method(grid, "grid", 0, 2)
    assert run.compute_s == grid.compute_s  # the whole grid: a share of exactly 1
    # a record saved before it knew its seeds' seconds replays on its first seed's curve
    first_seeds = [replace(t, seeds_train_s=None) for t in grid.recording.trials]
    assert Grid(replace(grid.recording, trials=first_seeds)).compute_s < grid.compute_s


def test_moasha_is_left_out_or_refused_on_a_study_of_repeats(tmp_path):
    """`dse run` refuses early stopping with repeats (a trial's objectives are means over its
    seeds, its curve the first seed's): the replay does not simulate it either, as for an
    objective it cannot estimate."""
    recording = synthetic_recording()
    trials = [replace(t, config={**t.config, "repeats": 2}) for t in recording.trials]
    path = str(save_record(replace(recording, trials=trials), tmp_path / "repeats.json.gz"))
    result = runner.invoke(app, ["replay", "--record", path, "--seeds", "2", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    assert [row["method"] for row in last_json(result)] == ["grid", "random", "nsga2", "tpe"]
    assert "moasha left out: study synthetic: its trials trained 2 seeds each" in result.stderr
    _one_line_error(
        ["replay", "--record", path, "--methods", "grid,moasha-shuffled"],
        "rungs compare one training curve per trial",
    )


def test_a_grid_is_complete_without_its_clashing_combinations(tmp_path):
    """A space with a budget may hold combinations that are no valid config (warm_adabatch LR
    with a fixed batch): no run trains them (the runner fails them untrained), so a study that
    ran every other point is a complete grid, and the grid replays its runnable points only
    (it was refused: 'not a complete grid: 24 of 48 points ran in full')."""
    recording = synthetic_recording()
    axes = {**recording.space["axes"], "lr_policy.name": ["constant", "warm_adabatch"]}
    trials = [
        replace(t, params={**t.params, "lr_policy.name": "constant"}) for t in recording.trials
    ]
    space = {**recording.space, "axes": axes, "n_trials": 24}
    path = str(save_record(replace(recording, space=space, trials=trials), tmp_path / "c.json"))
    args = ["replay", "--record", path, "--seeds", "2", "--methods", "grid,random,moasha"]
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.stderr
    rows = {row["method"]: row for row in last_json(result)}
    assert rows["grid"]["trials"] == 24 and rows["grid"]["hv_share"] == 1.0
    assert rows["grid"]["compute_share"] == 1.0 and rows["moasha"]["trials"] == 24
    assert "grid: 24 points" in result.stderr


def test_a_grid_without_a_feasible_point_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recording = _with_space(synthetic_recording(), constraints=["val_accuracy >= 0.999"])
    save_record(recording, "unmeasured.json.gz")
    _one_line_error(
        ["replay", "--record", "unmeasured.json.gz"],
        "trial 0 has no val_accuracy, which its constraint val_accuracy >= 0.999 reads",
    )
    trials = [
        replace(t, metrics={**t.metrics, "val_accuracy": t.values[1]}) for t in recording.trials
    ]
    save_record(replace(recording, trials=trials), "infeasible.json.gz")
    _one_line_error(
        ["replay", "--record", "infeasible.json.gz"],
        "no point of the grid meets its constraints (val_accuracy >= 0.999)",
    )


def test_a_reference_point_no_point_beats_is_refused(tmp_path, monkeypatch):
    """A space's reference point better than every grid point in one objective (a budget set
    for another machine): the grid's hypervolume is 0, and every share, the grid's own, read 0.
    The replay refuses it instead of reporting the grid at hv_share 0."""
    monkeypatch.chdir(tmp_path)
    quick = _with_space(
        synthetic_recording(), reference_point={"train_time_s": 1.0, "val_accuracy": 0.0}
    )
    save_record(quick, "quick.json.gz")
    _one_line_error(
        ["replay", "--record", "quick.json.gz", "--seeds", "2"],
        "no feasible point of the grid is better than its reference point (train_time_s=1, "
        "val_accuracy=0) in every objective",
    )


def test_trials_off_the_grid_are_named_not_replayed(tmp_path):
    """Points an --extend added run under parameters of their own (optimizer.lr#2): they are no
    point of the grid the study was made with, which the replay covers; a note says so."""
    recording = synthetic_recording()
    first = recording.trials[0]
    params = {**first.params, "optimizer.lr#2": 0.01}
    added = replace(first, number=len(recording.trials), params=params)
    path = str(
        save_record(replace(recording, trials=[*recording.trials, added]), tmp_path / "x.json")
    )
    result = runner.invoke(
        app, ["replay", "--record", path, "--methods", "grid", "--format", "json"]
    )
    assert result.exit_code == 0, result.stderr
    assert last_json(result)[0]["trials"] == 24
    assert "study synthetic: 1 trial(s) ran points off the grid" in result.stderr
    whole = str(save_record(recording, tmp_path / "whole.json"))
    result = runner.invoke(app, ["replay", "--record", whole, "--methods", "grid"])
    assert result.exit_code == 0 and "off the grid" not in result.stderr


def test_share_intervals_stay_within_what_a_share_can_be():
    few = t_interval([1.0, 1.0, 0.4], SHARE)
    assert few.low == 0.0 and few.high == 1.0 and few.mean == pytest.approx(0.8)
    wide = t_interval([0.2, 0.25, 0.3], NON_NEGATIVE)
    assert 0.0 < wide.low < 0.25 < wide.high
    # two seeds of random search on 16 of 24 points: the t interval of 2 samples reaches
    # 1.197, but no search spends more than the whole grid's training
    grid = Grid(synthetic_recording())
    result = replay_methods(grid, ["random"], 2, 1, 16, EarlyStop())
    (summary,) = result.summaries
    assert summary.compute_share.low > 0.2 and summary.compute_share.high == 1.0


def test_one_seed_claims_no_certainty(tmp_path):
    """--seeds 1: one random run says nothing of the spread over seeds, so its interval is all
    a share (or a count of trials) can be, not the point; the grid, without randomness, keeps
    the point. The JSON stays JSON (no Infinity)."""
    path = str(save_record(synthetic_recording(), tmp_path / "grid.json.gz"))
    args = ["replay", "--record", path, "--seeds", "1", "--methods", "grid,random", "--budget", "8"]
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.stderr
    grid, sampled = last_json(result)
    assert grid["hv_share_ci"] == [1.0, 1.0] and grid["trials_ci"] == [24.0, 24.0]
    assert sampled["seeds"] == 1 and 0 < sampled["hv_share"] < 1
    assert sampled["hv_share_ci"] == [0.0, 1.0] and sampled["compute_share_ci"] == [0.0, 1.0]
    assert sampled["trials"] == 8 and sampled["trials_ci"] == [0.0, 24.0]
    assert t_interval([0.4], SHARE) == Estimate(0.4, 0.0, 1.0)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_outputs_where_nothing_can_be_written_are_refused_before_replaying(tmp_path):
    """/proc takes no new files, even from root (whom permission bits do not stop)."""
    path = str(save_record(synthetic_recording(), tmp_path / "grid.json.gz"))
    replay = ["replay", "--record", path, "--seeds", "2"]
    _one_line_error([*replay, "--save-record", "/proc/dse.json.gz"], "/proc is not writable")
    _one_line_error([*replay, "--plot", "--out", "/proc/dse/figures"], "/proc is not writable")
    _one_line_error([*replay, "--save-record", str(tmp_path)], "is a directory")


def test_old_layout_studies_are_refused_or_replayed(tmp_path, monkeypatch):
    """The database written before the house layout: its grid has failed points, so replay
    says so in one line (a missing study too); its complete grid of 2 replays."""
    monkeypatch.chdir(tmp_path)
    with closing(sqlite3.connect(tmp_path / "old.db")) as db:
        db.executescript((FIXTURES / "old_layout.sql").read_text())
    storage = ["--storage", "sqlite:///old.db"]
    _one_line_error(["replay", *storage, "--study", "legacy-grid"], "not a complete grid")
    _one_line_error(["replay", *storage, "--study", "nope"], "no such study")
    # its other study ran both of its points in full, with curves: it replays
    args = ["replay", *storage, "--study", "legacy-repeats", "--seeds", "2", "--format", "json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    rows = {row["method"]: row for row in last_json(result)}
    assert rows["grid"]["trials"] == 2 and rows["grid"]["hv_share"] == 1.0


def test_without_storage_or_record_the_replay_reads_the_default_database(tmp_path, monkeypatch):
    """As `dse pareto` and `dse trials` do: results/dse.db, or one line saying it is missing."""
    monkeypatch.chdir(tmp_path)
    _one_line_error(["replay", "--seeds", "2"], "no results database at results/dse.db")
    (tmp_path / "results").mkdir()
    with closing(sqlite3.connect(tmp_path / "results" / "dse.db")) as db:
        db.executescript((FIXTURES / "old_layout.sql").read_text())
    args = ["replay", "--study", "legacy-repeats", "--seeds", "2", "--format", "json"]
    default = runner.invoke(app, args)
    named = runner.invoke(app, [*args, "--storage", "sqlite:///results/dse.db"])
    assert default.exit_code == named.exit_code == 0, default.stderr
    assert last_json(default) == last_json(named)
    assert {row["method"] for row in last_json(default)} >= {"grid", "random"}


def test_a_constrained_grid_takes_its_reference_point_as_pareto_does():
    """`dse pareto` bounds the hypervolume by the worst of every complete trial, feasible or
    not (results.reference_point); the replay's grid takes the same point."""
    recording = _with_space(synthetic_recording(), constraints=["val_accuracy >= 0.96"])
    trials = [
        replace(t, metrics={**t.metrics, "val_accuracy": t.values[1]}) for t in recording.trials
    ]
    recording = replace(recording, trials=trials)
    grid = Grid(recording)
    every = [t.values for t in trials]
    feasible = [t.values for t in trials if t.values[1] >= 0.96]
    assert 0 < len(feasible) < len(every)
    assert grid.reference == worst_plus_margin(every, grid.directions)
    assert grid.reference != worst_plus_margin(feasible, grid.directions)


def test_a_record_missing_fields_or_saved_plain(tmp_path, monkeypatch):
    """A record with a trial missing its curve names the trial's place, not Python's
    internals; `--save-record x.json` writes plain JSON, which reads back."""
    monkeypatch.chdir(tmp_path)
    data = synthetic_recording().to_json()
    del data["trials"][1]["curve"]
    Path("no_curve.json").write_text(json.dumps(data))
    _one_line_error(["replay", "--record", "no_curve.json"], "its trial #2 is not a mapping of")
    data = synthetic_recording().to_json()
    data["trials"][0]["curve"] = [1, 2]
    Path("int_curve.json").write_text(json.dumps(data))
    _one_line_error(["replay", "--record", "int_curve.json"], "its trial #1 is not a mapping of")
    _one_line_error(["replay", "--record", str(tmp_path)], "is a directory, not a record file")
    plain = save_record(synthetic_recording(), "plain.json")
    assert json.loads(plain.read_text())["format"] == FORMAT
    assert load_record(plain) == synthetic_recording()
    # a study's name is free text; the figure's file is named safely, inside --out
    save_record(replace(synthetic_recording(), study="../team a/grid"), "odd.json.gz")
    args = ["replay", "--record", "odd.json.gz", "--methods", "grid", "--plot", "--out", "fig"]
    shown = runner.invoke(app, args)
    assert shown.exit_code == 0, shown.stderr
    assert (tmp_path / "fig" / "replay_.._team_a_grid.html").is_file()


def test_names_and_rates_users_give_are_taken_as_they_are(tmp_path, monkeypatch):
    """A study named like rich markup prints as its name; one too long for a file name names
    its figure by its start and a hash; an eta barely above 1 makes a rung of every epoch
    at once (not one power of eta at a time); --study must name the record's study."""
    monkeypatch.chdir(tmp_path)
    save_record(replace(synthetic_recording(), study="[/]"), "markup.json.gz")
    result = runner.invoke(app, ["replay", "--record", "markup.json.gz", "--seeds", "2"])
    assert result.exit_code == 0, result.stderr
    assert "replay of study [/]" in result.stdout
    long = "x" * 300
    save_record(replace(synthetic_recording(), study=long), "long.json.gz")
    args = ["replay", "--record", "long.json.gz", "--seeds", "2", "--methods", "grid"]
    result = runner.invoke(app, [*args, "--plot", "--out", "fig"])
    assert result.exit_code == 0, result.stderr
    (figure,) = Path("fig").iterdir()
    assert figure.name.startswith("replay_xxx") and len(figure.name) <= 120
    started = time.perf_counter()
    args = ["replay", "--record", "markup.json.gz", "--seeds", "1", "--methods", "moasha"]
    result = runner.invoke(app, [*args, "--eta", "1.0000001", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    assert time.perf_counter() - started < 30
    assert "eta 1.0000001" in result.stderr
    _one_line_error(
        ["replay", "--record", "markup.json.gz", "--study", "other"],
        "--study other: the record markup.json.gz holds study [/]",
    )
