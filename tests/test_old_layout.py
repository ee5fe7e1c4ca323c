"""A results database written before the house refactor still opens, reports and resumes.

tests/fixtures/old_layout.sql is the dump (sqlite3 .dump, text) of a database written by the
code at b8996c8 (trial attributes set by hand in the runner); old_layout_outputs.json holds what
its read-only commands printed then (tests/fixtures/record_old_layout.py says how both were
made). Each test restores the dump into a fresh SQLite file: no database is committed.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dse.cli import app
from tests.conftest import last_json

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def old_db(workdir: Path) -> str:
    with closing(sqlite3.connect(workdir / "old.db")) as db:
        db.executescript((FIXTURES / "old_layout.sql").read_text())
    return "sqlite:///old.db"


RECORDED = json.loads((FIXTURES / "old_layout_outputs.json").read_text())

# What issue 15 changed on purpose, applied to what the old code printed:
# - the model's parameter count is `n_params` (`params` means the hyperparameters, as in optuna);
# - `dse trials` of a study with repeats has each objective's std over the seeds;
# - `dse export` says on stderr which trial it took, and warns when it did not complete;
# - the training seconds of a study of repeats count every seed (0afeac2).
EXPORT_NOTES = {
    "grid export knee": (
        "trial 10: the knee of the front's 2 (train_time_s 0.969, val_accuracy 0.08)\n"
    ),
    "grid export fastest": (
        "trial 10: the fastest of the front's 2 (train_time_s 0.969, val_accuracy 0.08)\n"
    ),
    "grid export trial 3": (
        "warning: trial 3 is FAIL (out of memory: simulated out of memory "
        "(DSE_FAULT_OOM_ABOVE_BATCH=40): batch of 50 at epoch 1, step 1), not a complete result\n"
    ),
    "repeats export knee": (
        "trial 0: the knee of the front's 1 (train_time_s 0.3712, val_accuracy 0.19)\n"
    ),
}


# What later fixes changed on purpose:
# - `dse studies` counts the stopped (PRUNED) trials, so the columns add up to `trials`;
# - `dse trials --format json` has every float in full, as its CSV has (the old JSON was rounded
#   to 10 decimal places: 0.615415749 for 0.6154157489999932);
# - a TrialConfig has `compile` (issue 18): an old trial's config exports it as false, and
#   `dse trials` has a compile_s column after duration_s, empty for a trial that did not compile;
# - `dse studies`: `failed` as `dse run` counts it, the other FAIL records `uncounted`;
# - a --retry-oom retry's params show the half batch it ran; `feasible` is empty for a trial
#   that did not complete;
# - `dse trials` and `dse pareto` show the columns they share in one order: the objectives
#   after the number (and state), each beside its std, before the other metrics;
# - `dse pareto`'s hypervolume line reads training seconds below 10 to a tenth (a study of
#   tiny trials spent 0.4 s, not 0): the recorded whole number is the new one rounded.


def _with_stopped(stdout: str) -> str:
    """The studies' rows with `stopped` after `complete`: the trials no other column counts."""
    rows = []
    for row in json.loads(stdout):
        counted = sum(row[c] for c in ("complete", "failed", "running", "waiting"))
        before = {k: row[k] for k in ("study", "objectives", "trials", "complete")}
        after = {k: row[k] for k in ("failed", "running", "waiting", "pareto")}
        rows.append(before | {"stopped": row["trials"] - counted} | after)
    return json.dumps(rows) + "\n"


def _unrounded(stdout: str, recorded: str) -> str:
    """The recorded rows, each float replaced by the one printed now where the two agree to
    10 decimal places (what the old JSON kept)."""
    now, then = json.loads(stdout), json.loads(recorded)
    assert len(now) == len(then)
    for new_row, old_row in zip(now, then, strict=True):
        for key, value in old_row.items():
            if isinstance(value, float) and round(new_row.get(key), 10) == value:
                old_row[key] = new_row[key]
    return json.dumps(then) + "\n"


def _with_compile(expected: str, name: str) -> str:
    """The recorded output as today's `compile` key and compile_s column change it."""
    if " export " in name:
        return expected.replace("\nprecision: fp32\n", "\nprecision: fp32\ncompile: false\n")
    if name.endswith("trials csv"):
        rows = list(csv.reader(io.StringIO(expected)))
        at = rows[0].index("duration_s") + 1
        rows = [[*row[:at], "compile_s" if i == 0 else "", *row[at:]] for i, row in enumerate(rows)]
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        return out.getvalue()
    if name.endswith("trials json"):
        rows = json.loads(expected)
        with_column = []
        for row in rows:
            keys = list(row)
            at = keys.index("duration_s") + 1
            items = list(row.items())
            with_column.append(dict([*items[:at], ("compile_s", None), *items[at:]]))
        return json.dumps(with_column) + "\n"
    return expected


