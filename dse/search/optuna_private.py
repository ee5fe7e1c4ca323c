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
"""

from __future__ import annotations

import optuna
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
