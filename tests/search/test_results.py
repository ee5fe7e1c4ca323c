"""Reading a study's results: the numbers dse pareto prints."""

from __future__ import annotations

import optuna

from dse.search.results import StudyView, pareto_rows


def _study_with_seeds(seed_std: dict[str, float]) -> StudyView:
    study = optuna.create_study(directions=["minimize", "maximize"])
    study.set_metric_names(["train_time_s", "val_accuracy"])
    per_seed = [{"seed": s, "train_time_s": 1.0, "val_accuracy": 0.9 + s / 100} for s in range(3)]
    for number in range(2):
        study.add_trial(
            optuna.create_trial(
                values=[1.0 + number, 0.91 + number / 10],
                user_attrs={"per_seed": per_seed, "seed_std": seed_std},
            )
        )
    return StudyView(study)


def test_a_std_the_seeds_do_not_give_is_none_not_zero():
    # fused seeds: the costs are the first seed's alone, so their std is not stored
    rows = pareto_rows(_study_with_seeds({"val_accuracy": 0.01}))
    assert [row["number"] for row in rows] == [0, 1]
    assert all(row["train_time_s_std"] is None for row in rows)
    assert all(row["val_accuracy_std"] == 0.01 for row in rows)
