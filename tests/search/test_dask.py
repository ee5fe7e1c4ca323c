"""`dse run --backend dask` on a real Dask LocalCluster (2 worker processes), results in a real
PostgreSQL server, real (tiny) training on synthetic digits."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from dse.cli import app
from dse.space import load_space
from tests.conftest import subprocess_env, write_idx_dataset
from tests.pgserver import free_port
from tests.search.test_runner import TINY_SPACE

runner = CliRunner()


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes with one thread each: one trial per process at a time."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        env={"DSE_OFFLINE": "1"},
    )
    yield cluster
    cluster.close()


@pytest.fixture
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_idx_dataset(root / "mnist", n_train=400, n_test=100)
    return root


def _space(folder: Path, epochs: int, lrs: str) -> Path:
    path = folder / "tiny.yaml"
    path.write_text(TINY_SPACE.format(name="tiny", epochs=epochs, lrs=lrs))
    return path


def _ready(cluster) -> None:
    """Both workers up (a test before may have killed one; its nanny restarts it), each with
    the trainer imported: a fresh worker's first trial would spend seconds importing torch
    while the other worker's trial runs (the worker-kill test needs both training at once)."""
    with __import__("distributed").Client(cluster.scheduler_address) as client:
        client.wait_for_workers(2, timeout=120)
        client.run(lambda: __import__("dse.train.trainer") and None)


def _grid(space: Path) -> list[tuple]:
    loaded = load_space(str(space))
    return sorted(tuple(sorted(loaded.encoded(p).items())) for p in loaded.grid())


def test_a_study_runs_on_two_dask_workers_into_postgresql(cluster, data, tmp_path, pg_url):
    _ready(cluster)
    space = _space(tmp_path, epochs=1, lrs="[0.001, 0.002, 0.003, 0.004]")
    args = ["run", "--space", str(space), "--storage", pg_url, "--data-dir", str(data)]
    args += ["--checkpoint-dir", str(tmp_path / "checkpoints")]  # not the workers' own folder
    result = runner.invoke(
        app, [*args, "--backend", "dask", "--scheduler", cluster.scheduler_address, "-q"]
    )
    assert result.exit_code == 0, result.stderr
    trials = optuna.load_study(study_name="tiny", storage=pg_url).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 8
    assert sorted(tuple(sorted(t.params.items())) for t in trials) == _grid(space)
    workers = {t.user_attrs["slot"] for t in trials}
    assert len(workers) == 2 and workers <= set(cluster.scheduler_info["workers"])
    for t in trials:
        assert t.user_attrs["device"] == "cpu" and t.user_attrs["host"] == socket.gethostname()
        assert t.user_attrs["environment"]["dask_worker"] == t.user_attrs["dask_worker"]
        assert t.user_attrs["environment"]["threads"] == 1  # 2 cores, 2 trials at once
        assert len(t.user_attrs["history"]) == 1
    assert "[8/8] trial" in result.stderr  # progress on the submitting side


