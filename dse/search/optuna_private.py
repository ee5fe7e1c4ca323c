"""The one place dse uses optuna's private API, and why.

The runner drives trials with ask/tell, and optuna starts heartbeats only inside
`Study.optimize`. So the runner records each live trial's heartbeat itself, which needs the
study's storage and the trial's storage id: optuna exposes neither publicly (`Study._storage`,
`Trial._trial_id`, `FrozenTrial._trial_id`). The trial id also tells trials running in this
process from trials of another runner sharing the study (numbers do, too, but a live `Trial`
and its frozen copy share only the id). If optuna renames these, only this file changes.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The trial's id in the storage (unique across the studies of a storage)."""
    return trial._trial_id


def record_heartbeats(study: optuna.Study, trials: list[optuna.Trial]) -> None:
    """Tell the storage these trials are alive; journal storages have no heartbeats."""
    storage = study._storage
    if not hasattr(storage, "record_heartbeat"):
        return
    for trial in trials:
        storage.record_heartbeat(trial._trial_id)
