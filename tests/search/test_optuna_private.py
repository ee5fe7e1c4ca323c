"""dse's reach into optuna's private parts, checked against a real storage."""

from __future__ import annotations

import time

import optuna
from optuna.storages import RDBStorage, RetryFailedTrialCallback
from optuna.trial import TrialState

from dse.search.optuna_private import fail_as_stale, record_heartbeats, stale_trials


def test_fail_as_stale_fails_the_trials_given_and_no_other(tmp_path):
    """Two trials without a heartbeat past the grace period: failing the one the caller wrote
    its reason on leaves the other running (optuna's own check would fail both, the second with
    no reason), and the storage's stale callback queues the failed one's retry."""
    storage = RDBStorage(
        f"sqlite:///{tmp_path / 's.db'}",
        heartbeat_interval=1,
        grace_period=1,
        failed_trial_callback=RetryFailedTrialCallback(max_retry=1),
    )
    study = optuna.create_study(storage=storage)
    first, second = study.ask(), study.ask()
    record_heartbeats(study, [first, second])
    time.sleep(2.5)
    assert {trial.number for trial, _ in stale_trials(study)} == {0, 1}
    fail_as_stale(study, [first])
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {0: TrialState.FAIL, 1: TrialState.RUNNING, 2: TrialState.WAITING}
    fail_as_stale(study, [first])  # failed already: nothing more, no second retry
    assert len(study.get_trials()) == 3
