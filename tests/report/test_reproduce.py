"""dse reproduce: the paper's table beside a study's (synthetic numbers, then a tiny real run)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dse.cli import app
from dse.report.reproduce import PAPER, Measured, orderings, report_rows
from tests.conftest import last_json

runner = CliRunner()


def _measured(acc: float, time_s: float, n_params: int = 100) -> Measured:
    return Measured(1, "mnist", acc, acc, time_s, time_s / 2, n_params)


def test_rows_relative_to_baseline_beside_the_papers():
    rows = report_rows(
        {
            "baseline": _measured(99.0, 100.0),
            "warm_adabatch": _measured(99.2, 40.0),
            "weight_sharing": _measured(98.9, 90.0, n_params=80),
        }
    )
    assert [r["config"] for r in rows] == ["Baseline", "WarmAdaBatch", "WeightSharing"]
    wab = rows[1]
    assert wab["time_reduction_%"] == 60.0 and wab["acc_change_pts"] == pytest.approx(0.2)
    assert wab["paper_way_time_s"] == 20.0 and wab["paper_way_reduction_%"] == 60.0
    assert wab["paper_acc_%"] == 99.454 and wab["paper_time_s"] == 2400
    assert wab["paper_time_reduction_%"] == 100 * (1 - 2400 / 8700)  # 72.41..., in full
    assert wab["paper_acc_change_pts"] == round(99.454 - 99.366, 3)
    assert rows[2]["paper_n_params"] == 6_719_920 and rows[0]["paper_n_params"] == 8_227_248


def test_orderings_count_pairs_in_the_papers_order():
    paper = PAPER["mnist"]
    # Times in the paper's order except baseline and one_cycle swapped; accuracies as the paper.
    names = ["baseline", "warm_adabatch", "one_cycle"]
    times = {"baseline": 70.0, "warm_adabatch": 24.0, "one_cycle": 87.0}
    rows = report_rows({n: _measured(paper[n].accuracy, times[n]) for n in names})
    by_measure = {o.measure: o for o in orderings(rows)}
    assert (by_measure["time (measured)"].agree, by_measure["time (measured)"].pairs) == (2, 3)
    assert by_measure["time (measured)"].disagreements == ["OneCycle < Baseline"]
    assert by_measure["test accuracy"].agree == 3


def test_reproduce_runs_a_tiny_paper_space_end_to_end(workdir):
    (workdir / "tiny_paper.yaml").write_text(
        "name: tiny_paper\nbase: {epochs: 2, eval_batch_size: 100, dataset: {val_size: 100, "
        "test_subset: 100}, model: {conv_channels: 8, primary_types: 2, primary_dim: 4, "
        "class_dim: 4}, batch_schedule: {batch_size: 50}}\n"
        "axes:\n  preset: [baseline, exp_decay, weight_sharing]\n"
    )
    storage = f"sqlite:///{workdir}/r.db"
    args = ["reproduce", "--space", "tiny_paper.yaml", "--storage", storage, "--workers", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert "| config | trials | test_acc_% |" in result.stdout
    assert "Orderings (pairs of configurations in the paper's order / pairs):" in result.stdout
    assert (workdir / "results" / "reproduce-tiny_paper.html").stat().st_size > 100_000
    # Resumed: nothing runs again; JSON carries the rows and the orderings.
    again = runner.invoke(app, [*args, "--no-run", "--format", "json"])
    data = last_json(again)
    assert [r["config"] for r in data["rows"]] == ["Baseline", "ExpDecay", "WeightSharing"]
    assert data["rows"][0]["time_reduction_%"] == 0.0 and data["rows"][0]["trials"] == 1
    assert (
        data["rows"][2]["n_params"] < data["rows"][0]["n_params"]
    )  # shared weights, small decoder
    assert [o["measure"] for o in data["orderings"]] == [
        "time (measured)",
        "time (paper's way)",
        "test accuracy",
    ]


def test_a_preset_without_a_complete_trial_is_named_not_left_out_silently(workdir, monkeypatch):
    # the table and the page dropped AdaBatch's row without a word
    (workdir / "p.yaml").write_text(
        "name: p\nbase: {epochs: 2, eval_batch_size: 100, dataset: {val_size: 100, "
        "test_subset: 100}, model: {conv_channels: 8, primary_types: 2, primary_dim: 4, "
        "class_dim: 4}, batch_schedule: {batch_size: 50}}\n"
        "axes:\n  preset:\n    baseline: {}\n"
        "    adabatch: {batch_schedule.batch_size: 16, batch_schedule.milestones: "
        "{value: [[1, 64]]}}\n"
    )
    monkeypatch.setenv("DSE_FAULT_OOM_ABOVE_BATCH", "60")  # AdaBatch's batch 64 fails
    args = ["reproduce", "--space", "p.yaml", "--workers", "1", "--format", "json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert [r["config"] for r in last_json(result)["rows"]] == ["Baseline"]
    assert "\nAdaBatch: no complete trial (1 failed)\nreport: " in result.stderr
    page = (workdir / "results" / "reproduce-p.html").read_text()
    assert "\\u003csup\\u003eAdaBatch: no complete trial (1 failed)\\u003c" in page  # plotly JSON


def test_reproduce_without_paper_presets_is_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(
        app,
        ["reproduce", "--space", "smoke", "--no-run", "--storage", f"sqlite:///{tmp_path}/none.db"],
    )
    assert result.exit_code == 2 and result.stderr.startswith("error: --storage")


def test_a_tie_of_ours_agrees_with_no_order_of_the_papers():
    """Equal measured accuracies reproduce neither order, whichever preset comes first."""
    names = ["baseline", "exp_decay", "weight_sharing"]  # paper: ws < baseline < exp_decay
    rows = report_rows({n: _measured(8.0, 10.0) for n in names})
    accuracy = next(o for o in orderings(rows) if o.measure == "test accuracy")
    assert (accuracy.agree, accuracy.pairs) == (0, 3)
    assert accuracy.disagreements == [
        "Baseline < ExpDecay",
        "WeightSharing < Baseline",
        "WeightSharing < ExpDecay",
    ]


def test_json_and_csv_carry_every_number_in_full_the_table_rounds(capsys):
    from dse.output import Format, Output, Rows, Shown
    from dse.report.reproduce import markdown

    rows = report_rows({"baseline": _measured(99.123456, 0.524), "exp_decay": _measured(99.0, 0.3)})
    assert rows[0]["time_s"] == 0.524 and rows[0]["test_acc_%"] == 99.123456
    assert rows[1]["time_reduction_%"] == pytest.approx(100 * (1 - 0.3 / 0.524), abs=1e-12)
    assert "| 0.5 |" in markdown(rows, "s") and "| 99.12 |" in markdown(rows, "s")
    Output(Format.csv).show(Shown(tables=[Rows(rows)], text=markdown(rows, "s")))
    assert ",0.524,0.0,0.262," in capsys.readouterr().out  # time_s, reduction, paper way


def test_the_papers_numbers_are_shown_as_the_paper_gives_them():
    from dse.report.reproduce import markdown

    rows = report_rows({n: _measured(99.0, 10.0) for n in ("baseline", "exp_decay")})
    text = markdown(rows, "s")
    assert "| 99.366 |" in text and "| 99.404 |" in text  # not 99.37, 99.4


def test_a_study_over_two_datasets_shows_one_chosen_not_both_averaged(workdir):
    from dse.data.synthetic import write_idx_dataset

    write_idx_dataset(workdir / "data" / "fashion_mnist", n_train=400, n_test=100)
    (workdir / "mixed.yaml").write_text(
        "name: mixed\nbase: {epochs: 1, eval_batch_size: 100, dataset: {val_size: 100, "
        "test_subset: 100}, model: {conv_channels: 8, primary_types: 2, primary_dim: 4, "
        "class_dim: 4}, batch_schedule: {batch_size: 50}}\n"
        "axes:\n  preset: [baseline]\n  dataset.name: [mnist, fashion_mnist]\n"
    )
    args = ["reproduce", "--space", "mixed.yaml", "--storage", f"sqlite:///{workdir}/r.db"]
    result = runner.invoke(app, [*args, "--workers", "1"])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "error: study mixed: its trials ran on fashion_mnist, mnist; "
        "the paper's table is one dataset's: choose one with --dataset"
    )
    chosen = last_json(
        runner.invoke(app, [*args, "--no-run", "--dataset", "fashion_mnist", "-f", "json"])
    )
    assert chosen["rows"][0]["trials"] == 1 and chosen["rows"][0]["paper_acc_%"] == 90.99
