"""dse trials' table (dse/search/trials_table.py): its columns and their types."""

from __future__ import annotations

import optuna
import pandas as pd

from dse.search.results import StudyView, pareto_rows
from dse.search.trials_table import trials_frame
from tests.conftest import params_study


def test_only_a_complete_trial_is_judged_feasible():
    # a trial stopped early (or failed) has no constraint values: it read as feasible, True,
    # beside its own val_accuracy 0.075 under `val_accuracy >= 0.3`
    view = params_study()
    view.study.add_trial(
        optuna.create_trial(state=optuna.trial.TrialState.PRUNED, intermediate_values={1: 0.1})
    )
    view.study.add_trial(optuna.create_trial(state=optuna.trial.TrialState.FAIL))
    frame = trials_frame(view)
    assert [None if pd.isna(v) else v for v in frame["feasible"]] == [True, True, False, None, None]


def test_a_whole_float_reads_as_a_float_in_the_trials_as_in_the_front():
    # pandas' convert_dtypes made a column of whole floats ints: `dse trials` showed a weight
    # decay of 1.0 and an std of 0.0 as 1 and 0, where `dse pareto` shows 1.0 and 0.0
    study = optuna.create_study(directions=["minimize", "maximize"])
    study.set_metric_names(["train_time_s", "val_accuracy"])
    decay = optuna.distributions.FloatDistribution(0.0, 1.0)
    per_seed = [{"seed": s, "train_time_s": 1.0 + s, "val_accuracy": 0.9} for s in range(2)]
    std = {"train_time_s": 0.7, "val_accuracy": 0.0}
    for number, weight_decay in enumerate([0.0, 1.0]):
        study.add_trial(
            optuna.create_trial(
                values=[1.0 + number, 0.9 + number / 10],
                params={"optimizer.weight_decay": weight_decay},
                distributions={"optimizer.weight_decay": decay},
                user_attrs={"per_seed": per_seed, "seed_std": std},
            )
        )
    study.add_trial(optuna.create_trial(state=optuna.trial.TrialState.FAIL))
    view = StudyView(study)
    lines = trials_frame(view).to_csv(index=False).splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
    assert [row["params_optimizer.weight_decay"] for row in rows] == ["0.0", "1.0", ""]
    assert [row["val_accuracy_std"] for row in rows] == ["0.0", "0.0", ""]
    assert [row["number"] for row in rows] == ["0", "1", "2"]  # ints stay ints beside a gap
    front = pareto_rows(view)
    assert [(r["params"]["optimizer.weight_decay"], r["val_accuracy_std"]) for r in front] == [
        (0.0, 0.0),
        (1.0, 0.0),
    ]
