"""`dse inspect` on tiny checkpoints: the summary, and the page rendered by headless Chromium."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dse.cli import app
from dse.train.trainer import train
from tests.conftest import tiny_config
from tests.report.chromium import needs_chromium, rendered_dom

runner = CliRunner()


@pytest.fixture
def checkpoints(digits_root, tmp_path):
    train(tiny_config(), data_dir=digits_root, checkpoint=tmp_path / "a.pt")
    train(
        tiny_config("seed=1", "model.routing_iterations=1"),
        data_dir=digits_root,
        checkpoint=tmp_path / "b.pt",
    )
    cnn = tiny_config("model.name=cnn_baseline", "model.fc_units=16")
    train(cnn, data_dir=digits_root, checkpoint=tmp_path / "cnn.pt")
    return tmp_path


def _inspect(checkpoints, digits_root, *names):
    args = [
        "inspect",
        "--samples",
        "50",
        "--out",
        str(checkpoints / "out"),
        "--data-dir",
        str(digits_root),
        "--format",
        "json",
    ]
    for name in names:
        args += ["--checkpoint", str(checkpoints / name)]
    return runner.invoke(app, args)


def test_summary_per_checkpoint_and_layer(checkpoints, digits_root):
    result = _inspect(checkpoints, digits_root, "a.pt", "b.pt")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout.splitlines()[-1])
    assert [(r["checkpoint"], r["layer"]) for r in rows] == [
        ("a.pt", "primary"),
        ("a.pt", "class"),
        ("b.pt", "primary"),
        ("b.pt", "class"),
    ]
    for row in rows:
        assert (
            0 <= row["sparsity"] <= 1 and row["pose_std"] > 0 and row["pose_p1"] < row["pose_p99"]
        )
        assert (
            row["pose_p1"] >= -1 and row["pose_p99"] <= 1
        )  # squashed capsules stay in the unit ball


def test_a_cnn_checkpoint_is_refused(checkpoints, digits_root):
    result = _inspect(checkpoints, digits_root, "cnn.pt")
    assert result.exit_code == 2 and "inspect needs a CapsNet checkpoint" in result.stderr


@needs_chromium
def test_inspect_page_renders_in_headless_chromium(checkpoints, digits_root, tmp_path):
    assert _inspect(checkpoints, digits_root, "a.pt", "b.pt").exit_code == 0
    page = checkpoints / "out" / "inspect.html"
    dom = rendered_dom(page, tmp_path / "profile")
    assert 'class="plot-container plotly"' in dom
    assert dom.count("trace bars") >= 8  # 2 checkpoints x 2 layers x (activations, poses)
