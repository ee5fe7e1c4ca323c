"""The one place dse uses optuna's private API, and why.

The runner drives trials with ask/tell, and optuna starts heartbeats only inside
`Study.optimize`. So the runner records each live trial's heartbeat itself, which needs the
study's storage and the trial's storage id: optuna exposes neither publicly (`Study._storage`,
`Trial._trial_id`, `FrozenTrial._trial_id`). The trial id also tells trials running in this
process from trials of another runner sharing the study (numbers do, too, but a live `Trial`
and its frozen copy share only the id). If optuna renames these, only this file changes.

Popping a queued trial: `Study.ask()` pops a WAITING trial, or creates a new one when the queue
is empty. A runner that counted one queued trial left, while another runner popped it, would
then create a trial the budget has no room for (and withdraw it: a stray FAIL). So the runner
pops queued trials with the half of `ask()` that pops (`Study._pop_waiting_trial_id`), and
asks for a new trial only when the budget has room.

Stale trials: optuna's stale check (`fail_stale_trials`) fails a trial whose heartbeat stopped,
with no reason and with the time it was marked as its end. The runner first writes the reason
and how long the trial really ran, which needs the trials the check will fail
(`RDBStorage._get_stale_trial_ids`, under the study's `_CachedStorage._backend`) and their
last heartbeat (optuna's heartbeat table).

A storage that rides out database outages (resilient.ResilientStorage) wraps optuna's RDB
storage and its trial cache (`optuna.storages._CachedStorage`, which optuna puts around an
RDBStorage itself, but not around a wrapper). optuna's stale check and heartbeats need the
storage to be a `BaseHeartbeat` (a private class) with its private `_get_stale_trial_ids`:
`HeartbeatRelay` is that interface, relayed to the wrapped storage. The wrapper also asks
optuna's heartbeat table whether a trial has a heartbeat, and which running trials have none.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import optuna
import sqlalchemy
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial, TrialState


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The trial's id in the storage (unique across the studies of a storage)."""
    return trial._trial_id


def pop_queued_trial(study: optuna.Study) -> optuna.Trial | None:
    """A queued trial of the study, now RUNNING in this process; None if the queue is empty."""
    study._thread_local.cached_all_trials = None  # as ask() does: read the storage afresh
    trial_id = study._pop_waiting_trial_id()
    return None if trial_id is None else optuna.Trial(study, trial_id)


def record_heartbeats(study: optuna.Study, trials: list[optuna.Trial]) -> None:
    """Tell the storage these trials are alive; journal storages have no heartbeats."""
    storage = study._storage
    if not hasattr(storage, "record_heartbeat"):
        return
    for trial in trials:
        storage.record_heartbeat(trial._trial_id)


def has_heartbeats(study: optuna.Study) -> bool:
    """Whether the study's storage records heartbeats (a database does; a journal file not)."""
    storage = rdb_storage(study._storage)
    return storage is not None and storage.heartbeat_interval is not None


def writable_trial(study: optuna.Study, trial: FrozenTrial) -> optuna.Trial:
    """A trial another process started, to write to (as optuna's stale check does)."""
    return optuna.Trial(study, trial._trial_id)


def stale_trials(study: optuna.Study) -> list[tuple[optuna.Trial, float]]:
    """The running trials optuna's stale check would fail now, each with the seconds since
    its last heartbeat (by the database's clock, as optuna compares them); a trial that never
    had one (an orphan, resilient.py): the seconds since it started, by this host's clock."""
    top = study._storage
    storage = rdb_storage(top)
    if storage is None or storage.heartbeat_interval is None:
        return []
    ids = top._get_stale_trial_ids(study._study_id)  # a ResilientStorage's: orphans included
    if not ids:
        return []
    now, beats = _retrying(top)(_heartbeats, storage, ids)
    stale = []
    for i in ids:
        trial = optuna.Trial(study, i)
        if i in beats:
            stale.append((trial, (now - beats[i]).total_seconds()))
        elif trial.datetime_start is not None:
            stale.append((trial, (datetime.now() - trial.datetime_start).total_seconds()))
    return stale


