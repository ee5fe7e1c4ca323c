"""optuna-dashboard (the `dashboard` extra) opens a dse results database: a real dse study,
served by the dashboard's WSGI app on a localhost port, read back over HTTP as its web page
reads it: the study with its directions and objective names, every trial's state, parameters
and values, and the Pareto front dse computes."""

from __future__ import annotations

import json
import os
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from typer.testing import CliRunner

from dse.cli import app
from dse.search.records import TrialRecord
from tests.conftest import load_study, write_space

try:
    import optuna_dashboard
except ImportError:  # the dev extra installs it: CI must have it
    if os.environ.get("CI"):
        raise
    pytest.skip(
        "optuna-dashboard is not installed (pip install -e '.[dashboard]')", allow_module_level=True
    )

runner = CliRunner()
STORAGE = "sqlite:///results/dse.db"


class _Quiet(WSGIRequestHandler):
    def log_message(self, format, *args):  # one line per request on stderr otherwise
        pass


@contextmanager
def serving(storage: str) -> Iterator[str]:
    """The dashboard over `storage` in a real HTTP server on a free localhost port, as
    `optuna-dashboard STORAGE` serves it; its base URL. Stopped on leaving."""
    server = make_server("127.0.0.1", 0, optuna_dashboard.wsgi(storage), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read().decode()


def test_the_dashboard_shows_a_dse_study(workdir):
    space = write_space(workdir)  # routing [1, 2] x lr [0.001, 0.003]: 4 tiny trials
    run = runner.invoke(app, ["run", "--space", str(space), "--gpus", "cpu", "--quiet"])
    assert run.exit_code == 0, run.stderr
    pareto = runner.invoke(app, ["pareto", "--storage", STORAGE, "--format", "json"])
    assert pareto.exit_code == 0, pareto.stderr
    front = sorted(row["number"] for row in json.loads(pareto.stdout))
    stored = load_study(STORAGE, "tiny").get_trials()
    assert len(stored) == 4

    with serving(STORAGE) as dashboard:
        status, _ = _get(f"{dashboard}/api/meta")
        assert status == 200
        studies = json.loads(_get(f"{dashboard}/api/studies")[1])["study_summaries"]
        assert [(s["study_name"], s["directions"]) for s in studies] == [
            ("tiny", ["minimize", "maximize"])
        ]
        study_id = studies[0]["study_id"]
        detail = json.loads(_get(f"{dashboard}/api/studies/{study_id}")[1])
        status, page = _get(f"{dashboard}/dashboard/studies/{study_id}")
        assert status == 200 and "<html" in page.lower()

    # the objectives by name, from optuna's own place (dse calls Study.set_metric_names)
    assert detail["objective_names"] == ["train_time_s", "val_accuracy"]
    shown = {t["number"]: t for t in detail["trials"]}
    assert sorted(shown) == [t.number for t in stored] == [0, 1, 2, 3]
    for trial in stored:
        seen = shown[trial.number]
        assert seen["state"] == "Complete"
        params = {p["name"]: p["param_external_value"] for p in seen["params"]}
        assert params == {name: str(value) for name, value in trial.params.items()}
        assert set(params) == {"model.routing_iterations", "optimizer.lr"}
        assert seen["values"] == pytest.approx(trial.values)
        metrics = TrialRecord(trial).metrics
        assert seen["values"] == pytest.approx([metrics["train_time_s"], metrics["val_accuracy"]])
    # no constraints in this space: the dashboard's Pareto front is dse's
    assert sorted(t["number"] for t in detail["best_trials"]) == front
