"""The CLI through typer's CliRunner: exit codes, one-line errors, JSON on the last line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dse import commands
from dse.cli import app
from dse.config import TrialConfig
from dse.presets import preset
from dse.train.result import METRICS
from tests.conftest import last_json

runner = CliRunner()

TINY = [
    "--set",
    "epochs=1",
    "--set",
    "dataset.val_size=100",
    "--set",
    "dataset.test_subset=100",
    "--set",
    "model.conv_channels=16",
    "--set",
    "model.primary_types=4",
    "--set",
    "batch_schedule.batch_size=50",
    "--set",
    "eval_batch_size=100",
]


def test_summary_json_reports_the_papers_parameter_count():
    result = runner.invoke(app, ["summary", "--preset", "baseline", "--format", "json"])
    assert result.exit_code == 0
    data = last_json(result)
    assert data["n_params"] == 8_215_568 and 400e6 < data["flops_per_sample"] < 410e6
    shared = last_json(
        runner.invoke(
            app,
            [
                "summary",
                "--preset",
                "baseline",
                "--set",
                "model.weight_sharing=per_type",
                "--format",
                "json",
            ],
        )
    )
    assert data["n_params"] - shared["n_params"] == 1_433_600


def test_summary_table():
    result = runner.invoke(app, ["summary", "--preset", "weight_sharing"])
    assert (
        result.exit_code == 0 and "primary_caps" in result.stdout and "6,708,240" in result.stdout
    )


def test_config_show_round_trips(tmp_path):
    result = runner.invoke(app, ["config", "show", "--preset", "wab_ws", "--set", "epochs=3"])
    assert result.exit_code == 0
    (tmp_path / "c.yaml").write_text(result.stdout)
    assert TrialConfig.from_file(tmp_path / "c.yaml") == preset("wab_ws").with_overrides(
        ["epochs=3"]
    )
    again = runner.invoke(app, ["config", "show", "--config", str(tmp_path / "c.yaml")])
    assert again.stdout == result.stdout


def test_train_json_last_line(digits_root, tmp_path):
    save = tmp_path / "model.pt"
    result = runner.invoke(
        app,
        [
            "train",
            "--preset",
            "exp_decay",
            *TINY,
            "--data-dir",
            str(digits_root),
            "--save",
            str(save),
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    data = last_json(result)
    for key in (*METRICS, "history", "environment", "config"):
        assert key in data
    assert data["config"]["lr_policy"]["name"] == "exp_decay" and save.is_file()


def test_train_table(digits_root):
    result = runner.invoke(app, ["train", *TINY, "--data-dir", str(digits_root)])
    assert result.exit_code == 0, result.stderr
    assert "val_accuracy" in result.stdout and "history" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["summary", "--preset", "fast"], "unknown preset 'fast'; choose from baseline"),
        (["summary", "--set", "model.foo=1"], "--set: model.foo: unknown key"),
        (["summary", "--set", "epochs"], "expected KEY=VALUE"),
        (
            ["bench", "--compare", "model.routing_iterations=1,x"],
            "--compare: model.routing_iterations: Input should be a valid integer (got 'x')",
        ),
        (["config", "show", "--config", "missing.yaml"], "missing.yaml: file not found"),
        (
            ["config", "show", "--config", "x.yaml", "--preset", "baseline"],
            "either --config or --preset",
        ),
        (["train", "--device", "cuda:7"], "--device cuda:7: no such GPU"),
        (["train", "--threads", "1000"], "--threads 1000: choose 1 to "),
        (["bench", "--threads", "1000"], "--threads 1000: choose 1 to "),
        (["train", "--device", "gpu0"], "--device 'gpu0': expected cpu, cuda or cuda:N"),
        (
            ["train", "--save", "/nonexistent/dir/m.pt"],
            "--save /nonexistent/dir/m.pt: directory /nonexistent/dir does not exist",
        ),
        (
            ["train", "--save", "/dev/null"],
            "--save /dev/null: not a regular file (a device, a pipe or a socket)",
        ),
        (["run", "--space", "/tmp"], "--space /tmp: is a directory, not a space file"),
    ],
)
def test_user_errors_exit_2_with_one_line(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


NEGATIVE_SEED = f"seed: -1 is outside 0 .. {2**64 - 1}, the seeds torch takes"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--set", "seed=-1", "--save", "m.pt"], f"--set: {NEGATIVE_SEED}"),
        (["bench", "--set", "seed=-1"], f"--set: {NEGATIVE_SEED}"),
        (["calibrate", "--set", "seed=-1"], f"--set: {NEGATIVE_SEED}"),
        (["calibrate", "--config", "c.yaml"], f"c.yaml: {NEGATIVE_SEED}"),
        (["run", "--space", "s.yaml"], f"s.yaml: {NEGATIVE_SEED}"),
        (["run", "--space", "a.yaml"], f"a.yaml: {NEGATIVE_SEED}"),
        (["run", "--space", "smoke", "--seed", "-1"], "--seed -1: must be 0 to 4294967295"),
    ],
)
def test_a_negative_seed_is_one_line_and_writes_nothing(workdir, args, message):
    """torch would seed -1 as 2**64-1; refused before anything is written, from --set, a
    config file, a space's base or axis (`dse run --seed` seeds the sampler: numpy's range)."""
    (workdir / "c.yaml").write_text("seed: -1\n")
    (workdir / "s.yaml").write_text("name: s\nbase: {seed: -1}\n")
    (workdir / "a.yaml").write_text("name: a\naxes: {seed: [0, -1]}\n")
    before = sorted(p.name for p in workdir.iterdir())
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.strip().splitlines() == [f"error: {message}"]
    assert sorted(p.name for p in workdir.iterdir()) == before


def test_missing_dataset_exits_2_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("DSE_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train", "--preset", "baseline", "--save", "m.pt"])
    assert result.exit_code == 2
    assert (
        "mnist: files not found" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_invalid_yaml_config_names_file_and_line(tmp_path):
    (tmp_path / "bad.yaml").write_text("epochs: 3\nmodel: {conv_channels: [\n")
    result = runner.invoke(app, ["train", "--config", str(tmp_path / "bad.yaml")])
    assert (
        result.exit_code == 2 and "bad.yaml:" in result.stderr and "invalid YAML" in result.stderr
    )


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path):
    """Nine levels of nine aliases: 700 bytes that read out as 387 million values."""
    lines = ["name: x", "a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for level in range(1, 9):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]")
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    for command in (["run", "--space"], ["train", "--config"]):
        result = runner.invoke(app, [*command, str(tmp_path / "bomb.yaml")])
        assert result.exit_code == 2, result.output
        assert "more than 1,000,000 values once its aliases (*name) are expanded" in result.stderr
    assert time.perf_counter() - started < 30


def test_output_that_cannot_be_written_is_one_line(tmp_path):
    """A full disk under stdout (/dev/full), a closed stdout: one line on stderr, exit 2."""
    args = [sys.executable, "-m", "dse", "config", "show", "--preset", "baseline"]
    with open("/dev/full", "w") as full:
        result = subprocess.run(args, stdout=full, stderr=subprocess.PIPE, text=True)
    assert result.returncode == 2
    assert result.stderr == (
        "error: stdout: the output could not be written (No space left on device)\n"
    )
    result = subprocess.run(
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.close(1),
    )
    assert result.returncode == 2
    assert result.stderr == "error: stdout is closed: nowhere to write the output\n"


def test_a_ctrl_c_no_command_caught_is_one_line(monkeypatch):
    """A Ctrl-C between the imports and a command's own handler (typer answers 130 alone)."""

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "studies", interrupted)
    result = runner.invoke(app, ["studies", "--storage", "sqlite:///none.db"])
    assert result.exit_code == 130
    assert result.stderr == "interrupted: the command stopped before it finished\n"


