"""`dse reproduce`: the paper's table (FasTrCaps, SPEC "The anchor") next to a study's numbers.

Per preset: test accuracy, training time measured and as the paper computed it (epochs to
best validation accuracy x mean epoch time), both relative to the baseline preset, and the
parameter count; beside them the paper's own numbers for the same dataset. Several trials of
one preset (resumed or repeated studies) are averaged. Test accuracy appears here because
this is a report of finished configurations; selection (the front, picks) uses validation
accuracy only. The orderings section counts the pairs of presets whose order by time and by
accuracy agrees with the paper's.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from optuna.trial import TrialState

from dse.errors import ConfigError, option
from dse.report.front import plain
from dse.report.pareto_report import state_counts
from dse.search.records import TrialRecord
from dse.search.results import StudyView

ORDER = (
    "baseline",
    "warm_adabatch",
    "warm_restarts",
    "adabatch",
    "exp_decay",
    "one_cycle",
    "weight_sharing",
    "wab_ws",
)
LABELS = {
    "baseline": "Baseline",
    "warm_adabatch": "WarmAdaBatch",
    "warm_restarts": "WarmRestarts",
    "adabatch": "AdaBatch",
    "exp_decay": "ExpDecay",
    "one_cycle": "OneCycle",
    "weight_sharing": "WeightSharing",
    "wab_ws": "WAB+WS",
}


@dataclass(frozen=True)
class PaperRow:
    accuracy: float  # test accuracy, %
    time_s: float  # epochs to best x mean epoch time
    n_params: int


# SPEC.md, "The anchor: the paper's own numbers" (about 30 epochs on a GPU).
PAPER: dict[str, dict[str, PaperRow]] = {
    "mnist": {
        "baseline": PaperRow(99.366, 8700, 8_227_248),
        "warm_adabatch": PaperRow(99.454, 2400, 8_227_248),
        "warm_restarts": PaperRow(99.44, 3300, 8_227_248),
        "adabatch": PaperRow(99.41, 6032, 8_227_248),
        "exp_decay": PaperRow(99.404, 3600, 8_227_248),
        "one_cycle": PaperRow(99.384, 7200, 8_227_248),
        "weight_sharing": PaperRow(99.1, 8100, 6_719_920),
        "wab_ws": PaperRow(99.38, 7200, 6_719_920),
    },
    "fashion_mnist": {
        "baseline": PaperRow(90.99, 4930, 8_227_248),
        "warm_adabatch": PaperRow(91.47, 8370, 8_227_248),
        "warm_restarts": PaperRow(91.35, 4930, 8_227_248),
        "adabatch": PaperRow(91.27, 9450, 8_227_248),
        "exp_decay": PaperRow(91.65, 8120, 8_227_248),
        "one_cycle": PaperRow(91.73, 8100, 8_227_248),
        "weight_sharing": PaperRow(90.47, 5100, 6_719_920),
        "wab_ws": PaperRow(90.61, 6200, 6_719_920),
    },
}


@dataclass(frozen=True)
class Measured:
    trials: int
    dataset: str
    test_accuracy: float  # %
    val_accuracy: float  # %
    train_time_s: float
    paper_way_time_s: float  # best epoch x mean epoch time
    n_params: int


def measured_by_preset(view: StudyView, dataset: str | None = None) -> dict[str, Measured]:
    """The complete trials of each preset (the `preset` parameter), averaged; those of
    `dataset` only when given, which a study over several datasets needs."""
    groups: dict[str, list[Any]] = {}
    datasets = set()
    for trial in view.trials():
        name = trial.params.get("preset")
        if trial.state == TrialState.COMPLETE and name in LABELS:
            config = TrialRecord(trial).trial_config()
            datasets.add(config.dataset.name if config else "?")
            if dataset is None or (config and config.dataset.name == dataset):
                groups.setdefault(name, []).append(trial)
    if dataset is None and len(datasets) > 1:  # averaged together, beside one column of the paper
        raise ConfigError(
            f"study {view.study.study_name}: its trials ran on {', '.join(sorted(datasets))}; "
            f"the paper's table is one dataset's: choose one with {option('dataset')}"
        )
    measured = {}
    for name, trials in groups.items():
        records = [TrialRecord(t) for t in trials]
        metrics = [r.metrics for r in records]
        paper_way = []
        for r in records:
            history = r.history
            accuracy = [epoch.val_accuracy for epoch in history]
            best_epoch = int(np.argmax(accuracy)) + 1  # the first epoch of the best accuracy
            epoch_times = [epoch.epoch_time_s for epoch in history]
            paper_way.append(best_epoch * float(np.mean(epoch_times)))
        config = records[0].trial_config()
        measured[name] = Measured(
            trials=len(trials),
            dataset=config.dataset.name if config else "?",
            test_accuracy=100 * float(np.mean([m["test_accuracy"] for m in metrics])),
            val_accuracy=100 * float(np.mean([m["val_accuracy"] for m in metrics])),
            train_time_s=float(np.mean([m["train_time_s"] for m in metrics])),
            paper_way_time_s=float(np.mean(paper_way)),
            n_params=int(metrics[0]["n_params"]),
        )
    return measured


def left_out(view: StudyView, measured: dict[str, Measured], dataset: str | None) -> list[str]:
    """`AdaBatch: no complete trial (1 failed)`: each preset the study tried that the table
    has no row for, in the paper's order, with what became of its trials."""
    states: dict[str, list[TrialState]] = {}
    for trial in view.trials():
        name = trial.params.get("preset")
        config = TrialRecord(trial).trial_config()
        of_dataset = dataset is None or (config is not None and config.dataset.name == dataset)
        if name in LABELS and name not in measured and of_dataset:
            states.setdefault(name, []).append(trial.state)
    lines = []
    for name in (n for n in ORDER if n in states):
        held = state_counts(states[name], complete="complete with a non-finite value")
        lines.append(f"{LABELS[name]}: no complete trial ({held})")
    return lines


