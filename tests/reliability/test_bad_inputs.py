"""A corpus of bad inputs: each exits 2 with one line naming the problem, no traceback, and
leaves every file and folder of the working tree as it was (names, sizes, mtimes).

Search spaces, config files, CLI arguments, storage URLs, dataset files and checkpoints.
"""

from __future__ import annotations

import gzip
import importlib.util
import pickle
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dse.cli import app
from dse.data.formats import write_idx
from dse.data.sources import SOURCES
from dse.train.trainer import train
from tests.conftest import tiny_config, write_idx_dataset, write_norb_dataset

runner = CliRunner()

# Trials that train (the digits here are 600: the default val_size of 5000 leaves none, which
# dse run refuses before it starts); the cases below each break one thing of it.
GOOD_SPACE = (
    "name: t\nbase: {epochs: 1, dataset: {val_size: 100}, model: {conv_channels: 8, "
    "primary_types: 2, primary_dim: 4, class_dim: 4}}\naxes: {model.routing_iterations: [1, 2]}\n"
)


@pytest.fixture
def workdir(tmp_path, monkeypatch, digits_root, bad_checkpoints):
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
    (tmp_path / "afolder").mkdir()
    (tmp_path / "objectives.yaml").write_text(
        GOOD_SPACE + "objectives: {params: minimize, val_accuracy: maximize}\n"
    )
    (tmp_path / "nodata.yaml").write_text(
        GOOD_SPACE.replace("dataset: {val_size: 100}", "dataset: {name: smallnorb}")
    )
    spaces = {
        "types.yaml": "name: t\naxes: {model.routing_iterations: [one, two]}\n",
        "emptyaxis.yaml": "name: t\naxes: {model.routing_iterations: []}\n",
        "range.yaml": "name: t\naxes: {optimizer.lr: {low: 0.1, high: 0.01}}\n",
        "logrange.yaml": "name: t\naxes: {optimizer.lr: {low: 0, high: 0.01, log: true}}\n",
        "objective.yaml": GOOD_SPACE + "objectives: {accuracy: maximize, train_time_s: minimize}\n",
        "constraint.yaml": GOOD_SPACE + 'constraints: ["speed >= 3"]\n',
        "list.yaml": "- a\n- b\n",
        "badbase.yaml": GOOD_SPACE.replace("epochs: 1,", "epochs: 0,"),
        "continuous.yaml": "name: t\naxes: {optimizer.lr: {low: 0.001, high: 0.01}}\nn_trials: 2\n",
        "unknownkey.yaml": "modle: {}\n",
        "huge.yaml": "name: t\naxes: {seed: {low: 0, high: 999999}}\n",
        "badsyntax.yaml": "epochs: [1,\n",
    }
    for name, text in spaces.items():
        (tmp_path / name).write_text(text)
    _bad_datasets(tmp_path / "bad")
    shutil.copytree(bad_checkpoints, tmp_path / "ckpt")
    return tmp_path


