"""The results database (an optuna storage), studies, samplers, and how trials are counted.

Storage URLs: any SQLAlchemy URL optuna's RDBStorage takes (sqlite:///results/dse.db, the
default; postgresql+psycopg://user@host/db, where postgresql:// means the same: psycopg 3 is
the driver of the `dse[postgres]` extra), or a journal file (a path ending in .log or
.journal, or journal:PATH). RDB storages run with heartbeats: a trial whose runner died goes
stale after GRACE_PERIOD_S, is marked FAIL and re-queued with the same parameters.
Journal files have no heartbeats (optuna's limit): after a crash, stale RUNNING trials stay.

Several `dse run` processes may start on one new SQLite database at the same moment: creating
the schema and the study is serialized by a lock on the database's folder (optuna's own
creation races: `UNIQUE constraint failed: alembic_version.version_num`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from dse.errors import ConfigError, DseError, StorageError
from dse.space import SearchSpace

DEFAULT_STORAGE = "sqlite:///results/dse.db"
HEARTBEAT_INTERVAL_S = 2
GRACE_PERIOD_S = 10
SQLITE_TIMEOUT_S = 60
SAMPLERS = ("grid", "random", "nsga2", "tpe", "gp")

optuna.logging.set_verbosity(optuna.logging.WARNING)


def normalized_url(url: str) -> str:
    """postgresql:// and postgres:// name psycopg 3, the driver dse[postgres] installs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def open_error(url: str, exc: BaseException) -> DseError:
    """The one-line error for a storage that cannot be opened."""
    if isinstance(exc, ImportError):
        if url.startswith("postgres"):
            return ConfigError(
                f"--storage {url}: PostgreSQL needs the psycopg driver: pip install 'dse[postgres]'"
            )
        return ConfigError(f"--storage {url}: the database driver is not installed ({exc.name})")
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StorageError(f"--storage {url}: cannot open the database: {first_line}")


def journal_path(url: str) -> str | None:
    if url.startswith("journal:"):
        return url.removeprefix("journal:")
    if url.endswith((".log", ".journal")) and "://" not in url:
        return url
    return None


def sqlite_path(url: str) -> Path | None:
    """The database file of a sqlite URL (None for in-memory or other schemes)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///")
    return None if path in ("", ":memory:") else Path(path)


def open_storage(url: str, create: bool) -> optuna.storages.BaseStorage:
    """Open a storage; with create=False nothing is created (a missing database is an error)."""
    journal = journal_path(url)
    if journal is not None:
        return _open_journal(url, Path(journal), create)
    import sqlalchemy

    given, url = url, normalized_url(url)
    try:
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        parsed = sqlalchemy.engine.make_url(url)
        parsed.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        raise ConfigError(
            f"--storage {given}: unknown storage URL; use sqlite:///PATH.db, "
            "postgresql+psycopg://USER@HOST/DB or a journal file PATH.log"
        ) from None
    except ImportError as exc:
        raise open_error(given, exc) from None
    engine_kwargs: dict[str, Any] = {}
    path = sqlite_path(url)
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    if path is not None:
        _check_sqlite_path(given, path, create)
    existed = path is not None and path.exists()
    try:
        with creation_lock(url), warnings.catch_warnings():
            # heartbeats are experimental in optuna, and what we need
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            if path is not None and create:
                _use_wal(path)
            storage = RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                skip_table_creation=not create,
                heartbeat_interval=HEARTBEAT_INTERVAL_S,
                grace_period=GRACE_PERIOD_S,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
            )
    except Exception as exc:  # SQLAlchemy's OperationalError and friends: unreachable, refused
        if path is not None and not existed:  # a full disk, say: leave no half-made database
            for leftover in (path, *_sqlite_sidecars(path)):
                leftover.unlink(missing_ok=True)
        if isinstance(exc, DseError):
            raise
        raise open_error(given, exc) from None
    if url.startswith("sqlite"):
        sqlalchemy.event.listen(storage.engine, "connect", _no_sync_per_commit)
        storage.engine.dispose()  # connections made from here on get the pragma
    return storage


def close_storage(storage: optuna.storages.BaseStorage) -> None:
    """Close a storage's database connections now, not whenever they are garbage-collected.

    The last SQLite connection to close checkpoints the WAL into the database file: closed
    here, that happens when `dse run` ends, not later inside whichever command runs next.
    """
    if isinstance(storage, RDBStorage):
        storage.engine.dispose()


def _use_wal(path: Path) -> None:
    """Write-ahead logging: readers never block the writer and a commit is one append.

    With the default rollback journal, 8 `dse run` processes on one database starved each
    other's writes for tens of seconds, so live trials missed their heartbeats and were failed
    as stale. WAL needs every process on one host (not a network filesystem): several hosts
    share a PostgreSQL storage instead. The mode is stored in the database file.
    """
    with contextlib.closing(sqlite3.connect(path, timeout=SQLITE_TIMEOUT_S)) as db:
        db.execute("PRAGMA journal_mode=WAL")


def _no_sync_per_commit(connection: Any, _record: Any) -> None:
    """In WAL mode, synchronous=NORMAL syncs at checkpoints, not at every commit: a killed
    process loses nothing, a power cut may lose the last commits, and the file stays sound."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_sidecars(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal")]


