"""A results database that may go away and come back: every storage call rides out an outage.

`ResilientStorage` wraps optuna's RDB storage (and optuna's trial cache around it) and
delegates every method of optuna's storage and heartbeat interface through outage.Retrier: a
call that fails because the database cannot be reached is tried again, with backoff, until the
database answers or has been unreachable longer than the outage limit (`dse run
--db-outage-limit`); then the run ends with one line, and the same command resumes it.

A write whose connection dropped may have landed before the drop. Each storage call is one
transaction, so retrying is safe where applying it twice changes nothing: attributes, params,
intermediate values, heartbeats (upserts), and reads. The rest are made safe here:
- create_new_trial (ask, enqueue, a retry's queued copy): each new trial is created with a tag
  of its own (a system attribute, TrialRecord.creation_tag); after a failed attempt, the next
  one first looks for a trial with that tag, and returns it when the first attempt landed;
- set_trial_state_values to a finished state (tell; the stale check's FAIL): a retry that finds
  the trial finished takes it as its own write when state and values are the ones it asked for;
- set_trial_state_values to RUNNING (a queued trial popped): a retry that finds the trial taken
  takes it as its own when it is RUNNING with no heartbeat (a runner beats for a trial as soon
  as it pops it);
- create_new_study: a retry that finds the name taken returns that study.
Left as optuna does it: optuna's RDB storage retries a trial's creation itself (deadlocks)
within one call; should a first try land with its acknowledgement lost and a second try then
succeed, there are two trials (the second a queued copy, or a RUNNING trial that goes stale).

Heartbeats: when the database comes back, every running trial's last heartbeat is as old as
the outage. So a process that saw an outage runs no stale check until the grace period (plus
the longest backoff) has passed since the database came back: every runner sharing the study
has beaten for its trials by then. The stale check also fails orphans, RUNNING trials with no
heartbeat at all that started over a grace period ago (a runner that stopped between taking a
trial and its first heartbeat), so that they are queued again like stale trials.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Container, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import optuna
from optuna.exceptions import DuplicatedStudyError, UpdateFinishedTrialError
from optuna.storages import BaseStorage, RDBStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from dse.search import optuna_private
from dse.search.outage import DEFAULT_OUTAGE_LIMIT_S, MAX_BACKOFF_S, Retrier
from dse.search.records import TrialRecord

T = TypeVar("T")


class ResilientStorage(BaseStorage, optuna_private.HeartbeatRelay):
    """optuna's RDB storage (and its trial cache), every call retried through an outage."""

    def __init__(
        self, rdb: RDBStorage, limit_s: float = DEFAULT_OUTAGE_LIMIT_S, shown: str | None = None
    ):
        """`shown`: the URL as the user gave it, for the lines about the database (by default
        the one it was opened by)."""
        self.rdb = rdb
        self.inner = optuna_private.cached(rdb)
        grace = rdb.grace_period or 2 * (rdb.heartbeat_interval or 1)
        self.retrier = Retrier(shown or rdb.url, limit_s, grace_s=grace + MAX_BACKOFF_S)

    @property
    def url(self) -> str:
        return self.rdb.url

    def retrying(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) through an outage (for reads of the database beside optuna's API)."""
        return self.retrier.call(fn, *args)

    # -- studies --
    def create_new_study(
        self, directions: Sequence[StudyDirection], study_name: str | None = None
    ) -> int:
        failed: list[BaseException] = []
        try:
            return self.retrier.call(
                self.inner.create_new_study, directions, study_name, failed=failed
            )
        except DuplicatedStudyError:
            if not failed or study_name is None:
                raise
            return self.retrying(self.inner.get_study_id_from_name, study_name)  # it landed

    def delete_study(self, study_id: int) -> None:
        failed: list[BaseException] = []
        try:
            self.retrier.call(self.inner.delete_study, study_id, failed=failed)
        except KeyError:
            if not failed:
                raise

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self.retrying(self.inner.set_study_user_attr, study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self.retrying(self.inner.set_study_system_attr, study_id, key, value)

    def get_study_id_from_name(self, study_name: str) -> int:
        return self.retrying(self.inner.get_study_id_from_name, study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self.retrying(self.inner.get_study_name_from_id, study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self.retrying(self.inner.get_study_directions, study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self.retrying(self.inner.get_study_user_attrs, study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self.retrying(self.inner.get_study_system_attrs, study_id)

    def get_all_studies(self) -> list[Any]:  # optuna's FrozenStudy
        return self.retrying(self.inner.get_all_studies)

    # -- trials: writes --
    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        tag = uuid.uuid4().hex
        failed: list[BaseException] = []

        def attempt() -> int:
            if failed:  # the last attempt may have landed before its connection dropped
                landed = self._tagged_trial(study_id, tag)
                if landed is not None:
                    return landed
            return self.inner.create_new_trial(study_id, _tagged(template_trial, tag))

        return self.retrier.call(attempt, failed=failed)

    def _tagged_trial(self, study_id: int, tag: str) -> int | None:
        for trial in self.inner.get_all_trials(study_id, deepcopy=False):
            if TrialRecord(trial).creation_tag == tag:
                return optuna_private.trial_id(trial)
        return None

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        failed: list[BaseException] = []
        try:
            done = self.retrier.call(
                self.inner.set_trial_state_values, trial_id, state, values, failed=failed
            )
        except UpdateFinishedTrialError:
            if failed and self._finished_as(trial_id, state, values):
                return True  # the failed attempt landed
            raise
        if not done and failed and state == TrialState.RUNNING:
            return self._popped_here(trial_id)
        return done

    def _finished_as(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None
    ) -> bool:
        trial = self.retrying(self.rdb.get_trial, trial_id)
        same_values = values is None or list(trial.values or []) == [float(v) for v in values]
        return trial.state == state and same_values

    def _popped_here(self, trial_id: int) -> bool:
        """Whether a queued trial found taken was taken by the attempt that failed."""
        trial = self.retrying(self.rdb.get_trial, trial_id)
        if trial.state != TrialState.RUNNING:
            return False
        return not self.retrying(optuna_private.has_heartbeat, self.rdb, trial_id)

    def set_trial_param(
        self, trial_id: int, param_name: str, param_value_internal: float, distribution: Any
    ) -> None:
        self.retrying(
            self.inner.set_trial_param, trial_id, param_name, param_value_internal, distribution
        )

    def set_trial_intermediate_value(self, trial_id: int, step: int, value: float) -> None:
        self.retrying(self.inner.set_trial_intermediate_value, trial_id, step, value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.retrying(self.inner.set_trial_user_attr, trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.retrying(self.inner.set_trial_system_attr, trial_id, key, value)

    # -- trials: reads --
    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self.retrying(
            self.inner.get_trial_id_from_study_id_trial_number, study_id, trial_number
        )

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self.retrying(self.inner.get_trial, trial_id)

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        return self.retrying(self.inner.get_all_trials, study_id, deepcopy, states)

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        return self.retrying(self.inner.get_best_trial, study_id)

    def remove_session(self) -> None:
        self.inner.remove_session()

    # -- heartbeats (the rest of optuna's interface: optuna_private.HeartbeatRelay) --
    def stale_trial_ids(self, study_id: int) -> list[int]:
        """Trials to fail as stale: none while heartbeats may be as old as an outage; else
        optuna's (heartbeat older than the grace period) and the orphans."""
        if self.retrier.in_grace():
            return []
        stale = self.retrying(optuna_private.heartbeat_stale_ids, self.inner, study_id)
        grace = self.rdb.grace_period or 2 * (self.rdb.heartbeat_interval or 1)
        started_before = datetime.now() - timedelta(seconds=grace)
        orphans = self.retrying(optuna_private.orphan_ids, self.rdb, study_id, started_before)
        return sorted({*stale, *orphans})


def _tagged(template: FrozenTrial | None, tag: str) -> FrozenTrial:
    """A new trial's template (None: a RUNNING trial, as optuna's ask makes one), tagged."""
    if template is None:
        trial = optuna.trial.create_trial(state=TrialState.RUNNING)
    else:
        trial = copy.copy(template)  # the caller's template stays as it is
    TrialRecord(trial).tag_creation(tag)
    return trial


def watch_signals(storage: BaseStorage, stop: Any) -> None:
    """Stop waiting for the database when `stop` (signals.StopSignals) receives a signal."""
    if isinstance(storage, ResilientStorage):
        storage.retrier.stop = lambda: stop.received
