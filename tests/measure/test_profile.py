from __future__ import annotations

import csv
import json

from typer.testing import CliRunner

from dse.measure.profile import profile_steps
from dse.presets import preset
from tests.conftest import each, invoke_json

runner = CliRunner()
TINY = [
    "model.conv_channels=8",
    "model.primary_types=2",
    "model.primary_dim=4",
    "model.class_dim=4",
]


def test_layer_view_sums_to_the_measured_step(tmp_path):
    import torch

    config = preset("baseline").with_overrides(TINY)
    result = profile_steps(
        config, torch.device("cpu"), batch=16, steps=2, warmup=1, out_dir=tmp_path
    )
    names = {row.name for row in result.layers}
    assert {
        "conv1",
        "primary_caps",
        "class_caps.u_hat",
        "class_caps.routing",
        "decoder",
        "optimizer",
    } <= names
    assert all(
        row.backward_ms > 0 for row in result.layers if row.name in ("conv1", "primary_caps")
    )
    assert 0.8 <= result.layer_sum_ms / result.step_ms <= 1.05
    assert abs(sum(row.share for row in result.ops) - 1.0) < 1e-6
    assert json.loads(result.trace.read_text())["traceEvents"]  # a valid Chrome trace
    header = next(csv.reader(result.ops_csv.open()))
    assert header == ["name", "calls", "self_ms", "total_ms", "self_bytes", "share"]


def test_a_bf16_config_profiles_the_autocast_step():
    """precision=bf16 profiles the step training runs: autocast's casts to bf16 are in it."""
    import torch

    def casts(precision: str) -> float:
        config = preset("baseline").with_overrides([*TINY, f"precision={precision}"])
        ops = profile_steps(config, torch.device("cpu"), batch=8, steps=1, warmup=1).ops
        return sum(row.calls for row in ops if row.name == "aten::_to_copy")

    assert casts("bf16") >= casts("fp32") + 5  # conv1, primary caps and decoder weights at least


def test_profile_cli_json_columns(tmp_path):
    args = ["profile", *each("--set", TINY), "--batch", "8", "--steps", "1", "--warmup", "1"]
    result, rows = invoke_json([*args, "--out", str(tmp_path)])
    assert rows and all(
        set(r) == {"name", "calls", "self_ms", "total_ms", "self_bytes", "share"} for r in rows
    )
    assert any("conv" in r["name"] for r in rows)
    assert "trace:" in result.stderr and (tmp_path / "trace-train.json").is_file()
    _, layers = invoke_json([*args, "--out", str(tmp_path), "--mode", "test", "--by", "layer"])
    assert all(r["backward_ms"] == 0 for r in layers)
