"""A trial's stored record: what TrialRecord writes is what it reads back, under the stored
format's names (studies written before must keep opening), and how trials are counted."""

from __future__ import annotations

from dataclasses import asdict, replace

import optuna
from optuna.trial import TrialState

from dse.search.records import Decision, EpochPoint, Placement, StudyRecord, TrialRecord
from tests.search.test_messages import RESULT

PLACED = Placement("cpu#1", "cpu", "host-a")


def _study() -> optuna.Study:
    return optuna.create_study(directions=["minimize", "maximize"])


def _frozen(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    return next(t for t in study.get_trials() if t.number == number)


def test_a_finished_run_reads_back_under_the_stored_names():
    study = _study()
    trial = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2)})
    record = TrialRecord(trial)
    record.start({"seed": 3}, PLACED)
    record.set_curve([EpochPoint(1, 32, 1.25, 1.25, 0.5)])
    record.add_decision(Decision(1, (2.5, 0.5), True, 1, 3, 2))
    metrics = record.finish(RESULT, wall_s=4.0, placement=Placement("cpu#1", "cpu"))
    study.tell(trial, [metrics["train_time_s"], metrics["val_accuracy"]])

    stored = _frozen(study, 0).user_attrs
    assert set(stored) == {
        "config", "slot", "device", "host", "curve", "rungs", "metrics", "history", "environment",
        "resume_key", "runner_process",
    }  # fmt: skip
    assert stored["environment"] == {"torch": "x", "wall_s": 4.0, "slot": "cpu#1", "device": "cpu"}
    assert stored["rungs"] == {
        "1": {"values": [2.5, 0.5], "proceed": True, "position": 1, "of": 3, "cutoff": 2}
    }
    read = TrialRecord(_frozen(study, 0))
    assert read.metrics == RESULT.metrics() and read.history == RESULT.history
    assert read.curve == [EpochPoint(1, 32, 1.25, 1.25, 0.5)]
    assert read.decision(1) == Decision(1, (2.5, 0.5), True, 1, 3, 2) and read.decision(3) is None
    assert (read.slot, read.device, read.host, read.wall_s) == ("cpu#1", "cpu", "host-a", 4.0)
    assert read.is_final() and not read.is_pending() and read.train_seconds() == 1.5


def test_repeats_and_a_dask_placement_are_stored_too():
    study = _study()
    trial = study.ask()
    seeds = replace(RESULT, per_seed=[{"seed": 0}, {"seed": 1}], seed_std={"val_accuracy": 0.1})
    dask = Placement("tcp://10.0.0.1:1", "cuda:0", "gpu-host", "w-3")
    TrialRecord(trial).finish(seeds, wall_s=2.0, placement=dask)
    read = TrialRecord(_frozen(study, 0))
    assert read.per_seed == [{"seed": 0}, {"seed": 1}] and read.seed_std == {"val_accuracy": 0.1}
    assert (read.slot, read.device, read.host) == ("tcp://10.0.0.1:1", "cuda:0", "gpu-host")
    assert _frozen(study, 0).user_attrs["dask_worker"] == "w-3"


def test_the_training_seconds_of_repeats_count_every_seed_and_a_fused_group_once():
    study = _study()
    alone, fused = study.ask(), study.ask()
    seeds = [{"seed": 0, "train_time_s": 2.0}, {"seed": 1, "train_time_s": 4.0}]
    TrialRecord(alone).finish(replace(RESULT, train_time_s=3.0, per_seed=seeds), 1.0, PLACED)
    group = [{**seed, "train_time_s": 5.0, "fused": True} for seed in ({"seed": 2}, {"seed": 3})]
    fused_seeds = [{**seeds[0], "fused": False}, *group]
    TrialRecord(fused).finish(replace(RESULT, train_time_s=2.0, per_seed=fused_seeds), 1.0, PLACED)
    assert TrialRecord(_frozen(study, 0)).train_seconds() == 6.0  # not the mean, 3.0
    assert TrialRecord(_frozen(study, 1)).train_seconds() == 7.0  # the first seed, the group once


def test_how_failures_retries_and_withdrawals_count():
    study = _study()
    failed = study.ask({"x": optuna.distributions.IntDistribution(0, 9)})
    invalid, withdrawn = study.ask(), study.ask()
    TrialRecord(invalid).mark_invalid("ConfigError: no")
    TrialRecord(withdrawn).mark_withdrawn()
    for trial in (invalid, withdrawn):
        study.tell(trial, state=TrialState.FAIL)
    TrialRecord(failed).fail("out of memory: simulated")
    TrialRecord(failed).mark_retried()
    study.tell(failed, state=TrialState.FAIL)
    TrialRecord(failed).enqueue_retry(study, origin=0, reason="out of memory", half_batch=True)

    first, retry = TrialRecord(_frozen(study, 0)), TrialRecord(_frozen(study, 3))
    assert not first.is_final() and first.error == "out of memory: simulated"  # its retry counts
    assert retry.is_pending() and retry.half_batch and retry.retry_of == 0
    assert retry.point_key() == first.point_key()  # the same point, before it runs
    assert _frozen(study, 3).user_attrs["retry_reason"] == "out of memory"
    assert not any(TrialRecord(_frozen(study, n)).is_final() for n in (1, 2))
    assert not TrialRecord(_frozen(study, 2)).is_pending()


