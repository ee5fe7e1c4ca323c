"""Figures across saved models and studies: capsule histograms, accuracy by dataset."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from dse.commands.paths import check_output_dir
from dse.output import Rows, Shown
from dse.search.storage import DEFAULT_STORAGE


def inspect(
    checkpoints: list[str], samples: int = 500, out: str = "results", data_dir: str | None = None
) -> Shown:
    """Histograms of capsule activations and poses per layer; sparsity and pose spread."""
    from dse.report.inspect import capture, summarize, write_inspect_report

    check_output_dir(out, "out")
    captured = [capture(path, samples, data_dir) for path in checkpoints]
    rows = [asdict(row) for capsules in captured for row in summarize(capsules)]
    page = write_inspect_report(captured, Path(out))
    return Shown(tables=[Rows(rows, "capsules per layer")], notes=[f"report: {page}"])


def accuracy_report(
    checkpoints: list[str] | None = None,
    storage: str | None = None,
    study: str | None = None,
    out: str = "results",
) -> Shown:
    """Test accuracy per dataset, CapsNet next to the CNN baseline (checkpoints and/or a study;
    neither given: the default database's study, as every reading command reads)."""
    from dse.report.accuracy import from_checkpoint, from_study, write_accuracy_report

    if not checkpoints and not storage:
        storage = DEFAULT_STORAGE
    check_output_dir(out, "out")
    rows = [from_checkpoint(path) for path in checkpoints or []]
    if storage:
        rows += from_study(storage, study)
    page = write_accuracy_report(rows, Path(out))
    return Shown(
        tables=[Rows([asdict(r) for r in rows], "test accuracy")], notes=[f"report: {page}"]
    )
