"""`dse report accuracy`: test accuracy per dataset, CapsNet next to the CNN baseline.

Like the profiling study's three-benchmark figure. Sources: checkpoints (their recorded test
accuracy) and studies (per dataset and model, the trial with the best validation accuracy
among those that meet the study's constraints: selection never looks at the test set).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go

from dse.errors import ConfigError, StorageError
from dse.report.front import missed_constraints
from dse.report.pages import write_page
from dse.search.records import TrialRecord
from dse.search.results import open_view
from dse.train.checkpoint import load_checkpoint


@dataclass
class AccuracyRow:
    dataset: str
    model: str
    test_accuracy: float
    val_accuracy: float
    source: str


def from_checkpoint(path: str) -> AccuracyRow:
    loaded = load_checkpoint(path)
    return AccuracyRow(
        dataset=loaded.config.dataset.name,
        model=loaded.config.model.name,
        test_accuracy=_recorded(path, loaded.result, "test_accuracy"),
        val_accuracy=_recorded(path, loaded.result, "val_accuracy"),
        source=Path(path).name,
    )


def _recorded(path: str, result: object, key: str) -> float:
    """The checkpoint's recorded accuracy `key`: a number, or a ConfigError naming the file."""
    value = result.get(key) if isinstance(result, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        what = key.replace("_", " ")
        found = "" if value is None else f" (found {value!r})"
        raise ConfigError(f"{path}: the checkpoint has no recorded {what}{found}")
    return float(value)


def from_study(storage: str, study: str | None) -> list[AccuracyRow]:
    """Per dataset and model, the feasible complete trial with the best validation accuracy
    (the study's constraints say which trials count, as for its front). A study without one,
    or one not made by dse (no recorded config), is refused."""
    view = open_view(storage, study)
    name = view.study.study_name
    if not view.complete():
        raise StorageError(f"study {name!r} has no complete trial to report")
    feasible = view.feasible()
    if not feasible:
        missed = " and ".join(missed_constraints(view))
        raise StorageError(f"study {name!r} has no complete trial that meets {missed} to report")
    best: dict[tuple[str, str], AccuracyRow] = {}
    for trial in feasible:
        record = TrialRecord(trial)
        config, metrics = record.trial_config(), record.metrics
        if config is None or "test_accuracy" not in metrics:
            raise StorageError(
                f"study {name!r} was not made by dse: trial {trial.number} has no recorded "
                "config or accuracy"
            )
        key = (config.dataset.name, config.model.name)
        row = AccuracyRow(
            key[0],
            key[1],
            metrics["test_accuracy"],
            metrics["val_accuracy"],
            f"{view.study.study_name}#{trial.number}",
        )
        if key not in best or row.val_accuracy > best[key].val_accuracy:
            best[key] = row
    return list(best.values())


def accuracy_figure(rows: list[AccuracyRow]) -> go.Figure:
    datasets = sorted({r.dataset for r in rows})
    fig = go.Figure()
    for model in sorted({r.model for r in rows}):
        by_dataset = {r.dataset: r for r in rows if r.model == model}
        fig.add_trace(
            go.Bar(
                name=model,
                x=datasets,
                y=[by_dataset[d].test_accuracy if d in by_dataset else None for d in datasets],
                text=[
                    f"{by_dataset[d].test_accuracy:.2%}" if d in by_dataset else ""
                    for d in datasets
                ],
                hovertext=[by_dataset[d].source if d in by_dataset else "" for d in datasets],
            )
        )
    fig.update_layout(
        barmode="group",
        template="plotly_white",
        yaxis_title="test accuracy",
        title="Test accuracy by dataset: CapsNet and the CNN baseline",
    )
    return fig


def write_accuracy_report(rows: list[AccuracyRow], out_dir: Path) -> Path:
    return write_page(accuracy_figure(rows), out_dir / "accuracy.html")