def _renamed(stdout: str) -> str:
    """The trials table's metric column, renamed (pareto's `params` is the hyperparameters)."""
    return stdout.replace('"params": ', '"n_params": ').replace(",params,", ",n_params,")


def _every_seeds_seconds(stderr: str, old_db: str) -> str:
    """The training seconds a study of repeats spent count every seed's (the old code counted
    each trial's mean over its seeds once), summed here from the stored per-seed metrics."""
    with closing(sqlite3.connect(old_db.removeprefix("sqlite:///"))) as db:
        rows = db.execute(
            "SELECT value_json FROM trial_user_attributes WHERE key = 'per_seed'"
        ).fetchall()
    seconds = sum(seed["train_time_s"] for (value,) in rows for seed in json.loads(value))
    old = stderr.rsplit(", ", 1)[1]  # "N training seconds\n"
    return stderr.replace(old, f"{seconds:.0f} training seconds\n")


SECONDS = re.compile(r"(\d+(?:\.\d)?) training seconds\n$")


def _to_a_tenth(expected: str, stderr: str) -> str:
    """The recorded line with the training seconds printed now, where they are below 10 and
    round to the recorded whole number (the new figure is to a tenth: 7.5 for 7.46 and 7)."""
    old, new = SECONDS.search(expected), SECONDS.search(stderr)
    assert old and new and "." not in old[1], (expected, stderr)
    if float(old[1]) >= 10:
        return expected
    assert "." in new[1] and abs(float(new[1]) - int(old[1])) <= 0.55, (expected, stderr)
    return expected[: old.start()] + f"{new[1]} training seconds\n"


def _with_uncounted(stdout: str) -> str:
    """`failed` counts what `dse run` counts, the trials failed for good; the other FAIL
    records (attempts retried, a trial withdrawn) are `uncounted`. Every old one is such."""
    rows = []
    for row in json.loads(stdout):
        items = list(row.items())
        at = list(row).index("failed") + 1
        rows.append(dict([*items[:at], ("uncounted", row["failed"]), *items[at:]]) | {"failed": 0})
    return json.dumps(rows) + "\n"