def _reduction(time_s: float, baseline_s: float) -> float:
    return 100 * (1 - time_s / baseline_s)


def report_rows(measured: dict[str, Measured]) -> list[dict[str, Any]]:
    """One row per preset, in the paper's order: ours, then the paper's, relative to baseline.
    Every number in full (JSON and CSV carry them so); `shown_rows` rounds them for reading."""
    base = measured.get("baseline")
    dataset = next(iter(measured.values())).dataset if measured else "mnist"
    paper = PAPER.get(dataset, {})
    rows = []
    for name in ORDER:
        if name not in measured:
            continue
        m, p = measured[name], paper.get(name)
        row: dict[str, Any] = {
            "config": LABELS[name],
            "trials": m.trials,
            "test_acc_%": m.test_accuracy,
            "acc_change_pts": m.test_accuracy - base.test_accuracy if base else None,
            "time_s": m.train_time_s,
            "time_reduction_%": _reduction(m.train_time_s, base.train_time_s) if base else None,
            "paper_way_time_s": m.paper_way_time_s,
            "paper_way_reduction_%": _reduction(m.paper_way_time_s, base.paper_way_time_s)
            if base
            else None,
            "n_params": m.n_params,
            "paper_acc_%": p.accuracy if p else None,
            # the paper gives 3 decimals: this is their difference exactly, less float noise
            "paper_acc_change_pts": round(p.accuracy - paper["baseline"].accuracy, 3)
            if p
            else None,
            "paper_time_s": p.time_s if p else None,
            "paper_time_reduction_%": _reduction(p.time_s, paper["baseline"].time_s) if p else None,
            "paper_n_params": p.n_params if p else None,
        }
        rows.append(row)
    return rows


# Decimals each column is read with (the table, the page, the orderings).
SHOWN_DECIMALS = {
    "test_acc_%": 2,
    "acc_change_pts": 2,
    "time_s": 1,
    "time_reduction_%": 1,
    "paper_way_time_s": 1,
    "paper_way_reduction_%": 1,
    "paper_time_reduction_%": 1,
}