def test_debug_variable_shows_the_traceback(monkeypatch):
    monkeypatch.setenv("DSE_DEBUG", "1")
    result = runner.invoke(app, ["summary", "--preset", "fast"])
    assert result.exit_code != 0 and result.exception is not None


def test_bench_compares_variants_side_by_side():
    args = [
        "bench",
        "--set",
        "model.conv_channels=8",
        "--set",
        "model.primary_types=2",
        "--batch",
        "8",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--compare",
        "model.routing_iterations=1,3",
        "--format",
        "json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    rows = last_json(result)
    assert [r["name"] for r in rows] == ["routing_iterations=1", "routing_iterations=3"]
    for row in rows:
        assert {"samples_per_s", "ms_per_step", "gflops", "ceiling_share", "peak_mem_mb"} <= set(
            row
        )
        assert (
            row["samples_per_s"] > 0
            and 0 < row["ceiling_share"] < 1.5
            and row["peak_mem_mb"] > 0
            and row["process_rss_mb"] > 0
        )
    assert rows[0]["ratio"] == 1.0


def test_bench_compiles_on_request_and_counts_compile_time_apart():
    args = ["bench", "--set", "model.conv_channels=8", "--set", "model.primary_types=2"]
    args += ["--set", "model.decoder=none", "--batch", "4", "--steps", "2", "--warmup", "1"]
    result = runner.invoke(app, [*args, "--compile"])
    assert result.exit_code == 0, result.stderr
    assert "bf16 runs on: " in result.stderr  # the preface: AMX, AVX512-BF16 or no hardware
    result = runner.invoke(app, [*args, "--compile", "--format", "json"])
    eager, compiled = last_json(result)
    assert (eager["name"], compiled["name"]) == ("baseline", "baseline compiled")
    assert eager["compile_s"] == 0 and compiled["compile_s"] > 0
    assert compiled["samples_per_s"] > 0


def test_bench_fuses_seeds_on_request_and_reports_each_models_pace():
    """--fused 3: each CapsNet variant also as 3 fused models (as repeats 4 trains seeds 1-3);
    samples/s counts all three models' samples, samples_per_s_per_model one model's."""
    args = ["bench", "--set", "model.conv_channels=8", "--set", "model.primary_types=2"]
    args += ["--batch", "4", "--steps", "2", "--warmup", "0", "--fused", "3"]
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.stderr
    alone, fused = last_json(result)
    assert (alone["name"], fused["name"]) == ("baseline", "baseline fused x3")
    assert (alone["models"], fused["models"]) == (1, 3)
    assert alone["samples_per_s_per_model"] == pytest.approx(alone["samples_per_s"])
    assert fused["samples_per_s"] == pytest.approx(3 * fused["samples_per_s_per_model"])
    assert fused["samples_per_s_per_model"] == pytest.approx(4e3 / fused["ms_per_step"])
    assert fused["gflops"] == pytest.approx(
        3 * alone["gflops"] * alone["ms_per_step"] / fused["ms_per_step"], rel=1e-6
    )  # three models' arithmetic per step
    for bad, message in [
        (["--fused", "1"], "--fused 1: fuses at least 2 models"),
        (["--fused", "2", "--set", "model.name=cnn_baseline"], "only CapsNet seeds train fused"),
        (
            ["--fused", "2", "--set", f"seed={2**64 - 1}"],
            f"error: --fused 2 with seed {2**64 - 1}: the last seed {2**64} is above {2**64 - 1}",
        ),
    ]:
        refused = runner.invoke(app, ["bench", *bad])
        assert refused.exit_code == 2 and message in refused.stderr, refused.stderr


@pytest.mark.parametrize(
    ("compares", "message"),
    [
        (["model.routing_iterations"], "--compare 'model.routing_iterations': expected KEY=V1,V2"),
        (["model.routing_iterations="], "--compare model.routing_iterations=: no values given"),
        (["model.routing_iterations=1,"], "model.routing_iterations=1,: an empty value"),
        (["model.routing_iterations=1,1"], "model.routing_iterations=1,1: 1 is listed twice"),
        (["model.routing_iterations=[1, 1]"], "1 is listed twice"),
        (
            ["model.routing_iterations=1,2", "model.routing_iterations=1,3"],
            "--compare model.routing_iterations: given twice; list its values once",
        ),
    ],
)
def test_bench_bad_compare(compares, message):
    args = [arg for compare in compares for arg in ("--compare", compare)]
    result = runner.invoke(app, ["bench", *args])
    assert result.exit_code == 2 and result.stdout == "", result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "--set" not in lines[0], lines


def test_help_still_shows_help():
    """The one-line usage errors leave help as it was: `--help` exits 0, a bare group shows
    its commands and exits 2 (click's rule for a group called without a command)."""
    shown = runner.invoke(app, ["run", "--help"])
    assert shown.exit_code == 0 and "--early-stop" in shown.stdout
    bare = runner.invoke(app, [])
    assert bare.exit_code == 2 and "pareto" in bare.stdout + bare.stderr
    group = runner.invoke(app, ["config"])
    assert group.exit_code == 2 and "presets" in group.stdout + group.stderr


def test_rule_settings_without_the_rule_are_refused(tmp_path, monkeypatch):
    """`--rungs`/`--eta` without `--early-stop` would run every trial in full unannounced; and
    `--methods` for a replay names each method once."""
    monkeypatch.chdir(tmp_path)
    for extra, message in [
        (["--rungs", "1,2"], "--rungs: only with --early-stop moasha"),
        (["--eta", "2", "--rungs", "1"], "--rungs and --eta: only with --early-stop moasha"),
    ]:
        refused = runner.invoke(
            app, ["run", "--space", "smoke", "--storage", "sqlite:///r.db", *extra]
        )
        assert refused.exit_code == 2 and refused.stderr.strip() == f"error: {message}"
    assert not (tmp_path / "r.db").exists()
    record = str(Path(__file__).parent.parent / "bench/records/efficiency_policies.json.gz")
    for methods, message in [(",", "no method given"), ("grid,grid", "grid is listed twice")]:
        refused = runner.invoke(app, ["replay", "--record", record, "--methods", methods])
        assert refused.exit_code == 2 and message in refused.stderr, refused.stderr


# A first weight of 3e14 bytes: refused at allocation at once, on any machine, before any
# memory is touched (a size a machine could hold would fill it before failing).
IMPOSSIBLE_WIDTH = "model.conv_channels=1000000000000"


def _one_out_of_memory_line(result) -> None:
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: out of memory: a tensor of "), lines
    assert "GiB did not fit" in lines[0] and "Traceback" not in result.stderr


def test_out_of_memory_is_one_line_fast():
    started = time.monotonic()
    result = runner.invoke(app, ["summary", "--preset", "baseline", "--set", IMPOSSIBLE_WIDTH])
    _one_out_of_memory_line(result)
    assert time.monotonic() - started < 30


def test_training_out_of_memory_is_one_line_and_writes_nothing(digits_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["--data-dir", str(digits_root), "--save", "m.pt", "--set", IMPOSSIBLE_WIDTH]
    result = runner.invoke(app, ["train", "--preset", "baseline", *TINY, *args])
    _one_out_of_memory_line(result)
    assert sorted(tmp_path.iterdir()) == []


def test_debug_variable_shows_the_out_of_memory_traceback(monkeypatch):
    monkeypatch.setenv("DSE_DEBUG", "1")
    result = runner.invoke(app, ["summary", "--preset", "baseline", "--set", IMPOSSIBLE_WIDTH])
    assert isinstance(result.exception, RuntimeError)
