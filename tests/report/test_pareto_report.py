"""The HTML report opened in a real headless Chromium: the figure renders with its points."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from dse import commands
from dse.errors import ConfigError
from dse.report.front import pareto_figure, pareto_figure_3d, staircase
from dse.report.panels import curves_figure, hypervolume_figure, whole_step
from dse.report.pareto_report import write_report
from dse.search.pareto import hypervolume
from dse.search.records import EpochPoint, TrialRecord
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
from tests.report.chromium import needs_chromium, rendered_dom, rendered_figures, screenshot

MM = ["minimize", "maximize"]


def _study(tmp_path, objectives=None, reference=None, name="demo") -> StudyView:
    data = {"name": "demo", "axes": {"model.routing_iterations": [1, 2, 3]}}
    if objectives:
        data["objectives"] = objectives
    if reference:
        data["reference_point"] = reference
    space = parse_space(data, "demo.yaml")
    storage = open_storage(f"sqlite:///{tmp_path}/r.db", create=True)
    study = create_study(storage, name, space, make_sampler("random", 0))
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
    one = replace(summary, finished=1).describe(view.metric_names)
    assert "; 1 trial finished, 100 training seconds" in one  # not '1 trials'


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
    # the front, the 3-D view, what each choice buys, the hypervolume (no curves stored)
    assert page.count('class="plotly-graph-div"') == 4 and "scatter3d" in page
    assert "No front trial has a stored learning curve" in page
    assert files.png is None and files.png_skipped == "not asked for"
    # a PNG an earlier report left there would show an older study beside this page: removed
    stale = tmp_path / "r3" / files.html.name.replace(".html", ".png")
    stale.write_bytes(b"\x89PNG old")
    files = write_report(view, tmp_path / "r3", png=False)
    assert not stale.exists() and files.png is None
    assert files.png_skipped == f"not asked for; removed {stale.name}, an earlier report's"
    # the PNG is the first two objectives alone: a front member can look dominated there
    assert "the front is chosen on n_params too" in pareto_figure(view).layout.title.text
    assert "a diamond that another trial beats here does better in n_params" in page


def _constrained_study(tmp_path, excesses: list[float]) -> StudyView:
    """A study of val_accuracy >= 0.99 with one complete trial per excess (> 0: it fails)."""
    space = parse_space(
        {"name": "c", "axes": {"optimizer.lr": [0.1]}, "constraints": ["val_accuracy >= 0.99"]},
        "c.yaml",
    )
    storage = open_storage(f"sqlite:///{tmp_path}/c.db", create=True)
    study = create_study(storage, "c", space, make_sampler("random", 0))
    for i, excess in enumerate(excesses):
        values = [10.0 + i, 0.99 - excess]
        study.add_trial(
            optuna.create_trial(
                values=values,
                constraints={"val_accuracy >= 0.99": excess},
                user_attrs={"metrics": dict(zip(space.metric_names, values, strict=True))},
            )
        )
    return StudyView(study)


def test_a_study_whose_every_trial_misses_its_constraints_draws_them_and_says_why(tmp_path):
    # the PNG showed unlabelled crosses (plotly hides a lone trace's legend), the page the
    # staircase's caption and "a study from an earlier version" as why no curves were drawn
    view = _constrained_study(tmp_path, [0.5, 0.3])
    figure = pareto_figure(view, "optimizer.lr")  # no trial to colour: no colour named
    assert [trace.name for trace in figure.data] == ["infeasible", "Pareto front"]
    assert figure.layout.showlegend is True and figure.layout.legend.title.text is None
    assert figure.layout.title.text.endswith(
        "<sup>no front: no complete trial meets val_accuracy &gt;= 0.99</sup>"
    )
    view.study.add_trial(optuna.create_trial(state=TrialState.FAIL))
    page = write_report(view, tmp_path / "r", png=False).html.read_text()
    assert "No complete trial meets every constraint (val_accuracy &gt;= 0.99)" in page
    assert "No front, so no learning curves." in page
    assert (
        "shaded staircase" not in page
        and "3 trials (2 complete, 1 failed), 0 on the Pareto front" in page
    )


def test_one_trial_is_a_trial(tmp_path):
    page = write_report(_constrained_study(tmp_path, [-0.1]), tmp_path / "r", png=False)
    assert (
        "<p>1 trial (1 complete), 1 on the Pareto front.</p>" in page.html.read_text()
    )  # not '1 trials'


@pytest.mark.parametrize(
    ("states", "line"),
    [
        ((), "error: --plot: study 'demo' has no trials yet\n"),
        (
            (TrialState.FAIL, TrialState.PRUNED, TrialState.FAIL),
            "error: --plot: study 'demo' has no complete trial to draw "
            "(2 failed, 1 stopped early)\n",
        ),
    ],
)
def test_a_study_without_a_complete_trial_is_one_line_and_no_report(tmp_path, states, line):
    # it wrote a page and a PNG of empty axes
    from typer.testing import CliRunner

    from dse.cli import app

    space = parse_space({"name": "demo", "axes": {"optimizer.lr": [0.1]}}, "demo.yaml")
    url = f"sqlite:///{tmp_path}/r.db"
    study = create_study(open_storage(url, create=True), "demo", space, make_sampler("random", 0))
    for state in states:
        study.add_trial(optuna.create_trial(state=state))
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["pareto", "--storage", url, "--plot", "--out", str(out)])
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", line)
    assert not out.exists()
    with pytest.raises(ConfigError, match="no complete trial to draw|no trials yet"):
        write_report(StudyView(study), out)


# --- the report that explains the front -------------------------------------------------------

AXES = {
    "lr_policy.name": ["constant", "exp_decay", "warm_restarts"],
    "model.routing_iterations": [1, 3],
}


def _curved_study(url: str | None = None, n: int = 14) -> StudyView:
    """`n` trials over two axes, each with a learning curve written through TrialRecord, except
    trial 0 (the fastest, on the front): a trial from before curves were stored. In memory,
    or in the database at `url`."""
    space = parse_space({"name": "curves", "axes": AXES}, "curves.yaml")
    # trials asked and told by hand: a storage without the runner's heartbeat
    storage = optuna.storages.RDBStorage(url) if url else optuna.storages.InMemoryStorage()
    study = create_study(storage, "curves", space, make_sampler("random", 0))
    distributions = {k: CategoricalDistribution(v) for k, v in AXES.items()}
    for i in range(n):
        policy = AXES["lr_policy.name"][i % 3]
        routing = AXES["model.routing_iterations"][i // 3 % 2]
        study.enqueue_trial({"lr_policy.name": policy, "model.routing_iterations": routing})
        trial = study.ask(distributions)
        seconds = 10.0 + 3 * i + (25 if routing == 3 else 0)
        accuracy = 0.9 + 0.004 * (i % 5) + (0.03 if routing == 3 else 0) - 0.01 * (i % 3 == 0)
        epochs = 2 + i % 2
        curve = [
            EpochPoint(
                e, 64, seconds / epochs, seconds * e / epochs, accuracy - 0.02 * (epochs - e)
            )
            for e in range(1, epochs + 1)
        ]
        if i > 0:
            TrialRecord(trial).set_curve(curve)
        study.tell(trial, [seconds, accuracy])
    return StudyView(study)


def test_the_staircase_is_the_region_the_front_dominates_in_either_direction(tmp_path):
    view = _study(tmp_path)  # train_time_s minimized, val_accuracy maximized
    region = staircase(view, view.front())
    assert region.line.shape == "hv" and region.fill == "toself"
    ref_x, ref_y = reference_point(view)
    corners = list(zip(region.x, region.y, strict=True))
    assert corners == [
        (10, ref_y),
        (10, 0.9),
        (12, 0.95),
        (20, 0.97),
        (ref_x, 0.97),
        (ref_x, ref_y),
    ]
    both_max = _study(tmp_path / "max", {"val_accuracy": "maximize", "params": "maximize"})
    region = staircase(both_max, both_max.front())
    ref_x, ref_y = reference_point(both_max)
    assert ref_x == pytest.approx(8.0) and region.line.shape == "vh"
    assert list(zip(region.x, region.y, strict=True)) == [
        (ref_x, 0.97),
        (20, 0.97),
        (30, 0.96),
        (30, ref_y),
        (ref_x, ref_y),
    ]


def test_the_trials_are_coloured_by_the_axis_asked_for_or_the_one_that_explains_most(tmp_path):
    view = _curved_study()
    default = pareto_figure(view)  # routing adds 25 s: it explains most of train_time_s
    title = default.layout.title.text
    assert "coloured by model.routing_iterations (explains" in title
    assert "of train_time_s allowing for its 2 values, the most of any axis" in title
    names = [t.name for t in default.data]
    assert "model.routing_iterations = 1" in names and "model.routing_iterations = 3" in names
    chosen = pareto_figure(view, "lr_policy.name")
    assert "coloured by lr_policy.name (chosen)" in chosen.layout.title.text
    assert chosen.layout.legend.title.text == "colour: lr_policy.name"
    coloured = [t for t in chosen.data if t.name.startswith("lr_policy.name = ")]
    assert len({t.marker.color for t in coloured}) == len(coloured) >= 2
    with pytest.raises(ConfigError) as error:
        pareto_figure(view, "model.routing")
    assert str(error.value) == (
        "color_by 'model.routing': study 'curves' has no such axis "
        "(its axes: lr_policy.name, model.routing_iterations)"
    )
    assert "--color-by 'model.routing'" in error.value.cli_message()


def test_a_many_valued_numeric_axis_colours_on_a_scale(tmp_path):
    space = parse_space({"name": "lr", "axes": {"optimizer.lr": [0.1, 0.2]}}, "lr.yaml")
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/lr.db")
    study = create_study(storage, "lr", space, make_sampler("random", 0))
    distribution = FloatDistribution(1e-4, 1.0, log=True)
    for i in range(12):
        lr = 10 ** (-3 + i / 4)
        study.add_trial(
            optuna.create_trial(
                values=[10.0 + i, 0.9 + 0.005 * (i % 4)],
                params={"optimizer.lr": lr},
                distributions={"optimizer.lr": distribution},
            )
        )
    figure = pareto_figure(StudyView(study))
    (scaled,) = [t for t in figure.data if t.name == "optimizer.lr"]
    assert scaled.marker.colorscale and scaled.marker.colorbar.title.text == "optimizer.lr"
    assert len(scaled.marker.color) == len(scaled.x)


def test_the_command_takes_color_by_and_checks_it_before_writing(tmp_path):
    storage, out = f"sqlite:///{tmp_path}/c.db", tmp_path / "out"
    view = _curved_study(storage)
    with pytest.raises(ConfigError, match="color_by model.routing: it colours the report"):
        commands.pareto(storage, "curves", color_by="model.routing")
    with pytest.raises(ConfigError, match="its axes: lr_policy.name, model.routing_iterations"):
        commands.pareto(storage, "curves", plot=True, out=str(out), color_by="model.routing")
    assert not out.exists()
    shown = commands.pareto(storage, "curves", plot=True, out=str(out), color_by="lr_policy.name")
    assert f"report: {out / 'curves-pareto.html'}" in shown.notes
    assert len(view.front()) >= 3


def test_learning_curves_one_line_per_front_trial_that_has_one(tmp_path):
    view = _curved_study()
    front = view.front()
    assert front[0].number == 0  # the fastest, stored without a curve
    figure = curves_figure(view)
    with_curves = [t for t in front if TrialRecord(t).curve]
    assert len(figure.data) == 2 * len(with_curves) == 2 * (len(front) - 1)
    by_epoch = figure.data[0]
    assert list(by_epoch.x) == [p.epoch for p in TrialRecord(with_curves[0]).curve]
    assert f"{len(with_curves)} of {len(front)} front trials" in figure.layout.title.text
    assert curves_figure(_study(tmp_path / "old")) is None  # an old study: no curves at all


def test_the_hypervolume_axes_start_at_zero_and_count_whole_trials(tmp_path):
    figure = hypervolume_figure(_curved_study())
    layout = figure.layout
    assert layout.xaxis.dtick == 2 and layout.xaxis.tickformat == "d"  # 14 trials
    assert layout.xaxis.rangemode == layout.xaxis2.rangemode == "tozero"
    assert layout.yaxis.rangemode == layout.yaxis2.rangemode == "tozero"
    assert [whole_step(n) for n in (1, 10, 11, 25, 60, 150)] == [1, 1, 2, 5, 10, 20]


@needs_chromium
def test_the_report_explains_the_front_in_chromium_at_1400_px(tmp_path):
    view = _curved_study()
    front = view.front()
    files = write_report(view, tmp_path / "report", png=False)
    page = rendered_figures(files.html, tmp_path / "chromium", width=1400)
    assert page["width"] <= 1400 and all(g["drawn"] for g in page["graphs"])
    front_graph, effects_graph, curves_graph, volume_graph = page["graphs"]

    kinds = [f"{t['type']}:{t['mode']}:{t['shape']}" for t in front_graph["traces"]]
    assert kinds.count("scatter:lines:hv") == 1  # the staircase
    coloured = [
        t for t in front_graph["traces"] if t["name"].startswith("model.routing_iterations = ")
    ]
    assert len(coloured) == 2
    (members,) = [t for t in front_graph["traces"] if t["name"] == "Pareto front"]
    assert members["mode"] == "markers" and members["points"] == len(front)

    assert "mean difference vs the other trials, ±1 s.e." in effects_graph["title"]
    assert [(t["type"], t["error_x"]) for t in effects_graph["traces"]] == [("bar", True)] * 2
    assert effects_graph["traces"][0]["points"] == 5  # 3 policies + 2 routings
    assert effects_graph["subtitles"] == [
        "train_time_s: lower is better",
        "val_accuracy: higher is better",
    ]

    assert curves_graph["subtitles"] == ["by epoch", "by training seconds"]
    assert len(curves_graph["traces"]) == 2 * (len(front) - 1)  # trial 0 has no curve
    assert all(t["mode"] == "lines+markers" for t in curves_graph["traces"])

    assert volume_graph["title"].startswith("Hypervolume over trials")
    assert [t["points"] for t in volume_graph["traces"]] == [14, 14]

    png = screenshot(
        files.html, tmp_path / "report.png", tmp_path / "chromium", 1400, page["height"]
    )
    header = png.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(header[16:20], "big") == 1400  # the IHDR width


def test_a_study_name_with_a_slash_or_space_writes_inside_the_folder(tmp_path):
    """Study names are free text (`dse run --study`); the report's file is named safely and
    lands in the folder asked for, not in ../team a/."""
    view = _study(tmp_path, name="../team a/run 1")
    files = write_report(view, tmp_path / "out", png=False)
    assert files.html == tmp_path / "out" / ".._team_a_run_1-pareto.html"
    assert files.html.is_file()


def test_a_study_name_with_markup_is_shown_as_written_in_the_figures(tmp_path):
    """Plotly reads `<b>`, `<br>` in titles and hover labels as markup: a study named
    `<b>lr</b> <br>` showed as a bold `lr` on two lines."""
    view = _study(
        tmp_path,
        objectives={"train_time_s": "minimize", "val_accuracy": "maximize", "params": "minimize"},
        name="<b>lr</b> <br> & co",
    )
    for figure in (pareto_figure(view), pareto_figure_3d(view)):
        assert figure.layout.title.text.startswith("&lt;b&gt;lr&lt;/b&gt; &lt;br&gt; &amp; co: ")


def test_a_report_cut_short_leaves_the_previous_page_whole(tmp_path, monkeypatch):
    """The page was written in place: a full disk or Ctrl-C while writing left half a page
    where the last report was."""
    view = _study(tmp_path)
    files = write_report(view, tmp_path / "out", png=False)
    before = files.html.read_text()

    def half(self: Path, text: str, encoding: str | None = None) -> int:
        with open(self, "w", encoding=encoding) as f:
            f.write(text[:100])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", half)
    with pytest.raises(OSError):
        write_report(view, tmp_path / "out", png=False)
    assert files.html.read_text() == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [files.html.name]
