"""Files torch.save wrote: anything else, and weights that do not fit, are one plain line."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from dse.cli import app
from dse.errors import DataError
from dse.train.torch_files import load_weights, read_torch_file
from dse.train.trainer import train
from tests.conftest import tiny_config

runner = CliRunner()


def _damaged(tmp_path, kind: str):
    path = tmp_path / f"{kind}.pt"
    if kind == "folder":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("hello world\n")
    elif kind == "truncated":
        torch.save({"w": torch.zeros(1000)}, path)
        path.write_bytes(path.read_bytes()[:500])
    elif kind == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("a.txt", "hi")
    elif kind == "numpy":
        torch.save({"w": np.zeros(3)}, path)
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("folder", "is a directory, not a checkpoint file"),
        ("empty", "not a dse checkpoint (the file is empty)"),
        ("text", "not a dse checkpoint (not a file written by torch.save)"),
        ("truncated", "not a dse checkpoint (the file is cut short or damaged"),
        ("zip", "not a dse checkpoint (a zip archive that torch.save did not write, or one"),
        ("numpy", "not a dse checkpoint (holds Python objects (numpy."),
    ],
)
def test_what_is_not_a_torch_file_is_said_in_words(tmp_path, kind, message):
    path = _damaged(tmp_path, kind)
    with pytest.raises(DataError) as caught:
        read_torch_file(path)
    assert str(caught.value).startswith(f"{path}: {message}")
    assert "\n" not in str(caught.value) and "Weights only load" not in str(caught.value)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"weight": torch.zeros(3, 2)}, "bias is missing (1 tensors in all)"),
        ({"weight": torch.zeros(3, 2), "bias": torch.zeros(3), "x": torch.zeros(1)}, "x is not"),
        ({"weight": torch.zeros(4, 2), "bias": torch.zeros(3)}, "weight is [4, 2] in the file, "),
    ],
)
def test_weights_that_do_not_fit_name_the_tensor(tmp_path, weights, message):
    with pytest.raises(DataError, match=r"m\.pt: weights do not fit the config's model: ") as e:
        load_weights(nn.Linear(2, 3), weights, tmp_path / "m.pt")
    assert message in str(e.value)


def test_weights_that_are_not_finite_are_refused(tmp_path):
    weights = {"weight": torch.zeros(3, 2), "bias": torch.tensor([0.0, float("nan"), 0.0])}
    with pytest.raises(
        DataError, match=r"m\.pt: its weights hold NaN or infinite values \(bias\)$"
    ):
        load_weights(nn.Linear(2, 3), weights, tmp_path / "m.pt")


def test_weights_that_are_no_mapping_of_tensors_are_refused(tmp_path):
    for weights in ("nope", {"weight": 1}):
        with pytest.raises(DataError, match="its weights are not a mapping of names to tensors"):
            load_weights(nn.Linear(2, 3), weights, tmp_path / "m.pt")


def test_evaluate_a_checkpoint_edited_to_another_width(digits_root, tmp_path):
    path = tmp_path / "m.pt"
    train(tiny_config(), data_dir=digits_root, checkpoint=path)
    saved = torch.load(path, weights_only=True)
    saved["config"]["model"]["conv_channels"] = 8
    torch.save(saved, path)
    args = ["evaluate", "--checkpoint", str(path), "--data-dir", str(digits_root)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (
        f"error: {path}: weights do not fit the config's model: "
        "conv1.weight is [16, 1, 9, 9] in the file, [8, 1, 9, 9] in the model\n"
    )


def test_resume_from_a_checkpoint_edited_to_another_width(digits_root, tmp_path):
    folder = tmp_path / "ck"
    args = ["--data-dir", str(digits_root), "--checkpoint-dir", str(folder)]
    config = tiny_config("epochs=2").to_yaml()
    (tmp_path / "c.yaml").write_text(config)
    first = runner.invoke(
        app, ["train", "-c", str(tmp_path / "c.yaml"), *args, "--keep-checkpoints"]
    )
    assert first.exit_code == 0, first.stderr
    (path,) = folder.glob("*.pt")
    saved = torch.load(path, weights_only=True)
    saved["config"]["epochs"] = 3
    saved["config"]["model"]["conv_channels"] = 8
    torch.save(saved, path)
    before = path.read_bytes()
    result = runner.invoke(app, ["train", "--resume", str(path), "--data-dir", str(digits_root)])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(f"error: {path}: weights do not fit the config's model: ")
    assert result.stderr.count("\n") == 1 and path.read_bytes() == before


def test_a_device_file_is_not_a_missing_file():
    with pytest.raises(DataError, match=r"^/dev/null: not a regular file, not a checkpoint file$"):
        read_torch_file(Path("/dev/null"))
