"""What a search stores, defined once: a trial's record in the study (optuna user attributes,
JSON) is read and written only through `TrialRecord`, a study's through `StudyRecord`, under the
key constants below: the stored format (studies written by earlier versions open with the same
names). Their stored forms, Placement, EpochPoint and Decision, are in forms.py (and here)."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from dse.config import TrialConfig
from dse.search.forms import Decision, EpochPoint, Placement, param_key
from dse.search.processes import this_runner
from dse.space.model import Fingerprint
from dse.train.result import EpochRecord, TrialResult, current_metric, current_metrics

# --- a trial's stored record ------------------------------------------------------------------

CONFIG = "config"  # the resolved TrialConfig (dict)
DEVICE, SLOT, HOST, DASK_WORKER = "device", "slot", "host", "dask_worker"  # where it ran
METRICS_KEY = "metrics"  # every metric of train.result.METRICS, by name
HISTORY = "history"  # the trainer's per-epoch records
ENVIRONMENT = "environment"  # torch, threads, commit, seed ... plus WALL_S and the placement
WALL_S, THREADS = "wall_s", "threads"  # in ENVIRONMENT: the whole task's seconds; torch's threads
PER_SEED, SEED_STD = "per_seed", "seed_std"  # repeats: each seed's metrics, and their std
CURVE = "curve"  # EpochPoints so far, written after each epoch
RUNGS = "rungs"  # MO-ASHA decisions by rung (str), as Decision.to_attr()
STOPPED_AT, VALUES_AT_STOP = "stopped_at", "values_at_stop"  # stopped early (PRUNED)
ERROR = "error"  # why it failed: "kind: message"
RAN_S = "ran_s"  # a stale trial: seconds from its start to its last heartbeat
RETRIED = "retried"  # failed, and its retry counts instead
INVALID = "invalid"  # a sample not run (not a valid config, or a repeat: unvisited.py): not counted
WITHDRAWN = "withdrawn"  # asked over budget by a racing runner: not counted
ORIGIN = "origin"  # enqueued as: "grid", "point" or "retry"
POINT = "point"  # the params it was enqueued with (a queued trial has no params yet)
RETRY_OF, RETRY_REASON, HALF_BATCH = "retry_of", "retry_reason", "half_batch"
CREATION_TAG = "dse:creation"  # a system attribute: the tag a new trial is created with
RUNNER = "runner_process"  # HOST:PID of the runner that started it (journals: no heartbeats)
RESUME_KEY = "resume_key"  # names the trial's per-epoch checkpoint; its retries inherit it
RESUMED_FROM_EPOCH = "resumed_from_epoch"  # complete epochs restored from the checkpoint
RESUMED_SEED = "resumed_seed"  # repeats: the seed (index) it resumed in
LOST_TRAIN_S = "lost_train_s"  # seconds the point's failed attempts ran past their last checkpoint


def enqueue_point(study: optuna.Study, params: dict[str, Any], origin: str) -> None:
    """Queue a point (a grid point, or one of a space's `points`) with where it came from."""
    study.enqueue_trial(params, user_attrs={ORIGIN: origin, POINT: params})


class TrialRecord:
    """A trial's stored attributes, by name. Reads work on finished and live trials alike;
    writes need a live `optuna.Trial` (one the runner asked for and has not told yet)."""

    def __init__(self, trial: FrozenTrial | optuna.Trial):
        self.trial = trial

    @property
    def attrs(self) -> dict[str, Any]:
        return self.trial.user_attrs

    # -- reading --
    @property
    def number(self) -> int:
        return self.trial.number

    @property
    def config(self) -> dict[str, Any] | None:
        return self.attrs.get(CONFIG)

    @property
    def metrics(self) -> dict[str, float]:
        return current_metrics(self.attrs.get(METRICS_KEY, {}))

    @property
    def history(self) -> list[EpochRecord]:
        return [EpochRecord(**record) for record in self.attrs.get(HISTORY, [])]

    def trial_config(self) -> TrialConfig | None:
        """The resolved TrialConfig the trial ran (None before it was handed to a worker)."""
        config = self.config
        return None if config is None else TrialConfig.from_dict(config, f"trial {self.number}")

    @property
    def wall_s(self) -> float | None:
        return self.attrs.get(ENVIRONMENT, {}).get(WALL_S)

    @property
    def threads(self) -> int | None:  # torch's CPU threads of a finished run
        return self.attrs.get(ENVIRONMENT, {}).get(THREADS)

    @property
    def device(self) -> str | None:
        return self.attrs.get(DEVICE)

    @property
    def slot(self) -> str | None:
        return self.attrs.get(SLOT)

    @property
    def host(self) -> str | None:
        return self.attrs.get(HOST)

    @property
    def error(self) -> str | None:
        """Why it failed; None unless it did (a retry starts with its original's attributes)."""
        return self.attrs.get(ERROR) if self.trial.state == TrialState.FAIL else None

    @property
    def curve(self) -> list[EpochPoint]:
        return [EpochPoint(**point) for point in self.attrs.get(CURVE, [])]

    def decision(self, rung: int) -> Decision | None:
        """MO-ASHA's decision at `rung`, if the trial reached it."""
        stored = self.attrs.get(RUNGS, {}).get(str(rung))
        return None if stored is None else Decision.from_attr(rung, stored)

    def decisions(self) -> list[Decision]:
        return [Decision.from_attr(int(k), v) for k, v in self.attrs.get(RUNGS, {}).items()]

    @property
    def stopped_at(self) -> int | None:
        return self.attrs.get(STOPPED_AT)

    @property
    def per_seed(self) -> list[dict[str, float]]:
        return [current_metrics(seed) for seed in self.attrs.get(PER_SEED) or []]

    @property
    def seed_std(self) -> dict[str, float]:
        return current_metrics(self.attrs.get(SEED_STD, {}))

    @property
    def creation_tag(self) -> str | None:  # search/resilient.py
        return self.trial.system_attrs.get(CREATION_TAG)

    @property
    def resume_key(self) -> str | None:
        return self.attrs.get(RESUME_KEY)

    @property
    def resumed_from_epoch(self) -> int | None:
        return self.attrs.get(RESUMED_FROM_EPOCH)

    @property
    def lost_train_s(self) -> float:
        """Seconds this point's failed attempts (this one's too) ran past their last checkpoint."""
        return self.attrs.get(LOST_TRAIN_S, 0.0)

    @property
    def half_batch(self) -> bool:
        return bool(self.attrs.get(HALF_BATCH))

    @property
    def retry_of(self) -> int:
        """The first run of this trial's point (itself unless it is a retry)."""
        return self.attrs.get(RETRY_OF, self.trial.number)

    def is_final(self) -> bool:
        """Finished for good: complete, pruned, or failed for its own reason (not retried, run)."""
        state = self.trial.state
        if state in (TrialState.COMPLETE, TrialState.PRUNED):
            return True
        failed = state == TrialState.FAIL and ERROR in self.attrs
        return failed and not self.attrs.get(RETRIED) and not self.never_ran

    def is_pending(self) -> bool:
        """Running or queued (a trial withdrawn as over budget is neither)."""
        running = self.trial.state in (TrialState.RUNNING, TrialState.WAITING)
        return running and not self.attrs.get(WITHDRAWN)

    @property
    def never_ran(self) -> bool:
        """Told FAIL untrained: a sample not run (invalid, a repeat) or asked over budget."""
        return bool(self.attrs.get(INVALID) or self.attrs.get(WITHDRAWN))

    @property
    def point(self) -> dict[str, Any]:
        """The params of the point the trial runs (a queued trial: those it was queued with)."""
        return self.attrs.get(POINT) or self.trial.params

    def point_key(self) -> str:
        """The identity of the point the trial runs (a queued trial's: the one it was queued)."""
        return param_key(self.point)

    def train_seconds(self) -> float:
        """Seconds trained: a finished or stopped run's (all seeds), a failed one's epochs."""
        if self.metrics:
            return TrialResult.seconds_spent(self.per_seed) or float(self.metrics["train_time_s"])
        curve = self.curve
        return curve[-1].elapsed_train_s if curve else 0.0

    # -- writing --
    def _set(self, key: str, value: Any) -> None:
        self.trial.set_user_attr(key, value)

    def start(self, config: dict[str, Any], placement: Placement) -> str:
        """A trial handed to a worker; a retry drops its failed run's curve and decisions.
        Returns the name of its per-epoch checkpoint: a retry's is its failed run's."""
        self._set(CONFIG, config)
        self._set(RUNNER, this_runner())
        self.place(placement)
        for key, empty in ((CURVE, []), (RUNGS, {})):
            if key in self.attrs:
                self._set(key, empty)
        key = self.resume_key
        if key is None:
            key = f"trial-{self.number}"
            self._set(RESUME_KEY, key)
        return key

    def place(self, placement: Placement) -> None:
        for key, value in asdict(placement).items():
            if value is not None:
                self._set(key, value)

    def finish(
        self, result: TrialResult, wall_s: float, placement: Placement | None
    ) -> dict[str, float]:
        """Store a finished run's result (`wall_s`: the whole task, `placement`: where it ran);
        returns its metrics, by name."""
        metrics = result.metrics()
        environment = {**result.environment, WALL_S: wall_s}
        if placement is not None:
            placed = {k: v for k, v in asdict(placement).items() if v is not None}
            environment.update(placed)
            if placement.dask_worker is not None:  # should its start have been missed
                self.place(placement)
        self._set(METRICS_KEY, metrics)
        self._set(HISTORY, [asdict(record) for record in result.history])
        self._set(ENVIRONMENT, environment)
        if result.per_seed:
            self._set(PER_SEED, result.per_seed)
            self._set(SEED_STD, result.seed_std)
        if result.resumed_from_epoch is not None:
            self._set(RESUMED_FROM_EPOCH, result.resumed_from_epoch)
        if result.resumed_seed is not None:
            self._set(RESUMED_SEED, result.resumed_seed)
        return metrics

    def stopped(self, epoch: int, values: list[float]) -> None:
        """Stopped early at a rung: optuna takes no values with PRUNED, so they are kept here."""
        self._set(STOPPED_AT, epoch)
        self._set(VALUES_AT_STOP, values)

    def fail(self, error: str) -> None:
        self._set(ERROR, error)

    def went_stale(self, silent_s: float, ran_s: float, retried: bool) -> None:
        """No heartbeat for `silent_s` seconds: its runner or worker is gone; it ran `ran_s`."""
        why = "its runner or worker was killed, crashed or stalled"
        self._set(ERROR, f"stale: no heartbeat for {silent_s:.0f} s ({why})")
        self._set(RAN_S, ran_s)
        curve = self.curve
        last_checkpoint_s = (curve[-1].at_s or 0.0) if curve else 0.0
        self.add_lost(ran_s - last_checkpoint_s)
        if retried:
            self.mark_retried()

    @property
    def runner(self) -> str | None:
        return self.attrs.get(RUNNER)

    @property
    def ran_s(self) -> float | None:
        return self.attrs.get(RAN_S)

    def add_lost(self, seconds: float) -> None:
        """A failed attempt ran `seconds` past its last checkpoint (a retry redoes them)."""
        self._set(LOST_TRAIN_S, self.lost_train_s + max(0.0, seconds))

    def mark_retried(self) -> None:
        self._set(RETRIED, True)

    def mark_invalid(self, error: str) -> None:
        self._set(ERROR, error)
        self._set(INVALID, True)

    def tag_creation(self, tag: str) -> None:
        """Tag a new trial's template: a creation lost in a database outage is found again."""
        self.trial.system_attrs = {**self.trial.system_attrs, CREATION_TAG: tag}

    def mark_withdrawn(self) -> None:
        self._set(WITHDRAWN, True)

    def set_curve(self, curve: list[EpochPoint]) -> None:
        self._set(CURVE, [point.to_dict() for point in curve])

    def add_decision(self, decision: Decision) -> None:
        self._set(RUNGS, {**self.attrs.get(RUNGS, {}), str(decision.rung): decision.to_attr()})

    def enqueue_retry(
        self, study: optuna.Study, origin: int, reason: str, half_batch: bool = False
    ) -> None:
        """Queue this trial's point again, linked to `origin`, the point's first run. A retry of
        the same config (a half-batch trial's included) inherits the checkpoint, to resume from
        its last epoch, and the seconds lost so far; one at half the batch, neither."""
        attrs = {ORIGIN: "retry", RETRY_OF: origin, POINT: dict(self.trial.params)}
        attrs[RETRY_REASON] = reason
        if half_batch or self.half_batch:
            attrs[HALF_BATCH] = True
        if not half_batch:
            inherited = {RESUME_KEY: self.resume_key, LOST_TRAIN_S: self.attrs.get(LOST_TRAIN_S)}
            attrs.update({key: value for key, value in inherited.items() if value is not None})
        study.enqueue_trial(self.trial.params, user_attrs=attrs)


# --- a study's stored record ------------------------------------------------------------------

SPACE = "space"  # the space file as parsed (YAML data)
CONSTRAINTS = "constraints"  # the space's constraints, as text
CALIBRATION = "calibration"  # the latest `dse calibrate` result run with it
EARLY_STOP = "early_stop"  # rule, rungs ("halving": each run's), eta of the last such run
REFERENCE_POINT = "reference_point"  # in SPACE: the hypervolume's reference point, if given
FINGERPRINTS = "fingerprints"  # the spaces the study was run with (space.Fingerprint), oldest first
STUDY_UID = "study_uid"  # a random id: names the study's checkpoint folder
RUNNERS_JOINED = "runners_joined"  # how many runs have joined the study: the next one's index

# Keys that are also ordinary words elsewhere (inputs in errors, columns, titles), checked by
# tests/test_architecture.py where attributes are read; other keys appear only in this module.
SHARED_WORDS = frozenset(
    {CONFIG, DEVICE, SLOT, HOST, HISTORY, ERROR, POINT, RUNGS, STOPPED_AT, WALL_S, THREADS}
    | {SPACE, CALIBRATION, EARLY_STOP, REFERENCE_POINT}
)


class StudyRecord:
    """A study's stored attributes, by name."""

    def __init__(self, study: optuna.Study):
        self.study = study

    @property
    def space(self) -> dict[str, Any]:
        return self.study.user_attrs.get(SPACE, {})

    @property
    def reference_point(self) -> dict[str, float] | None:
        stored = self.space.get(REFERENCE_POINT)
        return current_metrics(stored) if stored else None

    @property
    def calibration(self) -> dict[str, Any] | None:
        return self.study.user_attrs.get(CALIBRATION)

    def fingerprints(self) -> list[Fingerprint]:
        """The spaces the study was run with, oldest first (an older study: its stored one)."""
        stored = self.study.user_attrs.get(FINGERPRINTS)
        if stored:
            return [Fingerprint(**f).with_current_metrics(current_metric) for f in stored]
        space = self.space
        base = dict(space.get("base") or {})
        if space.get("repeats") is not None:
            base["repeats"] = space["repeats"]
        directions = [d.name.lower() for d in self.study.directions]
        old = Fingerprint(
            base=base,
            axes=dict(space.get("axes") or {}),
            objectives=dict(zip(self.study.metric_names or [], directions, strict=False)),
            constraints=list(self.study.user_attrs.get(CONSTRAINTS, [])),
        )
        return [old.with_current_metrics(current_metric)]

    def add_fingerprint(self, fingerprint: Fingerprint, new_study: bool = False) -> None:
        """Record that the study is (now also) run with this space."""
        known = [] if new_study else [f.to_dict() for f in self.fingerprints()]
        self.study.set_user_attr(FINGERPRINTS, [*known, fingerprint.to_dict()])

    @property
    def extended(self) -> bool:
        """Run with more than one space: only a run's own points count toward its budget."""
        return len(self.fingerprints()) > 1

    def created(self, space: dict[str, Any], constraints: list[str]) -> None:
        self.study.set_user_attr(SPACE, space)
        self.study.set_user_attr(CONSTRAINTS, constraints)

    def set_calibration(self, calibration: dict[str, Any]) -> None:
        self.study.set_user_attr(CALIBRATION, calibration)

    def uid(self) -> str:
        """The study's own random id, made on first use (call it under the set-up lock)."""
        stored = self.study.user_attrs.get(STUDY_UID)
        if stored is None:
            stored = uuid.uuid4().hex[:8]
            self.study.set_user_attr(STUDY_UID, stored)
        return stored

    def join(self) -> int:
        """This run's index among the study's runs, 0 for its first (under the set-up lock)."""
        joined = self.study.user_attrs.get(RUNNERS_JOINED, 0)
        self.study.set_user_attr(RUNNERS_JOINED, joined + 1)
        return joined

    def set_early_stop(self, rungs: tuple[int, ...] | None, eta: float) -> None:
        stored = "halving" if rungs is None else list(rungs)  # None: each run's (moasha.py)
        self.study.set_user_attr(EARLY_STOP, {"rule": "moasha", "rungs": stored, "eta": eta})
