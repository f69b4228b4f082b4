"""``TrackingWriter``: MLflow writes in order, off the caller's thread, none of them dropped.

Each write is a small record (``CreateRun``, ``LogBatch``, ...) naming its run by a *key*: a run
id given to ``bind`` or the key of an earlier ``CreateRun``. ``submit`` queues it and returns;
one thread applies the queue in order. A transient failure (SQLite busy, the server down or
overloaded, a timeout) keeps the write at the head of the queue and retries it with a capped
backoff for as long as it takes, so later writes wait behind it instead of overtaking it. A
write the store refuses outright is logged and dropped (see ``_deliver``). ``close`` waits a
bounded time, then saves what is still queued to a spool file that ``tunefleet replay``
applies later (``_replay.py``).

Every write may be applied twice (a request that timed out may have arrived; replay after a
close that gave up mid-request) without changing the result: metrics carry their timestamp and
MLflow ignores a row it already has, params are re-logged with the same value, tags, statuses
and artifacts are overwritten with the same content, and a run is created at most once because
``CreateRun`` tags it with a client-made key and looks for that key before creating again.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from ._store import (
    CreateRun,
    LogArtifacts,
    LogBatch,
    LogText,
    Op,
    SetTerminated,
    UpdateRunStatus,
    apply_op,
    create_run,
    describe,
    is_transient,
)

# The writes are defined beside the store code; they are part of this module's API.
__all__ = [
    "CreateRun", "LogArtifacts", "LogBatch", "LogText", "Op", "SetTerminated", "SpoolReport", "TrackingWriter",
    "UnknownRunError", "UpdateRunStatus", "write_spool",
]  # fmt: skip
logger = logging.getLogger(__name__)
SPOOL_FORMAT = 1


class UnknownRunError(LookupError):
    """A write names a key that no ``bind`` and no successful ``CreateRun`` gave a run id."""


@dataclass(frozen=True)
class SpoolReport:
    """What ``close`` could not deliver and saved: ``path`` holds it for ``tunefleet replay``."""

    path: Path
    tracking_uri: str
    ops: int
    by_kind: dict[str, int]
    by_run: dict[str, int]  # run key -> writes
    runs_not_created: list[str] = field(default_factory=list)  # keys whose CreateRun is among them

    @property
    def replay_command(self) -> str:
        return f"tunefleet replay {shlex.quote(str(self.path))}"

    def message(self) -> str:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.by_kind.items()))
        return (
            f"MLflow at {self.tracking_uri} did not take {self.ops} writes ({kinds}) for {len(self.by_run)} runs; "
            f"they are saved in {self.path}. When it answers again, run: {self.replay_command}"
        )


class TrackingWriter:
    """Applies MLflow writes in submission order on one background thread; never drops a write
    that could still succeed. ``adopt_created``: look for an existing run before every create
    (replay), not only after a failed attempt."""

    def __init__(self, uri: str, max_backoff_s: float = 30.0, adopt_created: bool = False) -> None:
        self.uri = uri
        self.max_backoff_s = max_backoff_s
        self.adopt_created = adopt_created
        self.delivered = 0
        self.rejected: Counter[str] = Counter()  # permanent errors, per kind of write
        self._queue: deque[Op] = deque()  # the head stays queued until it is applied
        self._cond = threading.Condition()
        self._run_ids: dict[str, str] = {}
        self._stop = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._client: MlflowClient | None = None
        self._outage_since: float | None = None

    def bind(self, key: str, run_id: str) -> None:
        """Name an existing run (the search run, a trial run adopted on resume) by ``key``."""
        with self._cond:
            self._run_ids[key] = run_id

    def run_id(self, key: str) -> str | None:
        with self._cond:
            return self._run_ids.get(key)

    def run_ids(self) -> dict[str, str]:
        """Every key -> run id known so far (bound or created)."""
        with self._cond:
            return dict(self._run_ids)

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def submit(self, op: Op) -> None:
        """Queue ``op`` behind every earlier write; returns at once."""
        with self._cond:
            if self._closed or self._stop.is_set():
                raise RuntimeError("TrackingWriter is closed")
            self._queue.append(op)
            self._cond.notify_all()
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="mlflow-writer", daemon=True)
                self._thread.start()

    def flush(self, timeout_s: float) -> bool:
        """Wait until every queued write is applied (or dropped as refused); False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._queue:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self, timeout_s: float, spool_path: str | Path) -> SpoolReport | None:
        """Wait up to ``timeout_s`` for delivery, then stop. What is still queued goes to a spool
        file at ``spool_path`` (or the first free ``<name>.N`` beside it: an older spool is never
        overwritten), and its summary is returned; None when everything was delivered (or when
        already closed: the first close spooled what was left)."""
        if self._closed:
            return None
        self.flush(timeout_s)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            # A request in flight may still answer; past this grace it is spooled as well, which
            # is harmless because every write may be applied twice (module docstring).
            self._thread.join(min(2.0, max(timeout_s, 0.1)))
        with self._cond:
            self._closed = True
            ops, run_ids = list(self._queue), dict(self._run_ids)
        if not ops:
            return None
        path = write_spool(spool_path, self.uri, run_ids, ops)
        creating = [op.key for op in ops if isinstance(op, CreateRun)]
        return SpoolReport(
            path,
            self.uri,
            len(ops),
            dict(Counter(op.kind for op in ops)),
            dict(Counter(op.key for op in ops)),
            creating,
        )

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop.is_set():
                    self._cond.wait()
                if self._stop.is_set():  # close() gave up waiting: what is queued goes to the spool
                    return
                op = self._queue[0]
            if not self._deliver(op):
                return  # stopped while retrying: the write stays queued for the spool
            with self._cond:
                if self._closed:
                    return
                self._queue.popleft()
                self._cond.notify_all()

    def _deliver(self, op: Op) -> bool:
        """Apply ``op``, retrying transient failures until it succeeds or ``close`` stops us."""
        delay = 0.5
        attempt = 0
        while True:
            try:
                self._apply(op, retrying=attempt > 0)
            except Exception as err:
                if not is_transient(err):
                    # Not lost: the store refuses this exact write (a param re-logged with another
                    # value, a run deleted meanwhile), so no retry or replay could ever apply it.
                    # The other writes of the run go on; the count tells the caller.
                    self._outage_ended()
                    self.rejected[op.kind] += 1
                    logger.error("MLflow refused a write, dropped: %s: %s: %s", describe(op), type(err).__name__, err)
                    return True
                self._outage_began(err)
                attempt += 1
                if self._stop.wait(delay):
                    return False
                delay = min(delay * 2, self.max_backoff_s)
                continue
            self.delivered += 1
            self._outage_ended()
            return True

    def _outage_began(self, err: Exception) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            logger.warning(
                "MLflow at %s is not taking writes (%s: %s); holding them and retrying (at least every %.0f s)",
                self.uri, type(err).__name__, str(err)[:300], self.max_backoff_s,
            )  # fmt: skip
        else:
            logger.debug("MLflow write still failing: %s", err)

    def _outage_ended(self) -> None:
        if self._outage_since is not None:
            held = self.pending
            logger.warning(
                "MLflow at %s takes writes again after %.1f s; the %d writes held meanwhile are being written",
                self.uri, time.monotonic() - self._outage_since, held,
            )  # fmt: skip
            self._outage_since = None

    def _apply(self, op: Op, retrying: bool) -> None:
        if isinstance(op, CreateRun):
            if self.run_id(op.key) is None:  # else created before this copy of the write was spooled
                self.bind(op.key, create_run(self.client, op, adopt=retrying or self.adopt_created))
            return
        run_id = self.run_id(op.key)
        if run_id is None:
            raise UnknownRunError(f"no run for key {op.key!r}: never bound, or its CreateRun was refused")
        apply_op(self.client, op, run_id)


def write_spool(path: str | Path, uri: str, run_ids: dict[str, str], ops: list[Op]) -> Path:
    """Write a spool file (JSON lines: a header with the URI and key -> run id map, then one write
    per line, in order) at ``path`` or the first free ``<path>.N``; return where it went."""
    target, n = Path(path), 1
    while target.exists():
        target, n = Path(f"{path}.{n}"), n + 1
    target.parent.mkdir(parents=True, exist_ok=True)
    header: dict[str, Any] = {"tunefleet_spool": SPOOL_FORMAT, "tracking_uri": uri, "run_ids": run_ids}
    tmp = target.with_name(f".{target.name}.tmp")
    with tmp.open("w", encoding="utf-8") as out:
        out.write(json.dumps(header) + "\n")
        out.writelines(op.model_dump_json() + "\n" for op in ops)  # the model keeps NaN (the adapter would not)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, target)  # whole or absent: a crash mid-write leaves no half spool to replay
    return target