def test_a_retry_starts_without_its_failed_runs_curve_and_decisions():
    study = _study()
    trial = study.ask()
    record = TrialRecord(trial)
    record.set_curve([EpochPoint(1, 32, 1.0, 1.0, 0.5)])
    record.add_decision(Decision(1, (1.0, 0.5), False, 3, 3, 2))
    record.start({"seed": 0}, PLACED)
    assert record.curve == [] and record.decisions() == []


def test_a_retry_that_completes_has_no_error():
    """A stale trial's retry starts with its attributes (optuna copies them), the error too:
    a trial that did not fail says no error."""
    study = _study()
    trial = study.ask()
    trial.set_user_attr("error", "stale: no heartbeat for 12 s")
    assert TrialRecord(_frozen(study, 0)).error is None  # running
    study.tell(trial, [1.0, 0.5])
    assert TrialRecord(_frozen(study, 0)).error is None


def test_a_retry_of_the_same_config_resumes_its_failed_runs_checkpoint():
    study = _study()
    first = study.ask({"x": optuna.distributions.IntDistribution(0, 9)})
    record = TrialRecord(first)
    assert record.start({"seed": 0}, PLACED) == "trial-0"  # its checkpoint's name
    record.set_curve([EpochPoint(1, 32, 1.0, 1.0, 0.5, at_s=4.0)])
    record.fail("worker died (exit code -9) on cpu#1")
    record.add_lost(2.5)  # ran 2.5 s past its last checkpoint
    record.mark_retried()
    study.tell(first, state=TrialState.FAIL)
    record.enqueue_retry(study, origin=0, reason="worker died")
    record.enqueue_retry(study, origin=0, reason="out of memory", half_batch=True)

    same, half = study.ask(), study.ask()  # the queued retries, in order
    assert TrialRecord(same).start({"seed": 0}, PLACED) == "trial-0"  # resumes its checkpoint
    assert TrialRecord(same).lost_train_s == 2.5 and not TrialRecord(same).half_batch
    assert TrialRecord(half).start({"seed": 0}, PLACED) == "trial-2"  # another config: afresh
    assert TrialRecord(half).lost_train_s == 0.0
    # the half-batch trial's worker dies: its retry runs the half batch again, and resumes
    TrialRecord(half).fail("worker died (exit code -9) on cpu#1")
    study.tell(half, state=TrialState.FAIL)
    TrialRecord(half).enqueue_retry(study, origin=0, reason="worker died")
    again = TrialRecord(study.ask())
    assert again.half_batch and again.start({"seed": 0}, PLACED) == "trial-2"
    resumed = replace(RESULT, resumed_from_epoch=1)
    TrialRecord(same).finish(resumed, wall_s=1.0, placement=None)
    study.tell(same, [1.0, 0.5])
    stored = TrialRecord(_frozen(study, 1))
    assert stored.resumed_from_epoch == 1 and stored.lost_train_s == 2.5
    assert "resumed_seed" not in _frozen(study, 1).user_attrs


def test_a_stale_trial_lost_the_time_since_its_last_reported_epoch():
    study = _study()
    trial = study.ask()
    record = TrialRecord(trial)
    record.start({"seed": 0}, PLACED)
    record.set_curve([EpochPoint(1, 32, 1.0, 1.0, 0.5, at_s=3.0)])
    record.went_stale(silent_s=12.0, ran_s=7.5, retried=True)
    assert record.lost_train_s == 4.5 and record.ran_s == 7.5


def test_a_studys_record():
    study = _study()
    record = StudyRecord(study)
    assert record.reference_point is None and record.calibration is None
    record.created({"name": "s", "reference_point": {"val_accuracy": 0.5}}, ["val_accuracy >= 0.1"])
    record.set_calibration({"device": "cpu"})
    record.set_early_stop((1, 3), 3.0)
    assert record.reference_point == {"val_accuracy": 0.5}
    assert record.calibration == {"device": "cpu"}
    assert study.user_attrs["early_stop"] == {"rule": "moasha", "rungs": [1, 3], "eta": 3.0}
    assert study.user_attrs["constraints"] == ["val_accuracy >= 0.1"]
    uid = record.uid()  # made once, then read back
    assert len(uid) == 8 and StudyRecord(study).uid() == uid


def test_compile_seconds_are_stored_with_each_epoch():
    """A compiled run's epochs say how long they compiled (left out of their epoch_time_s);
    an epoch recorded before compile_s existed reads 0."""
    study = _study()
    compiled, old = study.ask(), study.ask()
    epochs = [replace(RESULT.history[0], compile_s=6.5), replace(RESULT.history[0], epoch=2)]
    TrialRecord(compiled).finish(replace(RESULT, history=epochs), wall_s=9.0, placement=PLACED)
    TrialRecord(old).finish(RESULT, wall_s=2.0, placement=PLACED)
    old.set_user_attr("history", [{k: v for k, v in asdict(e).items() if k != "compile_s"}
                                  for e in RESULT.history])  # fmt: skip
    for trial in (compiled, old):
        study.tell(trial, [1.5, 0.5])
    assert [e.compile_s for e in TrialRecord(_frozen(study, 0)).history] == [6.5, 0.0]
    assert [e.compile_s for e in TrialRecord(_frozen(study, 1)).history] == [0.0]