def _bad_datasets(root: Path) -> None:
    """bad/KIND/mnist (or smallnorb): a small dataset with one file spoiled."""
    files = {role: f.name.removesuffix(".gz") for role, f in SOURCES["mnist"].files.items()}
    for kind in ("truncated", "magic", "count"):
        folder = write_idx_dataset(root / kind / "mnist", n_train=200, n_test=50, gz=False)
        images, labels = folder / files["train_images"], folder / files["train_labels"]
        if kind == "truncated":
            images.write_bytes(images.read_bytes()[:-100])
        elif kind == "magic":
            labels.write_bytes(b"\x12\x34\x08\x01" + labels.read_bytes()[4:])
        else:
            write_idx(labels, np.zeros(199, dtype=np.uint8))
    gz = {role: f.name for role, f in SOURCES["mnist"].files.items()}
    for kind in ("corrupt", "folder", "notgzip"):
        images = write_idx_dataset(root / kind / "mnist", 200, 50) / gz["train_images"]
        raw = bytearray(images.read_bytes())
        if kind == "corrupt":  # its gzip trailer still gives the right size
            raw[len(raw) // 2] ^= 0xFF
            images.write_bytes(bytes(raw))
        elif kind == "folder":
            images.unlink()
            images.mkdir()
        else:
            images.write_bytes(gzip.decompress(raw))
    norb = write_norb_dataset(root / "norb" / "smallnorb", n_train=4, n_test=4)
    dat = norb / SOURCES["smallnorb"].files["train_images"].name
    raw = bytearray(gzip.decompress(dat.read_bytes()))
    raw[4:8] = struct.pack("<I", 0)  # a header of 0 dimensions
    dat.write_bytes(gzip.compress(bytes(raw)))


@pytest.fixture(scope="session")
def bad_checkpoints(tmp_path_factory, digits_root) -> Path:
    folder = tmp_path_factory.mktemp("ckpt")
    train(tiny_config(), data_dir=digits_root, checkpoint=folder / "good.pt")
    raw = (folder / "good.pt").read_bytes()
    (folder / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    (folder / "foreign.pt").write_bytes(pickle.dumps({"format": "x", "payload": "y"}))
    (folder / "evil.pt").write_bytes(pickle.dumps(ValueError("runs code")))
    torch.save({"weights": torch.zeros(3)}, folder / "plain.pt")
    (folder / "text.pt").write_text("hello")
    return folder


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
    # usage errors found by the option parser: one line too, not typer's usage block and frame
    (["run", "--space", "good.yaml", "--n-trials", "0"], "'--n-trials': Input should be greater"),
    (["run", "--space", "good.yaml", "--bogus"], "No such option: --bogus"),
    (["pareto", "--robust", "2"], "'--robust': Input should be less than or equal to 1"),
    (["frobnicate"], "No such command 'frobnicate'"),
    (
        ["run", "--space", "good.yaml", "--sampler", "bayes"],
        "--sampler bayes: choose from grid, random, nsga2, tpe, gp",
    ),
    (["run", "--space", "good.yaml", "--sampler", "tpee"], "(did you mean tpe?)"),
    (["run", "--space", "good.yaml", "--early-stop", "asha"], "--early-stop asha: choose from"),
    (["evaluate", "--checkpoint", "x.pt", "--split", "train"], "--split train: choose from"),
    (["profile", "--by", "lyer"], "--by lyer: choose from op, layer (did you mean layer?)"),
    (["profile", "--mode", "eval"], "--mode eval: choose from train, test"),
    (["config", "show", "--set", "epoch=2"], "epoch: unknown key; did you mean epochs?"),
    (["run", "--space", "good.yaml", "--early-stop", "hyperband"], "--early-stop hyperband"),
    (["run", "--space", "good.yaml", "--early-stop", "moasha", "--rungs", "3,1"], "--rungs 3,1"),
    (["run", "--space", "good.yaml", "--early-stop", "moasha", "--eta", "1"], "--eta 1.0: must"),
    (
        ["run", "--space", "objectives.yaml", "--early-stop", "moasha"],
        "objectives.n_params: --early-stop moasha cannot estimate it at a rung",
    ),
    (
        ["run", "--space", "good.yaml", "--storage", "foo://x/y"],
        "--storage foo://x/y: unknown storage URL",
    ),
    (["run", "--space", "good.yaml", "--storage", "sqlite:////proc/nope/x.db"], "cannot create"),
    (["run", "--space", "nodata.yaml"], "smallnorb: files not found"),
    (["run", "--space", "good.yaml", "--backend", "ray"], "--backend ray: choose from local, dask"),
    (["run", "--space", "good.yaml", "--backend", "dask"], "--backend dask needs --scheduler"),
    (["run", "--space", "good.yaml", "--scheduler", "tcp://h:8786"], "--scheduler needs --backend"),
    (
        [
            "run",
            "--space",
            "good.yaml",
            "--backend",
            "dask",
            "--scheduler",
            "tcp://h:1",
            "--workers",
            "2",
        ],
        "--workers with --backend dask: the Dask workers decide",
    ),
    (["pareto"], "no results database at results/dse.db"),
    (["trials", "--storage", "sqlite:///other.db"], "no results database at other.db"),
    (["trials", "--storage", "sqlite:///afolder"], "afolder is a folder, not a database file"),
    (
        ["run", "--space", "good.yaml", "--storage", "sqlite:///afolder"],
        "--storage sqlite:///afolder: afolder is a folder, not a database file",
    ),
    (["studies", "--storage", "journal.log"], "no journal file at journal.log"),
    (["export", "--trial", "1", "--pick", "knee"], "give exactly one of --trial N or --pick"),
    (["export", "--pick", "best"], "--pick best: choose from knee, fastest, most-accurate"),
    (["train", "--config", "config.yaml"], "config.yaml: epochs: Input should be a valid integer"),
    (["train", "--config", "nope.yaml"], "nope.yaml: file not found"),
    # search spaces: types, empty axes, ranges, objectives and constraints, shape, base
    (["run", "--space", "types.yaml"], "model.routing_iterations: Input should be a valid int"),
    (["run", "--space", "emptyaxis.yaml"], "axes.model.routing_iterations: empty list"),
    (["run", "--space", "range.yaml"], "axes.optimizer.lr: low 0.1 is greater than high 0.01"),
    (["run", "--space", "logrange.yaml"], "a log range needs low > 0, got 0"),
    (["run", "--space", "objective.yaml"], "objectives.accuracy: not a metric; choose from"),
    (["run", "--space", "constraint.yaml"], "constraints: 'speed' is not a metric"),
    (["run", "--space", "list.yaml"], "list.yaml: expected a mapping with name, base, axes"),
    (["run", "--space", "badbase.yaml"], "badbase.yaml: epochs: Input should be greater than"),
    (["run", "--space", "continuous.yaml", "--sampler", "grid"], "has continuous ranges"),
    (["run", "--space", "huge.yaml"], "huge.yaml: a grid of 1,000,000 points, more than 100,000"),
    # config files and overrides
    (["train", "--config", "unknownkey.yaml"], "unknownkey.yaml: modle: unknown key"),
    (["train", "--config", "badsyntax.yaml"], "badsyntax.yaml:2: invalid YAML"),
    (["train", "--preset", "baseline", "--set", "model.routing_iterations=abc"], "--set: model"),
    (["train", "--preset", "nope"], "unknown preset 'nope'; choose from baseline"),
    (["train", "--preset", "baseline", "--device", "tpu"], "--device 'tpu': expected cpu"),
    # storage: a server nobody listens on
    pytest.param(
        [
            *("run", "--space", "good.yaml", "--storage", "postgresql+psycopg://dse@127.0.0.1:9/d"),
            *("--db-outage-limit", "0"),  # no wait for the server (the outage tests wait)
        ],
        "cannot open the database: connection failed: connection to server",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("psycopg") is None, reason="psycopg not installed"
        ),
        id="unreachable-postgresql",
    ),
    # dataset files, through `dse train` and `dse run` (checked before anything is written)
    *[
        case
        for kind, message in (
            ("truncated", "IDX file truncated: header says (200, 28, 28) (156800 bytes)"),
            ("magic", "not an IDX file: bad magic number 0x12340801"),
            ("count", "200 images but"),
            ("corrupt", "train-images-idx3-ubyte.gz: cannot read: "),
            ("folder", "train-images-idx3-ubyte.gz: a directory, not a file"),
            ("notgzip", "gz: not gzip-compressed, though named .gz; it is uncompressed: name it"),
        )
        for case in (
            (
                [
                    "train",
                    "-p",
                    "baseline",
                    "-s",
                    "dataset.val_size=100",
                    "--data-dir",
                    f"bad/{kind}",
                ],
                message,
            ),
            (["run", "--space", "good.yaml", "--data-dir", f"bad/{kind}"], message),
        )
    ],
    (
        ["train", "-p", "baseline", "-s", "dataset.name=smallnorb", "--data-dir", "bad/norb"],
        "not a smallNORB file: 0 dimensions",
    ),
    (["run", "--space", "nodata.yaml", "--data-dir", "bad/norb"], "not a smallNORB file: 0 dim"),
    (["train", "--preset", "baseline", "--data-dir", "no/such/dir"], "--data-dir no/such/dir"),
    # checkpoints
    *[
        (["evaluate", "--checkpoint", f"ckpt/{name}.pt"], f"ckpt/{name}.pt: {message}")
        for name, message in (
            ("truncated", "not a dse checkpoint"),
            ("foreign", "not a dse checkpoint"),
            ("evil", "not a dse checkpoint"),
            ("plain", "not a dse checkpoint (no 'dse-checkpoint-1' format tag)"),
            ("text", "not a dse checkpoint"),
            ("missing", "no such checkpoint file"),
        )
    ],
    (["inspect", "--checkpoint", "ckpt/truncated.pt"], "ckpt/truncated.pt: not a dse checkpoint"),
]


