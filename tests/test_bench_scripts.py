"""The bench/ scripts run end to end (tiny sizes) and write their markdown and JSON."""

import json
import subprocess
import sys
from pathlib import Path

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


def test_ceiling_reports_fp32_and_bf16(tmp_path):
    result = _run("bench/ceiling.py", "--seconds", "0.05", "--out", str(tmp_path))
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    assert [r["precision"] for r in rows] == ["fp32", "bf16"]
    assert rows[0]["gflops"] > 0 and rows[0]["native"] is True
    assert (tmp_path / "ceiling.md").read_text().count("\n") == 4
