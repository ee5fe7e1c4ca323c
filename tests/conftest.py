"""Shared fixtures: small datasets written in the real file formats, and tiny configs."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dse.config import TrialConfig
from dse.data.formats import write_norb
from dse.data.sources import SOURCES
from dse.data.synthetic import write_idx_dataset
from dse.presets import preset


def write_norb_dataset(folder: Path, n_train: int = 40, n_test: int = 20) -> Path:
    """A smallNORB-format dataset: stereo 2x96x96 uint8 pairs and int32 labels in [0, 5)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = SOURCES["smallnorb"].files
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        write_norb(
            folder / files[f"{split}_images"].name,
            rng.integers(0, 256, (n, 2, 96, 96)).astype(np.uint8),
        )
        write_norb(folder / files[f"{split}_labels"].name, rng.integers(0, 5, n).astype(np.int32))
    return folder


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path_factory):
    """No test touches the network or the user's cache."""
    monkeypatch.setenv("DSE_OFFLINE", "1")
    monkeypatch.setenv("DSE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def one_thread():
    """One torch thread: tiny models train fastest so, and stay quick on a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """cwd = a fresh folder with data/mnist (400 training, 100 test images); DSE_DATA_DIR set."""
    write_idx_dataset(tmp_path / "data" / "mnist", n_train=400, n_test=100)
    monkeypatch.setenv("DSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def digits_root(tmp_path_factory) -> Path:
    """A data root holding mnist/ with 600 training and 200 test images (synthetic)."""
    root = tmp_path_factory.mktemp("data")
    write_idx_dataset(root / "mnist")
    return root


def tiny_config(*extra: str) -> TrialConfig:
    """A CapsNet small enough to train an epoch in a second or two on 2 cores."""
    sets = [
        "epochs=1",
        "dataset.val_size=100",
        "dataset.test_subset=100",
        "model.conv_channels=16",
        "model.primary_types=4",
        "model.primary_dim=4",
        "model.class_dim=8",
        "batch_schedule.batch_size=50",
        "eval_batch_size=100",
    ]
    return preset("baseline").with_overrides([*sets, *extra])


REAL_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def last_json(result) -> Any:
    """The JSON object a command printed on the last line of stdout."""
    return json.loads(result.stdout.strip().splitlines()[-1])


def invoke_json(args: list[str]) -> tuple[Any, Any]:
    """Run `dse ARGS --format json` in process; it must succeed. Returns (result, data)."""
    from typer.testing import CliRunner

    from dse.cli import app

    result = CliRunner().invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.stderr
    return result, last_json(result)


def each(option: str, values: list[str]) -> list[str]:
    """`--opt a --opt b` for a repeatable option."""
    return [item for value in values for item in (option, value)]


TINY_SPACE = """
name: {name}
base:
  epochs: {epochs}
  eval_batch_size: 200
  dataset: {{val_size: 100, test_subset: 100}}
  model: {{conv_channels: 8, primary_types: 2, primary_dim: 4, class_dim: 4}}
  batch_schedule: {{batch_size: 50}}
axes:
  model.routing_iterations: [1, 2]
  optimizer.lr: {lrs}
"""


# Epochs of a tiny trial that still trains for seconds: ~0.06 s an epoch on a fast 2-core VM
# (at 4-6 epochs a trial took 0.4 s, and a study could end before a test stopped its database
# or signalled its runner). For tests that act while trials are training.
LONG_TRIAL_EPOCHS = 40


def write_space(
    folder: Path, name: str = "tiny", epochs: int = 1, lrs: str = "[0.001, 0.003]"
) -> Path:
    """A grid of tiny CapsNets (2 routing settings x the given learning rates)."""
    path = folder / f"{name}.yaml"
    path.write_text(TINY_SPACE.format(name=name, epochs=epochs, lrs=lrs))
    return path


def params_study():
    """A StudyView of n_params against val_accuracy; trial 2 fails its constraint."""
    import optuna

    from dse.search.results import StudyView

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize", "maximize"])
    study.set_metric_names(["n_params", "val_accuracy"])
    for n_params, accuracy, excess in ((17368, 0.47, -0.1), (3274634, 0.75, -0.4), (100, 0.2, 0.1)):
        study.add_trial(
            optuna.create_trial(
                values=[n_params, accuracy], constraints={"val_accuracy >= 0.3": excess}
            )
        )
    return StudyView(study)


def subprocess_env() -> dict[str, str]:
    """This environment with the repository first on PYTHONPATH (kept: it may hold packages)."""
    path = [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}


def dse_command(*args: str) -> tuple[list[str], dict[str, str]]:
    """`python -m dse ARGS` as a separate process, and its environment."""
    return [sys.executable, "-m", "dse", *args], subprocess_env()


def load_study(storage: str, name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=storage)


@contextlib.contextmanager
def private_server(server_class: Any, binaries: tuple | None, package: str):
    """A private database server of `server_class`, made from the `binaries` found, in a
    temporary folder (skipped only outside CI when the Debian `package` is not installed)."""
    import shutil
    import tempfile

    if binaries is None:
        if os.environ.get("CI"):
            pytest.fail(f"{package} is not installed: .ci/run installs it")
        pytest.skip(f"{package} is not installed (apt-get install {package})")
    folder = Path(tempfile.mkdtemp(prefix="dse-db-"))  # not under pytest's root-only tmp
    server = server_class(*binaries, folder)
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):  # a test may have left it stopped
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def private_postgres():
    from tests.pgserver import PostgresServer, find_bin_dir

    bin_dir = find_bin_dir()
    return private_server(PostgresServer, bin_dir and (bin_dir,), "postgresql")


def private_mariadb():
    from tests.mysqlserver import MariaDBServer, find_binaries

    return private_server(MariaDBServer, find_binaries(), "mariadb-server")


@pytest.fixture(scope="session")
def postgres_server():
    """A private PostgreSQL server for the session."""
    with private_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def restartable_postgres():
    """A private PostgreSQL server of a test module's own: its tests stop and restart it."""
    with private_postgres() as server:
        yield server


def database_name(request) -> str:
    """A database name of the test's own (its node name, cut to fit, and that name's hash)."""
    import zlib

    name = request.node.name
    readable = "".join(c if c.isalnum() else "_" for c in name)[:40].lower()
    return f"t_{readable}_{zlib.crc32(name.encode()):08x}"


@pytest.fixture
def pg_url(postgres_server, request) -> str:
    """A fresh database on the session's server (postgresql+psycopg:// URL)."""
    return postgres_server.create_database(database_name(request))


@pytest.fixture(scope="session")
def mariadb_server():
    """A private MariaDB server for the session."""
    with private_mariadb() as server:
        yield server


@pytest.fixture(scope="module")
def restartable_mariadb():
    """A private MariaDB server of a test module's own: its tests stop and restart it."""
    with private_mariadb() as server:
        yield server


def without_times(result) -> dict:
    """A result's numbers that do not depend on the clock."""
    data = result.to_dict()
    for key in ("train_time_s", "time_to_best_s", "samples_per_s", "peak_mem_mb", "environment"):
        data.pop(key)
    for record in data["history"]:
        record.pop("epoch_time_s")
    return data