def _tree(root: Path) -> dict[str, tuple[bool, int, int]]:
    """Every path under root with (is a folder, size, mtime in ns)."""
    return {
        str(p.relative_to(root)): (p.is_dir(), p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
    }


def _case_id(case) -> str:
    return case.id if hasattr(case, "id") and case.id else " ".join(case[0])


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize(("args", "message"), CASES, ids=[_case_id(c) for c in CASES])
def test_user_error_exits_2_with_one_line_and_writes_nothing(workdir, args, message):
    before = _tree(workdir)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr and not result.stdout.strip()
    assert _tree(workdir) == before


@pytest.fixture(scope="module")
def finished_results(tmp_path_factory, digits_root) -> Path:
    """results/ of a finished run of good.yaml, trained once for the tests that read it."""
    folder = tmp_path_factory.mktemp("finished")
    (folder / "good.yaml").write_text(GOOD_SPACE)
    with pytest.MonkeyPatch.context() as patch:  # as workdir and conftest's _offline set them
        patch.chdir(folder)
        patch.setenv("DSE_DATA_DIR", str(digits_root))
        patch.setenv("DSE_OFFLINE", "1")
        patch.setenv("DSE_CACHE_DIR", str(folder / "cache"))
        result = runner.invoke(app, ["run", "--space", "good.yaml", "--quiet"])
    assert result.exit_code == 0, result.stderr
    return folder / "results"


@pytest.fixture
def finished_study(workdir, finished_results):
    """workdir with a copy of the finished run's results/: a test may change its own."""
    shutil.copytree(finished_results, workdir / "results")
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
