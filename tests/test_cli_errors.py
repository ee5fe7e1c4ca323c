"""User errors of the exploration commands: exit 2, one line naming the problem, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dse.cli import app

runner = CliRunner()

GOOD_SPACE = "name: t\nbase: {epochs: 1}\naxes: {model.routing_iterations: [1, 2]}\n"


@pytest.fixture
def workdir(tmp_path, monkeypatch, digits_root):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DSE_DATA_DIR", str(digits_root))
    (tmp_path / "good.yaml").write_text(GOOD_SPACE)
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "broken.yaml").write_text("name: t\naxes: {a: [1,\n")
    (tmp_path / "unknown.yaml").write_text(GOOD_SPACE + "sampler: tpe\n")
    (tmp_path / "badkey.yaml").write_text("name: t\naxes: {model.widht: [1, 2]}\n")
    (tmp_path / "badpolicy.yaml").write_text(
        "name: t\naxes: {lr_policy.name: [constant, cosine]}\n"
    )
    (tmp_path / "config.yaml").write_text("epochs: three\n")
    (tmp_path / "objectives.yaml").write_text(
        GOOD_SPACE + "objectives: {params: minimize, val_accuracy: maximize}\n"
    )
    (tmp_path / "nodata.yaml").write_text(
        GOOD_SPACE.replace("{epochs: 1}", "{epochs: 1, dataset: {name: smallnorb}}")
    )
    return tmp_path


CASES = [
    (["run", "--space", "missing.yaml"], "--space missing.yaml: no such file"),
    (["run", "--space", "empty.yaml"], "empty.yaml: the file is empty"),
    (["run", "--space", "broken.yaml"], "broken.yaml:3: invalid YAML"),
    (["run", "--space", "unknown.yaml"], "unknown.yaml: sampler: unknown key"),
    (["run", "--space", "badkey.yaml"], "model.widht: unknown key"),
    (
        ["run", "--space", "badpolicy.yaml"],
        "'cosine' is not a valid choice; choose from 'constant'",
    ),
    (["run", "--space", "good.yaml", "--gpus", "0,x"], "--gpus 0,x: expected GPU indices"),
    (["run", "--space", "good.yaml", "--gpus", "3"], "--gpus 3: no GPU 3"),
    (["run", "--space", "good.yaml", "--workers", "0"], "--workers 0: must be at least 1"),
    (["run", "--space", "good.yaml", "--sampler", "bayes"], "--sampler bayes: unknown sampler"),
    (["run", "--space", "good.yaml", "--early-stop", "hyperband"], "--early-stop hyperband"),
    (["run", "--space", "good.yaml", "--early-stop", "moasha", "--rungs", "3,1"], "--rungs 3,1"),
    (["run", "--space", "good.yaml", "--early-stop", "moasha", "--eta", "1"], "--eta 1.0: must"),
    (
        ["run", "--space", "objectives.yaml", "--early-stop", "moasha"],
        "objectives.params: --early-stop moasha cannot estimate it at a rung",
    ),
    (
        ["run", "--space", "good.yaml", "--storage", "foo://x/y"],
        "--storage foo://x/y: unknown storage URL",
    ),
    (["run", "--space", "good.yaml", "--storage", "sqlite:////proc/nope/x.db"], "cannot create"),
    (["run", "--space", "nodata.yaml"], "smallnorb: files not found"),
    (["pareto"], "no results database at results/dse.db"),
    (["trials", "--storage", "sqlite:///other.db"], "no results database at other.db"),
    (["studies", "--storage", "journal.log"], "no journal file at journal.log"),
    (["export", "--trial", "1", "--pick", "knee"], "give exactly one of --trial N or --pick"),
    (["export", "--pick", "best"], "--pick best: choose from knee, fastest, most-accurate"),
    (["train", "--config", "config.yaml"], "config.yaml: epochs: Input should be a valid integer"),
    (["train", "--config", "nope.yaml"], "nope.yaml: file not found"),
]


@pytest.mark.parametrize(("args", "message"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_user_error_exits_2_with_one_line_and_writes_nothing(workdir, args, message):
    before = sorted(p.relative_to(workdir) for p in workdir.rglob("*"))
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.relative_to(workdir) for p in workdir.rglob("*")) == before


@pytest.fixture
def finished_study(workdir):
    result = runner.invoke(app, ["run", "--space", "good.yaml", "--quiet"])
    assert result.exit_code == 0, result.stderr
    return workdir


STUDY_CASES = [
    (["pareto", "--study", "nope"], "--study nope: no such study; the storage holds: t"),
    (["export", "--trial", "99"], "--trial 99: study 't' has no such trial"),
    (
        [
            "run",
            "--space",
            "good.yaml",
            "--study",
            "t",
            "--storage",
            "sqlite:///results/dse.db",
            "--sampler",
            "grid",
            "--n-trials",
            "1",
        ],
        None,
    ),  # a valid resume: not an error
]


@pytest.mark.parametrize(("args", "message"), STUDY_CASES[:2])
def test_errors_about_a_study(finished_study, args, message):
    db = Path("results/dse.db")
    stamp = db.stat().st_mtime_ns
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and db.stat().st_mtime_ns == stamp


def test_two_studies_need_a_name(finished_study):
    (finished_study / "other.yaml").write_text(GOOD_SPACE.replace("name: t", "name: u"))
    assert runner.invoke(app, ["run", "--space", "other.yaml", "--quiet"]).exit_code == 0
    result = runner.invoke(app, ["pareto"])
    assert (
        result.exit_code == 2
        and "give --study: the storage holds 2 studies (t, u)" in result.stderr
    )
    studies = runner.invoke(app, ["studies", "--format", "json"])
    assert [row["study"] for row in __import__("json").loads(studies.stdout)] == ["t", "u"]


def test_export_to_a_missing_folder(finished_study):
    result = runner.invoke(app, ["export", "--pick", "knee", "--out", "no/such/dir/c.yaml"])
    assert result.exit_code == 2 and "--out no/such/dir/c.yaml: directory" in result.stderr
