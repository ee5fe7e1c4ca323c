"""A storage that rides out outages: writes whose acknowledgement was lost land once, stale
checks wait for the heartbeats after an outage, orphans are retried. A real SQLite storage,
with the failures injected where the connection would drop."""

from __future__ import annotations

import time
import warnings
from datetime import datetime, timedelta

import optuna
import pytest
from optuna.trial import TrialState

from dse.search.optuna_private import pop_queued_trial, record_heartbeats, trial_id
from dse.search.resilient import ResilientStorage
from dse.search.storage import open_storage
from dse.search.study import fail_stale
from tests.search.test_outage import FakeTime, PgError, wrapped

pytestmark = pytest.mark.filterwarnings("ignore::dse.search.outage.DatabaseOutage")

DROPPED = PgError("server closed the connection unexpectedly", None)


@pytest.fixture
def storage(tmp_path) -> ResilientStorage:
    opened = open_storage(f"sqlite:///{tmp_path}/r.db", create=True)
    assert isinstance(opened, ResilientStorage)
    time = FakeTime()  # no real waiting
    opened.retrier.clock, opened.retrier.sleep = time.clock, time.sleep
    return opened


@pytest.fixture
def study(storage) -> optuna.Study:
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage")
    return optuna.create_study(storage=storage, study_name="s", directions=["minimize"])


def landing_then_dropped(monkeypatch, storage, name: str, times: int = 1) -> list[object]:
    """The wrapped storage's `name` does its write, then loses the connection (`times` times):
    the commit landed, its acknowledgement did not."""
    real = getattr(storage.inner, name)
    results: list[object] = []

    def write(*args, **kwargs):
        results.append(real(*args, **kwargs))
        if len(results) <= times:
            raise wrapped(DROPPED)
        return results[-1]

    monkeypatch.setattr(storage.inner, name, write)
    return results


def test_a_trial_whose_creation_was_not_acknowledged_is_created_once(monkeypatch, storage, study):
    landing_then_dropped(monkeypatch, storage, "create_new_trial")
    with pytest.warns(Warning, match="unreachable"):
        trial = study.ask()
    assert [t.number for t in study.get_trials()] == [0] and trial.number == 0
    trial.suggest_float("x", 0, 1)  # the cache knows the trial: it takes params
    study.tell(trial, 1.0)
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE]


def test_a_queued_point_whose_creation_was_not_acknowledged_is_queued_once(
    monkeypatch, storage, study
):
    landing_then_dropped(monkeypatch, storage, "create_new_trial", times=2)
    with pytest.warns(Warning, match="unreachable"):
        study.enqueue_trial({"x": 0.5}, user_attrs={"origin": "grid"})
    trials = study.get_trials()
    assert [(t.state, t.user_attrs) for t in trials] == [(TrialState.WAITING, {"origin": "grid"})]


def test_a_tell_whose_acknowledgement_was_lost_is_taken_as_done(monkeypatch, storage, study):
    trial = study.ask()
    landing_then_dropped(monkeypatch, storage, "set_trial_state_values")
    with pytest.warns(Warning, match="unreachable"):
        study.tell(trial, 2.0)  # the retry finds it finished with these values: its own
    assert [(t.state, t.values) for t in study.get_trials()] == [(TrialState.COMPLETE, [2.0])]


def test_a_tell_on_a_trial_finished_otherwise_still_raises(monkeypatch, storage, study):
    trial = study.ask()
    real = storage.inner.set_trial_state_values
    calls = []

    def failed_elsewhere_meanwhile(tid, state, values=None):
        calls.append(state)
        if len(calls) == 1:  # the write did not land; a stale check fails the trial meanwhile
            real(tid, TrialState.FAIL)
            raise wrapped(DROPPED)
        return real(tid, state, values)

    monkeypatch.setattr(storage.inner, "set_trial_state_values", failed_elsewhere_meanwhile)
    with pytest.warns(Warning), pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        study.tell(trial, 2.0)


def test_a_queued_trial_popped_without_acknowledgement_is_ours(monkeypatch, storage, study):
    study.enqueue_trial({"x": 0.5})
    landing_then_dropped(monkeypatch, storage, "set_trial_state_values")
    with pytest.warns(Warning, match="unreachable"):
        trial = pop_queued_trial(study)
    assert trial is not None and trial.number == 0
    assert [t.state for t in study.get_trials()] == [TrialState.RUNNING]


def test_a_queued_trial_another_runner_popped_meanwhile_is_not_ours(monkeypatch, storage, study):
    study.enqueue_trial({"x": 0.5})
    real = storage.inner.set_trial_state_values
    calls = []

    def taken_meanwhile(tid, state, values=None):
        calls.append(state)
        if len(calls) == 1:  # not landed; another runner pops the trial and beats for it
            real(tid, TrialState.RUNNING)
            storage.rdb.record_heartbeat(tid)
            raise wrapped(DROPPED)
        return real(tid, state, values)

    monkeypatch.setattr(storage.inner, "set_trial_state_values", taken_meanwhile)
    with pytest.warns(Warning, match="unreachable"):
        assert pop_queued_trial(study) is None


def test_an_orphan_is_failed_and_queued_again(storage, study):
    """A RUNNING trial that never had a heartbeat (its runner stopped between taking it and
    beating for it) is failed once a grace period old, and its point queued again."""
    template = optuna.trial.create_trial(state=TrialState.RUNNING)
    template.datetime_start = datetime.now() - timedelta(seconds=60)
    orphan = storage.create_new_trial(study._study_id, template)
    storage.set_trial_param(orphan, "x", 0.5, optuna.distributions.FloatDistribution(0, 1))
    young = study.ask()  # started now, no heartbeat yet: left alone
    beating = study.ask()
    record_heartbeats(study, [beating])
    fail_stale(study)
    trials = {t.number: t for t in study.get_trials()}
    assert trials[0].state == TrialState.FAIL
    assert trials[0].user_attrs["error"].startswith("stale: no heartbeat for 60 s")
    assert trials[young.number].state == TrialState.RUNNING
    assert trials[beating.number].state == TrialState.RUNNING
    retry = trials[max(trials)]
    assert retry.state == TrialState.WAITING and retry.params == {"x": 0.5}
    assert trial_id(trials[0]) == orphan


def test_no_stale_check_until_heartbeats_could_follow_an_outage(monkeypatch, storage, study):
    trial = study.ask()
    record_heartbeats(study, [trial])
    storage.rdb.grace_period = 1  # optuna's check would fail the trial a second from now
    call = storage.inner.get_all_trials
    failures = []

    def down_once(*args):
        if not failures:
            failures.append(1)
            raise wrapped(DROPPED)
        return call(*args)

    monkeypatch.setattr(storage.inner, "get_all_trials", down_once)
    with pytest.warns(Warning, match="back after"):
        study.get_trials()
    time.sleep(2.2)  # the heartbeat is now older than the grace period
    assert storage.stale_trial_ids(study._study_id) == []  # just back: no stale check
    storage.retrier.sleep(storage.retrier.grace_s)
    assert storage.stale_trial_ids(study._study_id) == [trial_id(trial)]
