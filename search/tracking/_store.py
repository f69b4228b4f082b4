"""The MLflow store side of tracking: opening a store safely; the writes tunefleet makes, as
records that can be queued (``TrackingWriter``), saved and replayed (``_replay.py``); how each is
applied with ``MlflowClient``; and which failures are worth retrying.

MLflow creates a SQLite store on first use by running its alembic migrations, with no lock
between processes: two ``tunefleet search`` started at the same moment on a new file both
migrate, and one dies with ``duplicate column name: step`` (or ``table alembic_version already
exists``). ``open_store`` runs that first use under a file lock next to the database, so the
second process waits and then finds the tables made.

It also switches the file to WAL journaling. In SQLite's default (rollback) mode a reader, such
as the MLflow UI paging through a long metric history, holds a lock that makes every writer
wait, and lock upgrades between concurrent transactions can fail at once with "database is
locked" whatever the busy timeout. In WAL mode readers and the one writer do not block each
other, and writers queue on the busy timeout. The mode is stored in the file, so one switch
serves every later process (the MLflow UI and server included). WAL needs shared memory between
the processes, i.e. one machine: a SQLite file on a network share was never safe for several
hosts writing at once, and tunefleet writes it from the driver only.

The busy timeout: MLflow sets ``PRAGMA busy_timeout = 20000`` (20 s) on every session it opens
for reads and writes (``mlflow.store.db.utils._get_managed_session_maker``); the few statements
outside those sessions (opening the engine, checking the schema) are reads, which never wait on
a writer in WAL mode, and keep the sqlite3 module's 5 s default. A write that still finds the
database busy (an unusually long commit elsewhere) is retried by ``TrackingWriter``.

Other stores (an MLflow server, PostgreSQL, MySQL) serialize their own writers: nothing to do.
"""

from __future__ import annotations

import errno
import importlib
import logging
import sqlite3
import time
import uuid
from collections.abc import Iterator
from http.client import IncompleteRead
from pathlib import Path
from typing import Annotated, Literal

import requests
import sqlalchemy.exc
from filelock import FileLock
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import RestException
from mlflow.tracking import MlflowClient
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from tunefleet.spaces import records as rec

logger = logging.getLogger(__name__)
# A migration of a new store takes a few seconds; processes queued behind it wait this long.
LOCK_TIMEOUT_S = 300.0
# How long our own connection waits for a busy database while it switches the journal mode.
BUSY_TIMEOUT_S = 30.0
LOCK_SUFFIX = ".lock"


