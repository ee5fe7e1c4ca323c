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
"""

from __future__ import annotations

import optuna
import sqlalchemy
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial


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


def stale_trials(study: optuna.Study) -> list[tuple[optuna.Trial, float]]:
    """The running trials optuna's stale check would fail now, each with the seconds since
    its last heartbeat (by the database's clock, as optuna compares them)."""
    storage = getattr(study._storage, "_backend", study._storage)  # under optuna's cache
    if not isinstance(storage, RDBStorage) or storage.heartbeat_interval is None:
        return []
    ids = storage._get_stale_trial_ids(study._study_id)
    if not ids:
        return []
    from optuna.storages._rdb.models import TrialHeartbeatModel as Beat

    with storage.engine.connect() as connection:
        now = connection.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar()
        query = sqlalchemy.select(Beat.trial_id, Beat.heartbeat).where(Beat.trial_id.in_(ids))
        beats = dict(connection.execute(query).all())
    now = now.replace(tzinfo=None)  # as optuna does: PostgreSQL's now() carries a time zone
    return [(optuna.Trial(study, i), (now - beats[i]).total_seconds()) for i in ids if i in beats]
