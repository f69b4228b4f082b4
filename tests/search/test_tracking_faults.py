"""MLflow writes that survive contention and outages (issue 11, scenarios 10 and 11).

Real parts only: SQLite stores in a temporary folder and databases on a real PostgreSQL server
(``postgres``, tests/search/conftest.py), both through the same tests; processes forked from this
one (each with its own connections), and a real ``mlflow server`` on either store that is killed
and started again. The writer-process tests come first: they fork, which is safest before any
writer thread exists.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import traceback
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mlflow.store.tracking.sqlalchemy_store  # noqa: F401  imported once here, not in every child
import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from tunefleet.search.tracking._open import close_stores, open_store
from tunefleet.search.tracking._replay import ReplayIncompleteError, read_spool, replay
from tunefleet.search.tracking._writer import (
    CreateRun,
    LogArtifacts,
    LogBatch,
    LogText,
    Op,
    SetTerminated,
    TrackingWriter,
    write_spool,
)
from tunefleet.spaces import records as rec

BIN = Path(sys.executable).parent
FORK = multiprocessing.get_context("fork")
WRITERS, EPOCHS = 16, 20  # 16 searches x 20 epochs x every epoch metric


def _epoch(key: str, epoch: int) -> LogBatch:
    """One epoch report as the driver batches it: every EPOCH_METRICS value at step = epoch, and a
    tag each batch overwrites, so its final value shows the batches were applied in order."""
    now = 1_700_000_000_000 + epoch
    metrics = tuple((name, epoch + i / 100, now, epoch) for i, name in enumerate(rec.EPOCH_METRICS))
    return LogBatch(key=key, metrics=metrics, tags={"test.last_epoch": str(epoch)})


STORES = ("sqlite", "postgresql")


@pytest.fixture(params=STORES)
def new_store(request, tmp_path) -> str:
    """The URI of a new, empty store: a SQLite file, or a database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'new.db'}"
    return str(request.getfixturevalue("postgres").new_database())


@contextlib.contextmanager
def _reading(uri: str) -> Iterator[None]:
    """A read transaction held open on ``uri``'s metrics table, as the MLflow UI paging through a
    long metric history holds one."""
    if uri.startswith("sqlite:///"):
        reader: Any = sqlite3.connect(uri.removeprefix("sqlite:///"), isolation_level=None)
        reader.execute("BEGIN")
    else:
        import psycopg

        reader = psycopg.connect(uri)  # not autocommit: the SELECT opens a transaction
    try:
        reader.execute("SELECT count(*) FROM metrics").fetchone()
        yield
    finally:
        reader.rollback()  # both drivers end the open transaction this way
        reader.close()


def _steps(client: MlflowClient, run_id: str) -> dict[str, list[int]]:
    return {m: [x.step for x in client.get_metric_history(run_id, m)] for m in rec.EPOCH_METRICS}


def _capture_output(log: Path) -> None:
    """In a forked child: stderr (fd 2 and sys.stderr) and every WARNING+ record go to ``log``."""
    out = log.open("w", buffering=1)
    os.dup2(out.fileno(), 2)
    sys.stderr = out
    handler = logging.StreamHandler(out)
    handler.setLevel(logging.WARNING)
    for name in ("", "mlflow"):  # MLflow's logger has a handler of its own
        logging.getLogger(name).handlers = [handler]


def _fork_all(target: Callable[..., Any], tmp_path: Path, args: list[tuple[Any, ...]]) -> tuple[list[Any], str]:
    """Run ``target(*args, barrier, results, log)`` in one forked process per args, released
    together; return the results (sorted) and every child's stderr."""
    barrier, results = FORK.Barrier(len(args)), FORK.Queue()
    logs = [tmp_path / f"child-{i}.log" for i in range(len(args))]
    procs = [FORK.Process(target=target, args=(*a, barrier, results, log)) for a, log in zip(args, logs, strict=True)]
    for proc in procs:
        proc.start()
    got = [results.get(timeout=240) for _ in procs]
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    return sorted(got, key=str), "".join(log.read_text() for log in logs)