def shown_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of `report_rows` rounded as the table shows them."""
    return [
        {
            key: round(value, SHOWN_DECIMALS[key])
            if key in SHOWN_DECIMALS and value is not None
            else value
            for key, value in row.items()
        }
        for row in rows
    ]


@dataclass(frozen=True)
class Ordering:
    measure: str
    agree: int
    pairs: int
    disagreements: list[str]


def orderings(rows: list[dict[str, Any]]) -> list[Ordering]:
    """For time (ours measured, ours the paper's way) and accuracy: pairs ordered as the paper's.
    Ours are compared as the table shows them: a difference below its decimals is no order."""
    result = []
    rows = shown_rows(rows)
    measures = (
        ("time (measured)", "time_s", "paper_time_s"),
        ("time (paper's way)", "paper_way_time_s", "paper_time_s"),
        ("test accuracy", "test_acc_%", "paper_acc_%"),
    )
    usable = [r for r in rows if r["paper_acc_%"] is not None]
    for label, ours, theirs in measures:
        agree, pairs, differ = 0, 0, []
        for a, b in combinations(usable, 2):
            if a[theirs] == b[theirs]:
                continue  # the paper ties them: no order to reproduce
            # A tie of ours does not reproduce the paper's order, whichever way round it is.
            pairs += 1
            if a[ours] != b[ours] and (a[ours] < b[ours]) == (a[theirs] < b[theirs]):
                agree += 1
            else:
                first, second = (a, b) if a[theirs] < b[theirs] else (b, a)
                differ.append(f"{first['config']} < {second['config']}")
        result.append(Ordering(label, agree, pairs, differ))
    return result


def markdown(rows: list[dict[str, Any]], study: str) -> str:
    from dse.output import markdown_table

    lines = [f"## {study}: the paper's table, reproduced", "", markdown_table(shown_rows(rows)), ""]
    if rows and rows[0]["paper_acc_%"] is None:
        lines.append("(the paper has no numbers for this dataset)")
        return "\n".join(lines)
    lines.append("Orderings (pairs of configurations in the paper's order / pairs):")
    for o in orderings(rows):
        shown = "; ".join(o.disagreements[:6]) + (" ..." if len(o.disagreements) > 6 else "")
        detail = f" - the paper has, but not here: {shown}" if o.disagreements else ""
        lines.append(f"- {o.measure}: {o.agree}/{o.pairs}{detail}")
    return "\n".join(lines)


def write_html(
    rows: list[dict[str, Any]], study: str, path: Path, missing: list[str] | None = None
) -> Path:
    """The table and a figure: time reduction and accuracy change, ours beside the paper's;
    `missing`: the lines about presets without a row (left_out), under the title."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from dse.report.pages import write_page

    rows = shown_rows(rows)
    names = [r["config"] for r in rows]
    fig = make_subplots(
        rows=3,
        cols=1,
        specs=[[{"type": "table"}], [{"type": "bar"}], [{"type": "bar"}]],
        row_heights=[0.4, 0.3, 0.3],
        subplot_titles=("", "training-time reduction vs baseline, %", "accuracy change, points"),
    )
    header = list(rows[0]) if rows else []
    fig.add_trace(
        go.Table(
            header={"values": header}, cells={"values": [[r[k] for r in rows] for k in header]}
        ),
        row=1,
        col=1,
    )
    for label, key, row in (
        ("measured", "time_reduction_%", 2),
        ("measured the paper's way", "paper_way_reduction_%", 2),
        ("paper", "paper_time_reduction_%", 2),
        ("measured", "acc_change_pts", 3),
        ("paper", "paper_acc_change_pts", 3),
    ):
        fig.add_trace(
            go.Bar(name=f"{label}", x=names, y=[r[key] for r in rows], legendgroup=str(row)),
            row=row,
            col=1,
        )
    title = f"{plain(study)}: FasTrCaps' table reproduced"
    if missing:
        title += f"<br><sup>{plain('; '.join(missing))}</sup>"
    fig.update_layout(title=title, height=1100, barmode="group")
    return write_page(fig, path)