def test_a_trial_counts_its_host_s_trials_as_it_starts_not_as_it_was_submitted(cluster):
    """A trial submitted while one of a host's two workers was away (killed, its nanny
    restarting it) kept the threads chosen then: every core, beside the other worker's trial
    once it was back. Now the worker counts the host's trials as the trial starts."""
    _ready(cluster)
    with __import__("distributed").Client(cluster.scheduler_address) as client:
        host = next(iter(client.scheduler_info()["workers"].values()))["host"]

        def on_a_worker() -> tuple[int, int]:
            from distributed import get_worker

            from dse.search.dask_pool import trial_threads
            from dse.search.devices import cpu_count

            return trial_threads(get_worker(), 0, {host: 1}), cpu_count()

        threads, cores = client.submit(on_a_worker, pure=False).result(timeout=60)
    assert threads == max(1, cores // 2)  # two workers of one thread each on the host


def _nanny_pid(cluster, address: str) -> int:
    for nanny in cluster.workers.values():
        if nanny.worker_address == address:
            return nanny.process.process.pid
    raise AssertionError(f"no worker process at {address}")


def test_a_killed_dask_worker_fails_its_trial_and_it_is_retried_elsewhere(
    cluster, data, tmp_path, pg_url
):
    _ready(cluster)
    # Long enough that both trials are seen training at once: at 12 epochs a fast machine ran
    # them in a few seconds and the polling below missed it (twice in full clean-clone runs).
    epochs = 30
    space = _space(tmp_path, epochs=epochs, lrs="[0.001]")
    command = [sys.executable, "-m", "dse", "run", "--space", str(space), "--storage", pg_url]
    command += ["--data-dir", str(data), "--backend", "dask"]
    command += ["--checkpoint-dir", str(tmp_path / "checkpoints")]  # every worker reaches it
    command += ["--scheduler", cluster.scheduler_address, "-q"]
    env = subprocess_env()
    run = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        victim = None
        deadline = time.monotonic() + 300
        while victim is None and time.monotonic() < deadline:
            time.sleep(0.3)
            if run.poll() is not None:  # ended before both workers trained: say why
                raise AssertionError(f"the run ended ({run.returncode}): {run.stderr.read()}")
            try:
                trials = optuna.load_study(study_name="tiny", storage=pg_url).get_trials()
            except KeyError:  # not created yet
                continue
            started = [
                t for t in trials if t.state == TrialState.RUNNING and "dask_worker" in t.user_attrs
            ]
            if len(started) == 2 and len(started[0].user_attrs.get("curve", [])) >= 2:
                victim = started[0]  # both workers are training, one has 2 epochs done
        assert victim is not None, "never saw both Dask workers training"
        os.kill(_nanny_pid(cluster, victim.user_attrs["slot"]), signal.SIGKILL)
        _, stderr = run.communicate(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, stderr
    trials = optuna.load_study(study_name="tiny", storage=pg_url).get_trials()
    died = next(t for t in trials if t.number == victim.number)
    assert died.state == TrialState.FAIL and died.user_attrs["retried"]
    assert died.user_attrs["error"] == (
        f"worker died (Dask worker {victim.user_attrs['slot']} lost) on {victim.user_attrs['slot']}"
    )
    retry = next(t for t in trials if t.user_attrs.get("retry_of") == died.number)
    assert retry.state == TrialState.COMPLETE and retry.params == died.params
    # resumed from the dead worker's checkpoint, at least at the epochs it reported
    assert retry.user_attrs["resumed_from_epoch"] >= len(died.user_attrs["curve"]) >= 2
    assert len(retry.user_attrs["history"]) == epochs and retry.user_attrs["lost_train_s"] > 0
    assert list((tmp_path / "checkpoints").rglob("*.pt")) == []  # removed once complete
    assert retry.user_attrs["slot"] != died.user_attrs["slot"]  # another worker process
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(tuple(sorted(t.params.items())) for t in complete) == _grid(space)
    assert len(trials) == 3  # two points and one retry


def test_missing_dask_extra_is_one_line_naming_it(tmp_path):
    space = _space(tmp_path, epochs=1, lrs="[0.001]")
    code = (
        "import sys; sys.modules['distributed'] = None; from dse.cli import main; "
        f"sys.argv = ['dse', 'run', '--space', {str(space)!r}, '--backend', 'dask', "
        "'--scheduler', 'tcp://127.0.0.1:1']; main()"
    )
    env = subprocess_env()
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert done.stderr == (
        "error: --backend dask needs Dask distributed: pip install 'dse[dask]'\n"
    )
    assert not (tmp_path / "results").exists()


def test_a_server_that_is_no_scheduler_is_one_line_within_the_deadline(tmp_path, monkeypatch):
    """A port that accepts but speaks no Dask (a server of another kind, the dashboard's port
    8787): the Client's handshake waited for ever, deaf to SIGTERM; now one line, exit 2, no
    database."""
    pytest.importorskip("distributed")
    from dse.search import dask_pool

    monkeypatch.setattr(dask_pool, "CONNECT_TIMEOUT_S", 2)
    monkeypatch.setattr(dask_pool, "HANDSHAKE_GRACE_S", 1)
    silent = socket.socket()  # connections are accepted (the backlog) and never answered
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
    space = _space(tmp_path, epochs=1, lrs="[0.001]")
    storage = f"sqlite:///{tmp_path / 'x.db'}"
    started = time.monotonic()
    with silent:
        args = ["--storage", storage, "--backend", "dask", "--scheduler", address]
        result = runner.invoke(app, ["run", "--space", str(space), *args])
    assert time.monotonic() - started < 30
    assert result.exit_code == 2, result.output
    assert result.output == (
        f"error: --scheduler {address}: cannot connect: no Dask scheduler answered within 3s\n"
    )
    assert not (tmp_path / "x.db").exists()


def _started(command: list[str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", *command], env=subprocess_env(), stdout=out, stderr=out,
            start_new_session=True,
        )  # fmt: skip


def test_a_killed_scheduler_stops_the_run_with_one_line(data, tmp_path):
    """The scheduler dies mid-trial: the client gives up reconnecting and cancels every future;
    the run said so as a traceback (FuturesCancelledError, then ClosedClientError as it closed)."""
    pytest.importorskip("distributed")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    serve = ["--host", "127.0.0.1", "--port", str(port), "--dashboard-address", ":0"]
    scheduler = _started(["distributed.cli.dask_scheduler", *serve], tmp_path / "scheduler.log")
    worker = _started(
        ["distributed.cli.dask_worker", address, "--nthreads", "1", "--no-dashboard"],
        tmp_path / "worker.log",
    )
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    command = [sys.executable, "-m", "dse", "run", "--space", str(_space(tmp_path, 30, "[0.001]"))]
    command += ["--storage", storage, "--data-dir", str(data), "--backend", "dask"]
    run = subprocess.Popen(
        [*command, "--scheduler", address, "-q"], env=subprocess_env(), stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.3)
            with contextlib.suppress(KeyError):  # the study is not made yet
                trials = optuna.load_study(study_name="tiny", storage=storage).get_trials()
                if any("dask_worker" in t.user_attrs for t in trials):
                    break  # a trial is training on the worker
        os.killpg(scheduler.pid, signal.SIGKILL)
        _, stderr = run.communicate(timeout=60)
    finally:
        for process in (run, worker, scheduler):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    assert run.returncode == 2, stderr
    *before, last = [line for line in stderr.splitlines() if line.strip()]
    assert last == (
        f"error: the Dask scheduler {address} is gone (the connection to it was lost); restart "
        "it and its workers, then the same dse run resumes the study"
    )
    # only dse's own lines: Dask's client logged its reconnects and a 30-line traceback here
    assert all(line.startswith(("study tiny: ", "trial ")) for line in before), stderr


def test_a_connect_given_up_on_prints_nothing_after_the_one_line(tmp_path):
    """The process exits while the connecting thread still waits for a handshake: its Client
    raised as the interpreter shut down and the thread printed a traceback after dse's line."""
    pytest.importorskip("distributed")
    silent = socket.socket()  # connections are accepted (the backlog) and never answered
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
    space = _space(tmp_path, epochs=1, lrs="[0.001]")
    code = (
        "import sys; from dse.search import dask_pool; from dse.cli import main; "
        "dask_pool.CONNECT_TIMEOUT_S, dask_pool.HANDSHAKE_GRACE_S = 2, 1; "
        f"sys.argv = ['dse', 'run', '--space', {str(space)!r}, '--backend', 'dask', "
        f"'--scheduler', {address!r}, '--storage', 'sqlite:///{tmp_path / 'x.db'}']; main()"
    )
    with silent:
        done = subprocess.run(
            [sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == (
        f"error: --scheduler {address}: cannot connect: no Dask scheduler answered within 3s\n"
    )


def test_a_data_dir_the_workers_lack_is_named_by_its_option(cluster, tmp_path):
    """The workers' own check of the data, sent back as text, lost the option's CLI spelling:
    `Dask worker ...: data_dir /x: ...` where every other line says `--data-dir`."""
    _ready(cluster)
    space = _space(tmp_path, epochs=1, lrs="[0.001]")
    missing = tmp_path / "no-data"
    args = ["run", "--space", str(space), "--storage", f"sqlite:///{tmp_path / 'runs.db'}"]
    args += ["--backend", "dask", "--scheduler", cluster.scheduler_address]
    result = runner.invoke(app, [*args, "--data-dir", str(missing)])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: Dask worker tcp://")
    assert f": --data-dir {missing}: " in result.stderr and ": data_dir " not in result.stderr


def _dask_run(cluster, space: Path, data_dir: Path, tmp_path: Path):
    _ready(cluster)
    args = ["run", "--space", str(space), "--storage", f"sqlite:///{tmp_path / 'runs.db'}"]
    args += ["--backend", "dask", "--scheduler", cluster.scheduler_address]
    return runner.invoke(app, [*args, "--data-dir", str(data_dir), "--quiet"])


def test_a_subset_the_workers_data_cannot_give_is_refused_before_the_run(cluster, data, tmp_path):
    """The workers check the data as a local run checks it: a test subset larger than their
    files (100 test images) is one line naming the space file, the worker and the key, and
    nothing is written; it would otherwise fail every trial on the cluster."""
    space = _space(tmp_path, epochs=1, lrs="[0.001]")
    space.write_text(space.read_text().replace("test_subset: 100", "test_subset: 500"))
    result = _dask_run(cluster, space, data, tmp_path)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Dask worker tcp://"), result.stderr
    assert "tiny.yaml: base: dataset.test_subset: 500 is more than the 100 samples" in lines[0]
    assert not (tmp_path / "runs.db").exists()


def test_a_corrupt_file_on_the_workers_is_refused_before_the_run(cluster, data, tmp_path):
    """A gzip file whose middle is damaged has a valid header: each worker reads it through
    (its CRC) before the run starts, as a local run does here."""
    images = data / "mnist" / "train-images-idx3-ubyte.gz"
    raw = bytearray(images.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    images.write_bytes(bytes(raw))
    result = _dask_run(cluster, _space(tmp_path, epochs=1, lrs="[0.001]"), data, tmp_path)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Dask worker tcp://"), result.stderr
    assert f"{images}: cannot read: " in lines[0]
    assert not (tmp_path / "runs.db").exists()
