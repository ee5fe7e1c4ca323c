"""The HTML report opened in a real headless Chromium: the figure renders with its points."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from dse.report.pareto_report import write_report
from dse.search.pareto import hypervolume
from dse.search.results import (
    StudyView,
    hypervolume_history,
    hypervolume_summary,
    pareto_rows,
    reference_point,
)
from dse.search.storage import open_storage
from dse.search.study import create_study, make_sampler
from dse.space import parse_space
from tests.report.chromium import needs_chromium, rendered_dom

MM = ["minimize", "maximize"]


def _study(tmp_path, objectives=None, reference=None) -> StudyView:
    data = {"name": "demo", "axes": {"model.routing_iterations": [1, 2, 3]}}
    if objectives:
        data["objectives"] = objectives
    if reference:
        data["reference_point"] = reference
    space = parse_space(data, "demo.yaml")
    storage = open_storage(f"sqlite:///{tmp_path}/r.db", create=True)
    study = create_study(storage, "demo", space, make_sampler("random", 0))
    points = [
        (10, 0.90, 5),
        (12, 0.95, 4),
        (20, 0.97, 6),
        (15, 0.93, 3),
        (30, 0.96, 2),
        (11, 0.80, 1),
    ]
    for i, values in enumerate(points):
        study.add_trial(
            optuna.create_trial(
                values=list(values[: len(space.metric_names)]),
                params={"model.routing_iterations": 1 + i % 3},
                distributions={"model.routing_iterations": CategoricalDistribution([1, 2, 3])},
                user_attrs={
                    "device": "cpu",
                    "metrics": {"train_time_s": values[0], "val_accuracy": values[1]},
                },
            )
        )
    return StudyView(study)


def test_front_and_hypervolume(tmp_path):
    view = _study(tmp_path)
    assert [row["number"] for row in pareto_rows(view)] == [0, 1, 2]
    history = hypervolume_history(view)
    assert [p.number for p in history] == list(range(6))
    assert [p.finished for p in history] == list(range(1, 7))
    values = [p.hypervolume for p in history]
    assert values == sorted(values) and values[3] == values[2]  # dominated trials add nothing
    # compute spent: the training seconds of every trial so far
    assert [p.compute_s for p in history] == [10, 22, 42, 57, 87, 98]
    # derived reference: worst time 30 + 10% of 20, worst accuracy 0.80 - 10% of 0.17
    assert reference_point(view) == pytest.approx([32.0, 0.783])
    assert values[-1] == pytest.approx(
        hypervolume([(10, 0.9), (12, 0.95), (20, 0.97)], MM, [32.0, 0.783])
    )


def test_pruned_trials_add_compute_not_volume_and_a_given_reference_wins(tmp_path):
    view = _study(tmp_path, reference={"train_time_s": 40, "val_accuracy": 0.5})
    view.study.add_trial(
        optuna.create_trial(
            state=TrialState.PRUNED,
            params={"model.routing_iterations": 1},
            distributions={"model.routing_iterations": CategoricalDistribution([1, 2, 3])},
            user_attrs={"metrics": {"train_time_s": 1.5, "val_accuracy": 0.99}, "stopped_at": 1},
        )
    )
    assert reference_point(view) == [40, 0.5]
    history = hypervolume_history(view)
    assert history[-1].state == "PRUNED" and history[-1].compute_s == 99.5
    assert history[-1].hypervolume == history[-2].hypervolume  # never on the front
    summary = hypervolume_summary(view)
    assert summary.reference_from == "the space file" and summary.finished == 7
    assert summary.describe(view.metric_names).startswith(
        f"hypervolume {history[-1].hypervolume:.6g} (reference point train_time_s=40, "
        "val_accuracy=0.5: the space file); 7 trials finished, 100 training seconds"
    )
    assert 6 not in [row["number"] for row in pareto_rows(view)]


@needs_chromium
def test_report_renders_in_headless_chromium(tmp_path):
    files = write_report(_study(tmp_path), tmp_path / "report")
    assert files.html.is_file() and files.html.stat().st_size > 1_000_000  # plotly.js embedded
    dom = rendered_dom(files.html, tmp_path / "profile")
    assert 'class="plot-container plotly"' in dom  # plotly built the graph div
    assert dom.count('class="point"') >= 6  # every trial drawn as a marker
    assert "Pareto front" in dom and "Hypervolume over trials" in dom
    assert "against training seconds" in dom
    if files.png is not None:
        assert files.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_three_objectives_add_a_3d_view(tmp_path):
    view = _study(
        tmp_path, {"train_time_s": "minimize", "val_accuracy": "maximize", "params": "minimize"}
    )
    files = write_report(view, tmp_path / "r3", png=False)
    page = files.html.read_text()
    assert page.count('class="plotly-graph-div"') == 3 and "scatter3d" in page
    assert files.png is None and files.png_skipped == "not asked for"