def _create_in_new_store(uri: str, name: str, barrier: Any, results: Any, log: Path) -> None:
    _capture_output(log)
    try:
        barrier.wait(60)
        open_store(uri)
        client = MlflowClient(uri)
        experiment_id = client.create_experiment(name)
        run = client.create_run(experiment_id, run_name=name)
        results.put((name, experiment_id, run.info.run_id))
    except BaseException:
        traceback.print_exc()
        results.put((name, None, None))


def test_processes_starting_together_on_a_new_store_all_succeed(new_store, tmp_path, monkeypatch):
    """Scenario 10, first half. Nothing lost means: each of 4 processes that open the same new
    store at the same moment (MLflow's migrations would race, on SQLite and on PostgreSQL alike)
    creates its experiment and run, and none prints a traceback; a SQLite file ends in WAL mode."""
    monkeypatch.chdir(tmp_path)
    uri = new_store
    got, stderr = _fork_all(_create_in_new_store, tmp_path, [(uri, f"search-{i}") for i in range(4)])
    assert all(run_id for _, _, run_id in got), stderr
    assert "Traceback" not in stderr and "duplicate column" not in stderr, stderr
    client = MlflowClient(uri)
    for name, experiment_id, run_id in got:
        assert (
            client.get_run(run_id).info.experiment_id
            == experiment_id
            == client.get_experiment_by_name(name).experiment_id
        )
    if uri.startswith("sqlite:///"):
        assert sqlite3.connect(tmp_path / "new.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_closed_stores_leave_every_write_in_the_database_file(tmp_path):
    """What ``tunefleet`` does before it exits without the last garbage collection: after
    ``close_stores`` the WAL is gone and a copy of the database file alone holds the last write."""
    database = tmp_path / "closing.db"
    uri = f"sqlite:///{database}"
    open_store(uri)
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("closing"))
    client.log_metric(run.info.run_id, "val_acc", 0.75)
    assert Path(f"{database}-wal").stat().st_size > 0  # the write waits in the WAL until the last close
    close_stores()
    assert not Path(f"{database}-wal").exists()
    copy = shutil.copy(database, tmp_path / "copy.db")
    rows = sqlite3.connect(copy).execute("SELECT value FROM metrics WHERE run_uuid = ?", (run.info.run_id,))
    assert rows.fetchall() == [(0.75,)]


def _write_rows(uri: str, experiment_id: str, index: int, barrier: Any, results: Any, log: Path) -> None:
    _capture_output(log)
    try:
        open_store(uri)
        writer = TrackingWriter(uri)
        barrier.wait(120)
        start = time.monotonic()
        writer.submit(CreateRun(key="trial", experiment_id=experiment_id, run_name=f"writer-{index}"))
        for epoch in range(EPOCHS):
            writer.submit(_epoch("trial", epoch))
        writer.submit(SetTerminated(key="trial"))
        spooled = writer.close(120, log.with_suffix(".spool"))
        results.put((index, writer.run_id("trial"), time.monotonic() - start, sum(writer.rejected.values()), spooled))
    except BaseException:
        traceback.print_exc()
        results.put((index, None, 0.0, -1, None))


def test_sixteen_writer_processes_on_one_store_lose_no_row(new_store, tmp_path, monkeypatch):
    """Scenario 10, second half. Nothing lost means: 16 processes, each with its own writer,
    log 20 epoch batches of the 10 epoch metrics (3200 rows) to one store (SQLite, PostgreSQL) at
    once, while a reader holds a read transaction open as the MLflow UI does; every row is in the
    store afterwards, once, at its step; every run is FINISHED; no write was refused or spooled;
    and "database is locked" reached no child's stderr or log."""
    monkeypatch.chdir(tmp_path)
    uri = new_store
    # Set up in a child: an engine made here would be inherited, connections and all, by the writers.
    [(_, experiment_id, _)], _ = _fork_all(_create_in_new_store, tmp_path, [(uri, "contention")])
    with _reading(uri):
        got, stderr = _fork_all(_write_rows, tmp_path, [(uri, experiment_id, i) for i in range(WRITERS)])
    assert "database is locked" not in stderr and "Traceback" not in stderr, stderr
    client = MlflowClient(uri)
    for index, run_id, _, refused, spooled in got:
        assert run_id is not None and refused == 0 and spooled is None, (index, stderr)
        assert _steps(client, run_id) == {m: list(range(EPOCHS)) for m in rec.EPOCH_METRICS}
        assert client.get_run(run_id).info.status == "FINISHED"
    slowest = max(seconds for _, _, seconds, _, _ in got)
    print(f"{WRITERS} writers: {WRITERS * EPOCHS * len(rec.EPOCH_METRICS)} rows in {slowest:.1f} s")


