"""A study remembers the space it was run with: another space is refused (one line, nothing
written) unless --extend adds its points, and then only they count toward the run's budget.
Optuna keeps a categorical parameter's choices fixed within a study, so an axis whose choices
changed gets a parameter of its own name (`optimizer.lr#2`), and its points run anew."""

from __future__ import annotations

import json
import sys

from typer.testing import CliRunner

from dse.cli import app
from tests.conftest import load_study, write_space

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, ["run", "--gpus", "cpu", "--quiet", *args])


def _trials(storage: str = "sqlite:///results/dse.db") -> list[dict]:
    result = runner.invoke(app, ["trials", "--storage", storage, "--format", "json"])
    return json.loads(result.stdout)


def test_another_space_is_refused_then_extends_the_study(workdir):
    space = write_space(workdir)  # routing [1, 2] x lr [0.001, 0.003]
    assert _run("--space", str(space)).exit_code == 0
    before = _trials()
    assert len(before) == 4

    space.write_text(space.read_text().replace("[0.001, 0.003]", "[0.001, 0.01]"))
    refused = _run("--space", str(space))
    assert refused.exit_code == 2
    line = refused.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "study 'tiny' was run with another space (axes.optimizer.lr differ)" in line
    assert "--study" in line and "--extend" in line
    assert _trials() == before  # nothing written

    extended = _run("--space", str(space), "--extend")
    assert extended.exit_code == 0, extended.stderr
    assert "4 complete, 0 failed of 4 planned" in extended.stderr  # the new space's 4 points
    after = _trials()
    assert len(after) == 8 and all(t["state"] == "COMPLETE" for t in after)
    assert {t["params_optimizer.lr#2"] for t in after if t["number"] >= 4} == {0.001, 0.01}
    assert all(t["params_optimizer.lr"] is None for t in after if t["number"] >= 4)
    stored = load_study("sqlite:///results/dse.db", "tiny").user_attrs["fingerprints"]
    assert [f["axes"]["optimizer.lr"] for f in stored] == [[0.001, 0.003], [0.001, 0.01]]
    # a replay takes the grid the study was made with, and says what it leaves out
    replay = runner.invoke(app, ["replay", "--storage", "sqlite:///results/dse.db", "--seeds",
                                 "2", "--methods", "grid", "--format", "json"])  # fmt: skip
    assert replay.exit_code == 0, replay.stderr
    assert json.loads(replay.stdout.splitlines()[-1])[0]["trials"] == 4
    assert "study tiny: 4 trial(s) ran points off the grid of the space it was made with" in (
        replay.stderr
    )

    space.write_text(space.read_text().replace("[0.001, 0.01]", "[0.001, 0.003]"))
    again = _run("--space", str(space))  # either space of the study resumes without --extend
    assert again.exit_code == 0 and "4 complete, 0 failed of 4 planned" in again.stderr
    assert len(_trials()) == 8


def test_repeats_change_the_space(workdir):
    space = write_space(workdir)
    assert _run("--space", str(space)).exit_code == 0
    refused = _run("--space", str(space), "--repeats", "2")
    assert refused.exit_code == 2 and "(base.repeats differ)" in refused.stderr
    # --extend keeps the base, so the line does not offer it (it offered it, then refused it)
    assert refused.stderr.strip().endswith("differ): use another --study")


def test_extend_adds_points_but_keeps_the_base(workdir):
    space = write_space(workdir)
    assert _run("--space", str(space)).exit_code == 0
    space.write_text(space.read_text().replace("epochs: 1", "epochs: 2"))
    refused = _run("--space", str(space), "--extend")
    assert refused.exit_code == 2
    assert "--extend adds points" in refused.stderr and "(base.epochs differ)" in refused.stderr


STARTS_A_TRIAL_AND_DIES = """
import sys
import optuna
from dse.search.records import Placement, TrialRecord
from dse.search.storage import open_storage
study = optuna.load_study(study_name="orphans", storage=open_storage(sys.argv[1], False))
trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
TrialRecord(trial).start({}, Placement("cpu#0", "cpu"))
"""


def test_a_journal_trial_whose_runner_died_is_failed_and_queued_again(tmp_path):
    """A journal file has no heartbeats: a runner killed mid-trial left it RUNNING, and every
    later `dse run` of the study waited for it for ever. Its runner's process is gone from
    this host, so the next runner fails it with that reason and queues its point again."""
    import subprocess

    import optuna
    from optuna.trial import TrialState

    from dse.search.forms import Placement
    from dse.search.records import TrialRecord
    from dse.search.storage import open_storage
    from dse.search.study import fail_stale
    from tests.conftest import subprocess_env

    url = str(tmp_path / "runs.journal")
    study = optuna.create_study(study_name="orphans", storage=open_storage(url, True))
    dead = subprocess.run(
        [sys.executable, "-c", STARTS_A_TRIAL_AND_DIES, url], env=subprocess_env(), timeout=60
    )
    assert dead.returncode == 0
    ours = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    TrialRecord(ours).start({}, Placement("cpu#0", "cpu"))  # this process: alive

    fail_stale(study)
    fail_stale(study)  # once only: the retry is queued once
    trials = study.get_trials()
    orphan = TrialRecord(trials[0])
    assert trials[0].state == TrialState.FAIL
    assert orphan.error is not None and orphan.error.startswith("stale: its runner ")
    assert trials[1].state == TrialState.RUNNING  # its runner is this test
    retries = [t for t in trials if t.state == TrialState.WAITING]
    assert len(retries) == 1 and TrialRecord(retries[0]).retry_of == 0
    assert TrialRecord(retries[0]).point == trials[0].params


def test_a_runner_seed_is_the_seed_for_a_study_s_first_run_and_distinct_after():
    from dse.search.study import runner_seed

    assert runner_seed(7, 0) == 7  # the first run samples as --seed always did
    seeds = [runner_seed(7, runner) for runner in range(1, 6)]
    assert len(set(seeds) | {7}) == 6 and all(0 <= s < 2**32 for s in seeds)
    assert seeds == [runner_seed(7, runner) for runner in range(1, 6)]  # reproducible
    assert runner_seed(8, 1) != runner_seed(7, 1)
