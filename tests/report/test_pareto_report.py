"""The HTML report opened in a real headless Chromium: the figure renders with its points."""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution

from dse.report.pareto_report import write_report
from dse.search.results import StudyView, hypervolume_history, pareto_rows
from dse.search.study import create_study, make_sampler, open_storage
from dse.space import parse_space
from tests.report.chromium import needs_chromium, rendered_dom


def _study(tmp_path, objectives=None) -> StudyView:
    data = {"name": "demo", "axes": {"model.routing_iterations": [1, 2, 3]}}
    if objectives:
        data["objectives"] = objectives
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
    assert [n for n, _ in history] == list(range(6))
    values = [hv for _, hv in history]
    assert values == sorted(values) and values[3] == values[2]  # dominated trials add nothing


@needs_chromium
def test_report_renders_in_headless_chromium(tmp_path):
    files = write_report(_study(tmp_path), tmp_path / "report")
    assert files.html.is_file() and files.html.stat().st_size > 1_000_000  # plotly.js embedded
    dom = rendered_dom(files.html, tmp_path / "profile")
    assert 'class="plot-container plotly"' in dom  # plotly built the graph div
    assert dom.count('class="point"') >= 6  # every trial drawn as a marker
    assert "Pareto front" in dom and "Hypervolume over trials" in dom
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