def _half_batch_as_run(expected: str, name: str, old_db: str) -> str:
    """A --retry-oom retry shows the batch it ran (half its point's), not its point's; only a
    complete trial is judged feasible."""
    with closing(sqlite3.connect(old_db.removeprefix("sqlite:///"))) as db:
        halved = {
            number
            for (number,) in db.execute(
                "SELECT t.number FROM trials t JOIN trial_user_attributes a "
                "ON a.trial_id = t.trial_id WHERE a.key = 'half_batch' AND a.value_json = 'true'"
            )
        }
    key = "batch_schedule.batch_size"
    if name.endswith("trials csv"):
        rows = list(csv.reader(io.StringIO(expected)))
        at, feasible = rows[0].index(f"params_{key}"), rows[0].index("feasible")
        for row in rows[1:]:
            if int(row[0]) in halved:
                row[at] = str(int(row[at]) // 2)
            if row[1] != "COMPLETE":
                row[feasible] = ""
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        return out.getvalue()
    rows = json.loads(expected)
    for row in rows:
        params = row["params"] if name.endswith("pareto json") else row
        name_of = key if name.endswith("pareto json") else f"params_{key}"
        if row["number"] in halved and params.get(name_of) is not None:
            params[name_of] //= 2
        if "feasible" in row and row["state"] != "COMPLETE":
            row["feasible"] = None
    return json.dumps(rows) + "\n"


OBJECTIVES = ("train_time_s", "val_accuracy")  # both old studies'
OBJECTIVES_FIRST = ["number", "state", *(c for m in OBJECTIVES for c in (m, f"{m}_std"))]


def _in_one_order(expected: str, name: str) -> str:
    """The recorded trials (and the front of repeats, whose std came after every objective)
    with the objectives first, each beside its std."""

    def order(keys: list[str]) -> list[str]:
        return [k for k in OBJECTIVES_FIRST if k in keys] + [
            k for k in keys if k not in OBJECTIVES_FIRST
        ]

    if name.endswith("csv"):
        rows = list(csv.reader(io.StringIO(expected)))
        at = [rows[0].index(column) for column in order(rows[0])]
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([row[i] for i in at] for row in rows)
        return out.getvalue()
    rows = [{k: row[k] for k in order(list(row))} for row in json.loads(expected)]
    return json.dumps(rows) + "\n"


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_read_commands_print_what_they_printed_before(old_db: str, name: str) -> None:
    recorded = RECORDED[name]
    result = CliRunner().invoke(app, [*recorded["args"], "--storage", old_db])
    assert result.exit_code == recorded["exit_code"], result.stderr
    stdout = result.stdout
    if name == "repeats trials json":
        rows = json.loads(stdout)
        complete = [row for row in rows if row["state"] == "COMPLETE"]
        assert complete and all(row["val_accuracy_std"] >= 0 for row in complete)
        assert all(row["train_time_s_std"] > 0 for row in complete)
        without_std = [{k: v for k, v in row.items() if not k.endswith("_std")} for row in rows]
        stdout = json.dumps(without_std) + "\n"
    expected = _with_compile(recorded["stdout"], name)
    if " trials " in name:
        expected = _renamed(expected)
    if name.endswith("trials json"):
        expected = _unrounded(stdout, expected)
    if name == "studies":
        expected = _with_uncounted(_with_stopped(expected))
    if name.startswith("grid") and (" trials " in name or " pareto " in name):
        expected = _half_batch_as_run(expected, name, old_db)
    if " trials " in name or " pareto " in name:
        expected = _in_one_order(expected, name)
    assert stdout == expected
    expected_stderr = recorded["stderr"] + EXPORT_NOTES.get(name, "")
    if name.startswith("repeats pareto"):
        expected_stderr = _every_seeds_seconds(expected_stderr, old_db)
    if " pareto " in name:
        expected_stderr = _to_a_tenth(expected_stderr, result.stderr)
    assert result.stderr == expected_stderr


def test_the_old_study_resumes_counting_its_trials(old_db: str) -> None:
    """The same command again finds every grid point done (6 complete, 2 stopped; the
    out-of-memory trial's retry counts instead of it): nothing runs."""
    space = str(FIXTURES / "old_layout_grid.yaml")
    args = ["run", "--space", space, "--storage", old_db, "--gpus", "cpu", "--quiet"]
    result = CliRunner().invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.stderr
    assert "6 complete, 2 stopped early, 0 failed of 8 planned" in result.stderr
    front = last_json(result)
    assert [row["number"] for row in front] == [10, 9]


def test_the_old_study_is_sampled_without_repeats_and_reports(old_db: str, workdir: Path) -> None:
    """Random sampling over the old grid, every point of which has run: the sampled point is a
    repeat (recorded, not trained), nothing is left to sample, and the run says so; the report
    is written."""
    space = str(FIXTURES / "old_layout_grid.yaml")
    args = ["run", "--space", space, "--storage", old_db, "--gpus", "cpu", "--quiet"]
    result = CliRunner().invoke(app, [*args, "--sampler", "random", "--n-trials", "10"])
    assert result.exit_code == 0, result.stderr
    assert "of 10 planned" in result.stderr
    assert "every point of the space has run, so no more were sampled" in result.stderr
    trials = json.loads(
        CliRunner()
        .invoke(app, ["trials", "--storage", old_db, "--study", "legacy-grid", "-f", "json"])
        .stdout
    )
    new = [t for t in trials if t["number"] >= 12]  # 12 old: one failed for memory, one withdrawn
    assert new and all(t["state"] == "FAIL" and t["error"].startswith("repeat: trial") for t in new)
    assert all(t["train_time_s"] is None for t in new)
    report = CliRunner().invoke(
        app, ["pareto", "--storage", old_db, "--study", "legacy-grid", "--plot", "--out", "rep"]
    )
    assert report.exit_code == 0, report.stderr
    assert (workdir / "rep" / "legacy-grid-pareto.html").is_file()


def test_the_old_study_knows_its_space(old_db: str) -> None:
    """A study made before spaces were fingerprinted has the one its stored space file says:
    the same file resumes (above), another is refused."""
    space = str(FIXTURES / "old_layout_grid.yaml")
    args = ["run", "--space", space, "--storage", old_db, "--gpus", "cpu", "--quiet"]
    result = CliRunner().invoke(app, [*args, "--repeats", "2"])
    assert result.exit_code == 2
    assert "study 'legacy-grid' was run with another space (base.repeats differ)" in result.stderr