def test_a_refused_write_is_counted_and_the_rest_arrive(tmp_path, monkeypatch, caplog):
    """A permanent error is dropped, not retried forever. Nothing lost means: the write MLflow
    refuses (a param logged again with another value, which can never succeed) is counted and
    logged once, and every write after it still lands."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    open_store(uri)
    experiment_id = MlflowClient(uri).create_experiment("refused")
    writer = TrackingWriter(uri)
    writer.submit(CreateRun(key="t", experiment_id=experiment_id))
    writer.submit(LogBatch(key="t", params={"lr": "0.1"}))
    writer.submit(LogBatch(key="t", params={"lr": "0.2"}))
    writer.submit(_epoch("t", 0))
    writer.submit(SetTerminated(key="t", status="KILLED"))
    assert writer.close(30, tmp_path / "spool.jsonl") is None
    assert writer.rejected == Counter({"log_batch": 1}) and writer.delivered == 4
    assert len([r for r in caplog.records if "refused a write" in r.getMessage()]) == 1
    run = MlflowClient(uri).get_run(writer.run_id("t") or "")
    assert run.data.params == {"lr": "0.1"} and run.info.status == "KILLED"
    assert run.data.metrics["val_acc"] == pytest.approx(0.03)


def test_replay_command_applies_a_spool_and_refuses_a_bad_one(tmp_path, run_cli):
    """``tunefleet replay`` as the command line runs it. Nothing lost means: a spool's writes all
    land (a run it creates, writes to a run it names by id), the spool becomes ``.replayed``; a
    missing or damaged spool, or a store that does not exist, is one error line with exit 2 and
    the store is left as it was."""
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    open_store(uri)
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("replay")
    search = client.create_run(experiment_id).info.run_id
    spool = write_spool(tmp_path / "s.jsonl", uri, {"search": search}, [
        LogBatch(key="search", metrics=(("wall_s", 12.5, 1, 0),)),
        CreateRun(key="t", experiment_id=experiment_id, run_name="late"),
        _epoch("t", 0),
        SetTerminated(key="search"),
    ])  # fmt: skip
    bad = tmp_path / "bad.jsonl"
    bad.write_text(spool.read_text().replace('"log_batch"', '"log_batches"'))
    for args in (["replay", str(tmp_path / "nope.jsonl")], ["replay", str(bad)],
                 ["replay", str(spool), "--tracking-uri", f"sqlite:///{tmp_path / 'typo.db'}"]):  # fmt: skip
        result = run_cli(*args)
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert not (tmp_path / "typo.db").exists()
    assert client.search_runs([experiment_id]) and len(client.search_runs([experiment_id])) == 1
    result = run_cli("replay", str(spool))
    assert result.returncode == 0, result.stdout + result.stderr
    assert not spool.exists() and spool.with_name("s.jsonl.replayed").is_file()
    late = client.search_runs([experiment_id], "attributes.run_name = 'late'")
    assert len(late) == 1 and late[0].data.metrics["epoch"] == 0.0
    assert client.get_run(search).info.status == "FINISHED" and client.get_run(search).data.metrics["wall_s"] == 12.5


class MlflowServer:
    """A real ``mlflow server`` on 127.0.0.1 with a SQL store (``store``: SQLite or PostgreSQL)
    and proxied artifacts, which can be killed (SIGKILL to its process group: an outage, not a
    shutdown) and started again on the same port and store."""

    def __init__(self, folder: Path, store: str) -> None:
        self.folder = folder
        self.store = store
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 180) -> None:
        command = [str(BIN / "mlflow"), "server", "--host=127.0.0.1", f"--port={self.port}", "--workers=1",
                   f"--backend-store-uri={self.store}", "--serve-artifacts",
                   f"--artifacts-destination={self.folder / 'artifacts'}"]  # fmt: skip
        # No job-executor processes: they are not what these tests are about, and slow the start.
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        with (self.folder / "server.log").open("ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.url}/health", timeout=2):
                return
            assert self.proc.poll() is None, (self.folder / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server did not come up"
            time.sleep(0.3)

    def kill(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):  # already gone
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
            self.proc = None


@pytest.fixture
def server(new_store, tmp_path, monkeypatch) -> Iterator[MlflowServer]:
    """The server on a new store of each kind, and MLflow's own HTTP retries cut to about 2 s (2
    retries, backoff 0 then 2 s), so an outage outlasts them within the test."""
    for name, value in {"MAX_RETRIES": "2", "BACKOFF_FACTOR": "1", "BACKOFF_JITTER": "0", "TIMEOUT": "10"}.items():
        monkeypatch.setenv(f"MLFLOW_HTTP_REQUEST_{name}", value)
    monkeypatch.chdir(tmp_path)
    open_store(new_store)  # migrated once before the server starts, as `tunefleet up` does
    srv = MlflowServer(tmp_path, new_store)
    try:
        yield srv
    finally:
        srv.kill()


def _checkpoint(folder: Path, text: str) -> LogArtifacts:
    folder.mkdir(parents=True)
    (folder / rec.WEIGHTS).write_text(text)
    return LogArtifacts(key=folder.name, local_dir=str(folder), artifact_path="checkpoint")


def _artifact(client: MlflowClient, run_id: str, path: str, tmp_path: Path) -> str:
    return Path(client.download_artifacts(run_id, path, str(tmp_path / "downloads" / run_id))).read_text()


def _writer_with_a_run(server: MlflowServer, tmp_path: Path) -> tuple[MlflowClient, str, TrackingWriter]:
    """Start the server; return a client, an experiment, and a writer that has delivered run
    ``t1`` with epochs 0-2 and a checkpoint."""
    server.start()
    client = MlflowClient(server.url)
    experiment_id = client.create_experiment("faults")
    writer = TrackingWriter(server.url, max_backoff_s=1.0)
    writer.submit(CreateRun(key="t1", experiment_id=experiment_id, run_name="t1"))
    for epoch in range(3):
        writer.submit(_epoch("t1", epoch))
    writer.submit(_checkpoint(tmp_path / "t1", "before"))
    assert writer.flush(60)
    return client, experiment_id, writer


@pytest.mark.slow
@pytest.mark.cluster
def test_writes_held_through_a_server_restart_all_arrive_in_order(server, tmp_path, caplog):
    """Scenario 11, the server comes back. Nothing lost means: every write submitted before,
    during (for longer than MLflow's retry window) and after the outage is in the store once:
    each metric's history has every step exactly once, the last tag written is the last
    submitted (order kept), the checkpoints and the text are artifacts, a run created during
    the outage exists once, no write was refused; submit never blocked; one warning when the
    outage began and one when it ended, naming the held writes."""
    caplog.set_level(logging.WARNING, logger="tunefleet.search.tracking._writer")
    client, experiment_id, writer = _writer_with_a_run(server, tmp_path)

    server.kill()
    during: list[Op] = [_epoch("t1", epoch) for epoch in range(3, 10)]
    during += [CreateRun(key="t2", experiment_id=experiment_id, run_name="t2"), _epoch("t2", 0)]
    during += [_checkpoint(tmp_path / "t2", "during"), LogText(key="t2", text="notes", artifact_file="notes.txt")]
    during += [SetTerminated(key="t1"), SetTerminated(key="t2", status="KILLED")]
    slowest = 0.0
    for op in during:
        start = time.monotonic()
        writer.submit(op)
        slowest = max(slowest, time.monotonic() - start)
        time.sleep(0.4)  # 4.4 s in all: past MLflow's ~2 s retry window
    assert slowest < 0.5 and writer.pending == len(during) and writer.delivered == 5
    server.start()
    assert writer.flush(120)

    t1, t2 = writer.run_id("t1"), writer.run_id("t2")
    assert t1 and t2 and not writer.rejected
    assert _steps(client, t1) == {m: list(range(10)) for m in rec.EPOCH_METRICS}
    assert _steps(client, t2) == {m: [0] for m in rec.EPOCH_METRICS}
    assert client.get_run(t1).data.tags["test.last_epoch"] == "9"
    assert [client.get_run(r).info.status for r in (t1, t2)] == ["FINISHED", "KILLED"]
    assert len(client.search_runs([experiment_id], "attributes.run_name = 't2'", ViewType.ALL)) == 1
    assert _artifact(client, t1, f"checkpoint/{rec.WEIGHTS}", tmp_path) == "before"
    assert _artifact(client, t2, f"checkpoint/{rec.WEIGHTS}", tmp_path) == "during"
    assert _artifact(client, t2, "notes.txt", tmp_path) == "notes"
    warnings = [r.getMessage() for r in caplog.records if r.name == "tunefleet.search.tracking._writer"]
    assert len(warnings) == 2 and "not taking writes" in warnings[0], warnings
    assert f"the {len(during)} writes held" in warnings[1], warnings
    assert writer.close(10, tmp_path / "spool.jsonl") is None


@pytest.mark.slow
@pytest.mark.cluster
def test_writes_left_at_close_are_spooled_exactly_and_replay_delivers_them(server, tmp_path):
    """Scenario 11, the server stays down past ``close``. Nothing lost means: the spool holds
    exactly the writes submitted after the server died, in order (and the run id of the run made
    before), the report counts them per kind and per run; after the server is back, ``replay``
    applies them all, the store then holds every write once, and replaying the same spool again
    changes nothing (no second run, no extra metric row)."""
    client, experiment_id, writer = _writer_with_a_run(server, tmp_path)
    t1 = writer.run_id("t1")

    server.kill()
    held: list[Op] = [_epoch("t1", epoch) for epoch in range(3, 6)]
    create_b = CreateRun(key="b", experiment_id=experiment_id)
    held += [_checkpoint(tmp_path / "spooled" / "t1", "after"), create_b]
    held += [_epoch("b", 0), _epoch("b", 1), LogText(key="b", text="b notes", artifact_file="notes.txt")]
    held += [SetTerminated(key="t1"), SetTerminated(key="b")]
    for op in held:
        writer.submit(op)
    report = writer.close(3, tmp_path / "spool.jsonl")
    assert report is not None and report.path == tmp_path / "spool.jsonl" and report.ops == len(held)
    assert report.by_kind == dict(Counter(op.kind for op in held))
    assert report.by_run == {"t1": 5, "b": 5} and report.runs_not_created == ["b"]
    assert f"tunefleet replay {report.path}" in report.message()
    spool = read_spool(report.path)
    assert spool.ops == held and spool.run_ids == {"t1": t1} and spool.tracking_uri == server.url
    with pytest.raises(ReplayIncompleteError):
        replay(report.path, timeout_s=2)  # still down: the spool keeps every write
    assert read_spool(report.path).ops == held

    server.start()
    assert t1 and _steps(client, t1)["val_acc"] == [0, 1, 2]  # none of the held writes slipped through
    again = shutil.copy(report.path, tmp_path / "copy.jsonl")
    assert replay(report.path) == len(held)
    assert not report.path.exists() and (tmp_path / "spool.jsonl.replayed").is_file()
    assert replay(again) == len(held)  # the same writes once more: nothing may change

    [b] = client.search_runs([experiment_id], f"tags.`{rec.CREATE_KEY_TAG}` = '{create_b.create_key}'", ViewType.ALL)
    assert len(client.search_runs([experiment_id], "", ViewType.ALL)) == 2  # t1 and b, once each
    assert _steps(client, t1) == {m: list(range(6)) for m in rec.EPOCH_METRICS}
    assert _steps(client, b.info.run_id) == {m: [0, 1] for m in rec.EPOCH_METRICS}
    assert [client.get_run(r).info.status for r in (t1, b.info.run_id)] == ["FINISHED", "FINISHED"]
    assert _artifact(client, t1, f"checkpoint/{rec.WEIGHTS}", tmp_path) == "after"
    assert _artifact(client, b.info.run_id, "notes.txt", tmp_path) == "b notes"