def sqlite_database(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (a query string such as ``?timeout=`` dropped);
    None for other stores and for an in-memory database."""
    file = rec.sqlite_file(uri)
    if file is None:
        return None
    file = file.split("?", 1)[0]
    return Path(file) if file and file != ":memory:" else None


def open_store(uri: str) -> None:
    """Make the store at ``uri`` ready for this process: created and migrated once however many
    processes start together, in WAL mode when it is a SQLite file. Call it before the first
    ``MlflowClient`` use of a search; calling it again is cheap."""
    path = sqlite_database(uri)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # MLflow's SQL store module takes a second to import: done here, processes do it side by side
    # instead of one after another under the lock.
    importlib.import_module("mlflow.store.tracking.sqlalchemy_store")
    # The lock lies next to the database, not in /tmp, so processes that see the file under
    # another temp directory (containers sharing a volume) still exclude each other.
    with FileLock(str(path) + LOCK_SUFFIX, timeout=LOCK_TIMEOUT_S):
        _use_wal(path)
        # Public API: the first request builds MLflow's store for this URI, which creates and
        # migrates the tables; MLflow caches that store per process, so later clients reuse it.
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)


def _use_wal(path: Path) -> None:
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
    try:
        mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    except sqlite3.OperationalError as err:
        # Another program (not behind our lock) holds the database: WAL is an improvement,
        # not a requirement, so the search goes on in the current mode.
        logger.info("could not switch %s to WAL journaling (%s); keeping its mode", path, err)
        return
    finally:
        connection.close()
    if str(mode).lower() != "wal":  # e.g. a file system without shared memory
        logger.info("SQLite kept journal mode %s for %s", mode, path)


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Op(BaseModel):
    # NaN and infinite metrics (a diverged loss) survive the spool as JSON's NaN / Infinity.
    model_config = ConfigDict(frozen=True, ser_json_inf_nan="constants")
    key: str  # the run: a bound run id's key or an earlier CreateRun's key


class CreateRun(_Op):
    kind: Literal["create_run"] = "create_run"
    experiment_id: str
    run_name: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    start_time_ms: int = Field(default_factory=_now_ms)  # a replayed run keeps its real start
    create_key: str = Field(default_factory=lambda: uuid.uuid4().hex)


class LogBatch(_Op):
    kind: Literal["log_batch"] = "log_batch"
    metrics: tuple[tuple[str, float, int, int], ...] = ()  # (key, value, timestamp_ms, step)
    params: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)


class SetTerminated(_Op):
    kind: Literal["set_terminated"] = "set_terminated"
    status: str = "FINISHED"
    end_time_ms: int = Field(default_factory=_now_ms)


class UpdateRunStatus(_Op):
    kind: Literal["update_run_status"] = "update_run_status"
    status: str


class LogArtifacts(_Op):
    kind: Literal["log_artifacts"] = "log_artifacts"
    local_dir: str  # must still exist when a spooled write is replayed
    artifact_path: str | None = None


class LogText(_Op):
    kind: Literal["log_text"] = "log_text"
    text: str
    artifact_file: str


Op = Annotated[
    CreateRun | LogBatch | SetTerminated | UpdateRunStatus | LogArtifacts | LogText, Field(discriminator="kind")
]
OP_ADAPTER: TypeAdapter[Op] = TypeAdapter(Op)


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo = [err]
    while todo:
        e = todo.pop()
        if id(e) not in seen:
            seen.add(id(e))
            yield e
            todo += [c for c in (e.__cause__, e.__context__) if c is not None]


def _retryable_status(status: int | None) -> bool:
    return status is not None and (status in (408, 429) or status >= 500)


def is_transient(err: BaseException) -> bool:
    """Whether the same write may succeed later: a busy SQLite database, a server that is down,
    overloaded or slow. MLflow wraps the cause (``raise ... from`` or inside ``except``), so the
    whole exception chain is read."""
    for e in _chain(err):
        if isinstance(e, ConnectionError | TimeoutError | requests.ConnectionError | requests.Timeout):
            return True  # refused, reset, no route, timed out (requests' own classes included)
        if isinstance(e, requests.exceptions.RetryError | requests.exceptions.ChunkedEncodingError | IncompleteRead):
            return True  # out of retries on 429 / 5xx answers; a server that died mid-answer
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True  # a full disk (local artifacts) is freed by someone, or the writes are spooled
        if isinstance(e, requests.HTTPError) and e.response is not None:
            return _retryable_status(e.response.status_code)  # artifact uploads
        if isinstance(e, RestException):
            return _retryable_status(e.get_http_status_code())
        if isinstance(e, sqlalchemy.exc.OperationalError | sqlite3.OperationalError) and (
            "is locked" in str(e) or "disk is full" in str(e)
        ):
            return True  # "database is locked" / "database table is locked" / "database or disk is full"
    return False


def describe(op: Op) -> str:
    """One line naming a write, for logs: ``log_batch trial_3 (10 metrics, 0 params, 1 tags)``."""
    if isinstance(op, LogBatch):
        return f"{op.kind} {op.key} ({len(op.metrics)} metrics, {len(op.params)} params, {len(op.tags)} tags)"
    if isinstance(op, SetTerminated | UpdateRunStatus):
        return f"{op.kind} {op.key} ({op.status})"
    if isinstance(op, LogArtifacts | LogText):
        return f"{op.kind} {op.key} ({op.local_dir if isinstance(op, LogArtifacts) else op.artifact_file})"
    return f"{op.kind} {op.key}"


def create_run(client: MlflowClient, op: CreateRun, adopt: bool) -> str:
    """Create ``op``'s run and return its id; with ``adopt``, first look for the run an earlier
    attempt of the same write created (its answer lost to a timeout, or the writer stopped)."""
    if adopt:
        found = client.search_runs(
            [op.experiment_id], f"tags.`{rec.CREATE_KEY_TAG}` = '{op.create_key}'", ViewType.ALL, max_results=1
        )
        if found:
            return str(found[0].info.run_id)
    run = client.create_run(
        op.experiment_id, op.start_time_ms, {**op.tags, rec.CREATE_KEY_TAG: op.create_key}, op.run_name
    )
    return str(run.info.run_id)


def apply_op(client: MlflowClient, op: Op, run_id: str) -> None:
    """Apply a write other than ``CreateRun`` to the run ``run_id``."""
    if isinstance(op, LogBatch):
        metrics = [Metric(k, v, ts, step) for k, v, ts, step in op.metrics]
        params = [Param(k, v) for k, v in op.params.items()]
        client.log_batch(run_id, metrics=metrics, params=params, tags=[RunTag(k, v) for k, v in op.tags.items()])
    elif isinstance(op, SetTerminated):
        client.set_terminated(run_id, op.status, end_time=op.end_time_ms)
    elif isinstance(op, UpdateRunStatus):
        client.update_run(run_id, status=op.status)
    elif isinstance(op, LogArtifacts):
        if not Path(op.local_dir).is_dir():  # an HTTP artifact store would upload nothing, silently
            raise FileNotFoundError(f"artifact directory {op.local_dir} does not exist")
        client.log_artifacts(run_id, op.local_dir, op.artifact_path)
    elif isinstance(op, LogText):
        client.log_text(run_id, op.text, op.artifact_file)
    else:
        raise TypeError(f"not a write for an existing run: {op.kind}")
