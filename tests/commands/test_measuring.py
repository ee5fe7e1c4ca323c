"""bench, profile and calibrate's command layer: what a signal leaves (one line, 128 + it)."""

from __future__ import annotations

import signal

import pytest
from typer.testing import CliRunner

from dse.cli import app
from tests.conftest import each, last_json

runner = CliRunner()
TINY = [
    "epochs=1",
    "dataset.val_size=100",
    "dataset.test_subset=100",
    "model.conv_channels=8",
    "model.primary_types=2",
    "model.primary_dim=4",
    "model.class_dim=4",
    "batch_schedule.batch_size=50",
    "eval_batch_size=100",
]


def _signalled(number: int):
    """A stand-in for the measuring that gets `number`, as from `kill` or Ctrl-C."""

    def measure(*args, **kwargs):
        # never the default action here: it would end the test run, not the command
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None)
        signal.raise_signal(number)

    return measure


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize(
    ("command", "measure", "line"),
    [
        ("bench", "dse.measure.bench.run_bench", "interrupted before the benchmark finished"),
        ("profile", "dse.measure.profile.profile_steps", "interrupted before the profile finished"),
    ],
)
def test_a_signal_while_measuring_is_one_line(workdir, monkeypatch, number, command, measure, line):
    monkeypatch.setattr(measure, _signalled(number))
    result = runner.invoke(app, [command, *each("--set", TINY)])
    assert result.exit_code == 128 + number, result.stderr
    assert result.stderr.splitlines() == [line]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back as it was


def test_sigterm_during_calibration_says_how_far_it_got_and_writes_nothing(workdir, monkeypatch):
    from dse.train import seeds

    train_seeds = seeds.train_seeds
    calls = []

    def second_run_terminated(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            _signalled(signal.SIGTERM)()
        return train_seeds(*args, **kwargs)

    monkeypatch.setattr(seeds, "train_seeds", second_run_terminated)
    result = runner.invoke(app, ["calibrate", *each("--set", TINY), "--runs", "3"])
    assert result.exit_code == 143, result.stderr
    assert result.stderr.splitlines()[-1] == (
        "interrupted after 1 of 3 runs: results/calibration.json not written"
    )
    assert not (workdir / "results" / "calibration.json").exists()


@pytest.fixture
def two_cpus_one_busy(monkeypatch):
    """2 CPUs, another program keeping one busy; torch's default 2 threads (restored after)."""
    import torch

    monkeypatch.setattr("dse.search.devices.cpu_count", lambda: 2)
    monkeypatch.setattr("dse.search.devices.busy_cpus", lambda: 1.0)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


BUSY = "1 of 2 CPUs were busy with other programs when it started"
BENCH = ["bench", *each("--set", TINY), "--batch", "4", "--steps", "1", "--warmup", "0"]


def test_bench_leaves_busy_cpus_and_its_rows_say_the_threads_and_the_ceiling(
    workdir, two_cpus_one_busy
):
    result = runner.invoke(app, [*BENCH, "--format", "json"])
    assert result.exit_code == 0, result.stderr
    (row,) = last_json(result)
    assert row["threads"] == 1 and row["ceiling_gflops"] > 0
    assert row["ceiling_share"] == pytest.approx(row["gflops"] / row["ceiling_gflops"])
    assert result.stderr.splitlines() == [f"measured with 1 thread(s): {BUSY} (--threads sets it)"]


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("bench", BENCH[1:]),
        ("profile", [*each("--set", TINY), "--batch", "4", "--steps", "1", "--warmup", "0"]),
        ("calibrate", [*each("--set", TINY), "--runs", "2"]),
    ],
)
def test_threads_given_on_busy_cpus_warn_that_timings_are_slowed(
    workdir, two_cpus_one_busy, command, args
):
    result = runner.invoke(app, [command, *args, "--threads", "2", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"warning: {BUSY}: the timings with --threads 2 are slowed by them "
        "(without it, 1 thread(s) on the idle ones)"
    )


@pytest.mark.parametrize(
    ("command", "args", "did"),
    [
        ("profile", ["--batch", "4", "--steps", "1", "--warmup", "0"], "profiled"),
        ("calibrate", ["--runs", "2"], "trained"),
    ],
)
def test_profile_and_calibrate_use_the_idle_cpus_and_say_so(
    workdir, two_cpus_one_busy, command, args, did
):
    import torch

    result = runner.invoke(app, [command, *each("--set", TINY), *args, "--format", "json"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines()[-1] == f"{did} with 1 thread(s): {BUSY} (--threads sets it)"
    assert torch.get_num_threads() == 1


def test_calibrate_refuses_a_subset_the_data_cannot_give_naming_the_file_first(
    workdir, monkeypatch
):
    def no_training(*args, **kwargs):
        raise AssertionError("trained before its data was checked")

    monkeypatch.setattr("dse.measure.calibrate.run_calibration", no_training)
    (workdir / "big.yaml").write_text("dataset: {val_size: 100, train_subset: 301}\n")
    result = runner.invoke(app, ["calibrate", "--config", "big.yaml", "--runs", "2"])
    assert (result.exit_code, result.stdout) == (2, "")
    train_images = workdir / "data" / "mnist" / "train-images-idx3-ubyte.gz"
    assert result.stderr == (
        "error: big.yaml: dataset.train_subset: 301 is more than the 300 samples after "
        f"dataset.val_size in {train_images}\n"
    )
    assert sorted(p.name for p in workdir.iterdir()) == ["big.yaml", "data"]