_held_folders: dict[Path, int] = {}  # folder locks this process holds, and how deeply


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive flock on a folder: no lock file is left behind, the kernel releases it
    when the process dies. Re-entrant within a process (a second flock on another descriptor
    of the same folder would wait for the first forever)."""
    folder = folder.resolve()
    if folder in _held_folders or not folder.is_dir():
        _held_folders[folder] = _held_folders.get(folder, 0) + 1
        try:
            yield
        finally:
            _held_folders[folder] -= 1
            if not _held_folders[folder]:
                del _held_folders[folder]
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):  # NFS may refuse locks on folders: go on unlocked
            fcntl.flock(fd, fcntl.LOCK_EX)
        _held_folders[folder] = 1
        yield
    finally:
        _held_folders.pop(folder, None)
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def creation_lock(url: str) -> Iterator[None]:
    """Serialize creating a SQLite database's schema and studies (its folder's lock).

    Other storages pass through: PostgreSQL servers serialize schema creation themselves.
    """
    path = sqlite_path(url)
    if path is None:
        yield
        return
    with folder_lock(path.parent):
        yield


def _check_sqlite_path(url: str, path: Path, create: bool) -> None:
    if not create:
        if not path.is_file():
            raise StorageError(
                f"--storage {url}: no results database at {path} (run `dse run` first)"
            )
        return
    parent = path.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"--storage {url}: cannot create {parent}: {exc.strerror}") from None
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise StorageError(f"--storage {url}: {parent} is not writable")


def _open_journal(url: str, path: Path, create: bool) -> optuna.storages.BaseStorage:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if not create and not path.is_file():
        raise StorageError(f"--storage {url}: no journal file at {path} (run `dse run` first)")
    if create:
        try:
            path.resolve().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"--storage {url}: cannot create {path.parent}: {exc.strerror}"
            ) from None
    return JournalStorage(JournalFileBackend(str(path)))


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    try:
        return [s.study_name for s in storage.get_all_studies()]
    except Exception as exc:  # a database without optuna's tables
        raise StorageError(f"the storage holds no dse results ({type(exc).__name__})") from None


def load_study(storage: optuna.storages.BaseStorage, name: str | None) -> optuna.Study:
    """The named study; without a name, the only study in the storage."""
    names = study_names(storage)
    if name is None:
        if len(names) != 1:
            listing = ", ".join(names) if names else "none"
            raise StorageError(f"give --study: the storage holds {len(names)} studies ({listing})")
        name = names[0]
    if name not in names:
        raise StorageError(
            f"--study {name}: no such study; the storage holds: {', '.join(names) or 'none'}"
        )
    return optuna.load_study(study_name=name, storage=storage)


def create_study(
    storage: optuna.storages.BaseStorage,
    name: str,
    space: SearchSpace,
    sampler: optuna.samplers.BaseSampler,
) -> optuna.Study:
    """Create the study, or load it to resume; its objectives must match the space's."""
    url = getattr(storage, "url", "")
    with creation_lock(url):
        return _create_or_load_study(storage, name, space, sampler)


def _create_or_load_study(
    storage: optuna.storages.BaseStorage,
    name: str,
    space: SearchSpace,
    sampler: optuna.samplers.BaseSampler,
) -> optuna.Study:
    if name in study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
        if (
            study.metric_names != space.metric_names
            or [d.name.lower() for d in study.directions] != space.directions
        ):
            raise ConfigError(
                f"study {name!r} exists with objectives {study.metric_names}; the space asks for "
                f"{space.metric_names}: use another --study or --storage"
            )
        return study
    study = optuna.create_study(
        storage=storage, study_name=name, directions=space.directions, sampler=sampler
    )
    with warnings.catch_warnings():  # experimental in optuna, and the way to name objectives
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(space.metric_names)
    study.set_user_attr("space", space.raw)
    study.set_user_attr("constraints", [str(c) for c in space.constraints])
    return study


def make_sampler(name: str, seed: int, budget: int | None = None) -> optuna.samplers.BaseSampler:
    """The sampler that proposes new points. Grid points are enqueued, so grid uses random.

    Optuna's model-based samplers start with random trials: TPE and GP 10, NSGA-II a whole
    population of 50. With a CPU-sized budget that is random search under another name (8
    trials of tpe or nsga2 are the 8 points random picks with the same seed). So a known budget
    scales the start: TPE and GP model after a third of it (2 to 10 random trials), and NSGA-II
    breeds generations of half of it (4 to 50).
    """
    startup = 10 if budget is None else min(10, max(2, budget // 3))
    population = 50 if budget is None else min(50, max(4, budget // 2))
    if name in ("grid", "random"):
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    raise ConfigError(f"--sampler {name}: unknown sampler; choose from {', '.join(SAMPLERS)}")


# --- counting ---------------------------------------------------------------------------------


def is_final(trial: FrozenTrial) -> bool:
    """Finished for good: complete, pruned, or failed for a reason of its own (not retried)."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    attrs = trial.user_attrs
    return (
        trial.state == TrialState.FAIL
        and "error" in attrs
        and not attrs.get("retried")  # its retry counts instead
        and not attrs.get("invalid")  # a sampled combination the config rejects
    )


def is_pending(trial: FrozenTrial) -> bool:
    """Running or queued (a trial withdrawn as over budget is neither)."""
    return trial.state in (TrialState.RUNNING, TrialState.WAITING) and not trial.user_attrs.get(
        "withdrawn"
    )


def param_key(params: dict[str, Any]) -> str:
    """A stable identity of a point: its params, sorted."""
    return repr(sorted(params.items()))


def point_key(trial: FrozenTrial) -> str:
    """The identity of the point a trial runs. A queued trial has no params until it runs:
    its point is the `point` attribute set when it was enqueued (retries copy it)."""
    return param_key(trial.user_attrs.get("point") or trial.params)
