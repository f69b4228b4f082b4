"""The MLflow store side of tracking: the writes tunefleet makes, as records that can be queued
(``TrackingWriter``), saved and replayed (``_replay.py``); how each is applied with
``MlflowClient``; and which failures are worth retrying. Opening a store safely is ``_open.py``.
"""

from __future__ import annotations

import errno
import sqlite3
import time
import uuid
from collections.abc import Iterator
from http.client import IncompleteRead
from pathlib import Path
from typing import Annotated, Literal

import requests
import sqlalchemy.exc
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import RestException
from mlflow.tracking import MlflowClient
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from tunefleet.spaces import records as rec


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