def fail_as_stale(study: optuna.Study, trials: list[optuna.Trial]) -> None:
    """optuna's fail_stale_trials for these trials only: each failed, and the storage's stale
    callback (the retry) run for those this call failed. optuna's own asks the database again
    which trials are stale, so one that crossed the grace period since the caller's list was
    failed with no word of why."""
    storage = study._storage
    callback = storage.get_heartbeat_stale_trial_callback()
    for trial in trials:
        try:
            failed = storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another runner failed it first
        if failed and callback is not None:
            callback(study, copy.deepcopy(storage.get_trial(trial._trial_id)))


def _heartbeats(storage: RDBStorage, ids: list[int]) -> tuple[datetime, dict[int, datetime]]:
    """The database's time now, and the last heartbeat of each trial that has one."""
    from optuna.storages._rdb.models import TrialHeartbeatModel as Beat

    with storage.engine.connect() as connection:
        now = connection.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar()
        query = sqlalchemy.select(Beat.trial_id, Beat.heartbeat).where(Beat.trial_id.in_(ids))
        beats = dict(connection.execute(query).all())
    return now.replace(tzinfo=None), beats  # as optuna does: PostgreSQL's now() has a zone


def _retrying(storage: Any) -> Callable[..., Any]:
    """A ResilientStorage's way to run a read through an outage; else a plain call."""
    return getattr(storage, "retrying", lambda fn, *args: fn(*args))


def rdb_storage(storage: Any) -> RDBStorage | None:
    """The RDB storage under a study's storage (optuna's cache, a ResilientStorage), if any."""
    while not isinstance(storage, RDBStorage):
        storage = getattr(storage, "rdb", None) or getattr(storage, "_backend", None)
        if storage is None:
            return None
    return storage


# --- for resilient.ResilientStorage ---------------------------------------------------------


def cached(storage: RDBStorage) -> BaseStorage:
    """optuna's trial cache around an RDB storage (as `optuna.create_study` would put it)."""
    return optuna.storages._CachedStorage(storage)


class HeartbeatRelay(BaseHeartbeat):
    """optuna's heartbeat interface for a storage wrapping another: a subclass has `inner`
    (the wrapped storage), `retrying(fn, *args)` and `stale_trial_ids(study_id)`."""

    inner: Any
    retrying: Callable[..., Any]
    stale_trial_ids: Callable[[int], list[int]]

    def record_heartbeat(self, trial_id: int) -> None:
        self.retrying(self.inner.record_heartbeat, trial_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return self.stale_trial_ids(study_id)

    def get_heartbeat_interval(self) -> int | None:
        return self.inner.get_heartbeat_interval()

    def get_heartbeat_stale_trial_callback(self) -> Callable[..., None] | None:
        return self.inner.get_heartbeat_stale_trial_callback()


def heartbeat_stale_ids(storage: Any, study_id: int) -> list[int]:
    """optuna's stale trials of a study: running, last heartbeat older than the grace period."""
    return storage._get_stale_trial_ids(study_id)


def has_heartbeat(storage: RDBStorage, trial_id: int) -> bool:
    from optuna.storages._rdb.models import TrialHeartbeatModel as Beat

    with storage.engine.connect() as connection:
        query = sqlalchemy.select(Beat.trial_id).where(Beat.trial_id == trial_id)
        return connection.execute(query).first() is not None


def orphan_ids(storage: RDBStorage, study_id: int, started_before: datetime) -> list[int]:
    """Running trials of a study that never had a heartbeat and started before a time (local
    time; optuna 5 stores a trial's start as naive UTC, in `TrialModel._datetime_start_utc`)."""
    from optuna.storages._rdb.models import TrialHeartbeatModel as Beat
    from optuna.storages._rdb.models import TrialModel as Trial

    before_utc = started_before.astimezone(timezone.utc).replace(tzinfo=None)
    beaten = sqlalchemy.select(Beat.trial_id).where(Beat.trial_id == Trial.trial_id)
    query = sqlalchemy.select(Trial.trial_id).where(
        Trial.study_id == study_id,
        Trial.state == TrialState.RUNNING,
        Trial._datetime_start_utc < before_utc,
        ~beaten.exists(),
    )
    with storage.engine.connect() as connection:
        return [row[0] for row in connection.execute(query)]
