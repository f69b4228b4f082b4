"""A real 2-node Ray cluster on loopback (``ray start`` processes, 1 CPU each, token auth on) and a
real ``mlflow server`` with a temporary SQLite store and proxied artifacts, for the cluster tests.

Every process is started in a session of its own and stopped by its own process group, so the
fixture never touches another Ray on the machine. The token is Ray's own (``ray get-auth-token
--generate``); authentication stays on.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tunefleet.search.service._service import stop_groups as _stop_groups

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _token() -> str:
    out = subprocess.run([str(BIN / "ray"), "get-auth-token", "--generate"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _get(url: str, token: str | None = None) -> bytes | None:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return response.read()
    except OSError:
        return None


def _spawn(command: list[str], log: Path, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RAY_AUTH_MODE": "token", **(extra_env or {})}
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _is_ray_node(proc: subprocess.Popen[bytes]) -> bool:
    args = proc.args if isinstance(proc.args, list) else []
    return bool(args) and Path(str(args[0])).name == "ray" and "start" in args


def stop_groups(procs: list[subprocess.Popen[bytes]]) -> None:
    """Stop each process's group side by side, as `tunefleet down` stops its own (a Ray node by a
    SIGTERM to its `ray start` alone, then SIGKILL for what is left after 20 s)."""
    _stop_groups([(proc.pid, _is_ray_node(proc)) for proc in procs])
    for proc in procs:
        proc.poll()  # stop_groups reaped it: the Popen notes that it ended (returncode 0, the status is gone)


def _wait(check: Callable[[], object], what: str, timeout: float = 120, log: Path | None = None) -> None:
    """Wait for ``check``; on timeout the error carries the end of the process's ``log``, the one
    place a CI run keeps to say why (the temp folders are gone by then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:]) if log and log.is_file() else ""
    raise TimeoutError(
        f"{what} did not come up within {timeout:.0f} s" + (f"; the end of {log}:\n{tail}" if tail else "")
    )


@dataclass
class LoopbackCluster:
    dashboard: str  # http://127.0.0.1:PORT: Jobs API
    gcs: str
    tracking_uri: str
    storage: Path
    token: str
    procs: dict[str, subprocess.Popen[bytes]]
    folder: Path  # logs
    temps: list[str]  # one Ray temp dir per node

    def alive_nodes(self) -> list[dict]:
        body = _get(f"{self.dashboard}/api/v0/nodes?detail=1", self.token)
        nodes = json.loads(body)["data"]["result"]["result"] if body else []
        return [n for n in nodes if n.get("state") == "ALIVE"]

    def add_node(self, name: str) -> dict:
        """Start one more 1-CPU worker node (``procs[name]``) and wait until Ray lists it; its node record."""
        before = {n["node_id"] for n in self.alive_nodes()}
        self.temps.append(tempfile.mkdtemp(prefix="tfray"))
        gcs_port, dashboard_port = int(self.gcs.rsplit(":", 1)[1]), int(self.dashboard.rsplit(":", 1)[1])
        self.procs[name] = _ray_node(False, gcs_port, dashboard_port, self.folder / f"{name}.log", self.temps[-1])
        _wait(
            lambda: len({n["node_id"] for n in self.alive_nodes()} - before) == 1,
            f"node {name}",
            log=self.folder / f"{name}.log",
        )
        (added,) = [n for n in self.alive_nodes() if n["node_id"] not in before]
        return added

    def close(self) -> None:
        """Stop every process it started (by its own process group) and remove the nodes' temp dirs."""
        stop_groups(list(self.procs.values()))
        for temp in self.temps:
            shutil.rmtree(temp, ignore_errors=True)


def _ray_node(head: bool, gcs_port: int, dashboard_port: int, log: Path, temp: str) -> subprocess.Popen[bytes]:
    command = [str(BIN / "ray"), "start", "--block", "--num-cpus=1", "--disable-usage-stats", f"--temp-dir={temp}"]
    command += [f"--dashboard-agent-listen-port={free_port()}", f"--metrics-export-port={free_port()}"]
    if head:
        command += ["--head", f"--port={gcs_port}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}"]
        command += [f"--ray-client-server-port={free_port()}", "--include-dashboard=true"]
    else:
        command += [f"--address=127.0.0.1:{gcs_port}"]
    return _spawn(command, log)


@pytest.fixture(scope="session")
def loopback_cluster(tmp_path_factory) -> Iterator[LoopbackCluster]:
    """One cluster for the whole session: a test that loses a node adds its own first
    (``add_node``) and leaves the head and the worker as they were."""
    folder = tmp_path_factory.mktemp("cluster")
    token = _token()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    # A temp dir per node, as on separate machines: nodes sharing one would share (and clean up)
    # each other's runtime-env working dirs. Short, because Ray puts Unix sockets under it.
    temps = [tempfile.mkdtemp(prefix="tfray"), tempfile.mkdtemp(prefix="tfray")]
    try:
        # The MLflow server first, and up before any Ray node: a Ray node opens many ephemeral
        # ports, one of which could take a port chosen here before the server binds it.
        mlflow_port = free_port()
        tracking_uri = f"http://127.0.0.1:{mlflow_port}"
        procs["mlflow"] = _spawn(
            [str(BIN / "mlflow"), "server", "--host=127.0.0.1", f"--port={mlflow_port}", "--workers=1",
             f"--backend-store-uri=sqlite:///{folder / 'mlflow.db'}", "--serve-artifacts",
             f"--artifacts-destination={folder / 'artifacts'}"],
            folder / "mlflow.log",
            {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # as `tunefleet up` starts it
        )  # fmt: skip
        _wait(lambda: _get(f"{tracking_uri}/health") is not None, "the MLflow server", log=folder / "mlflow.log")
        gcs, dashboard = free_port(), free_port()
        procs["head"] = _ray_node(True, gcs, dashboard, folder / "head.log", temps[0])
        cluster = LoopbackCluster(
            f"http://127.0.0.1:{dashboard}", f"127.0.0.1:{gcs}", tracking_uri,
            folder / "ray-results", token, procs, folder, temps,
        )  # fmt: skip
        _wait(
            lambda: _get(f"{cluster.dashboard}/api/version", token) is not None, "the Ray head", log=folder / "head.log"
        )
        procs["worker"] = _ray_node(False, gcs, dashboard, folder / "worker.log", temps[1])
        _wait(lambda: len(cluster.alive_nodes()) == 2, "the worker node", log=folder / "worker.log")
        yield cluster
    finally:
        stop_groups(list(procs.values()))
        for temp in temps:
            shutil.rmtree(temp, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Stop the session's cluster right after the last test of the session that uses it (they run
    side by side: tests/conftest.py sorts them first), so it does not idle beside the rest of the
    suite. The last in the session's items, not "the next test does not use it": ``--ff`` and
    ``--nf`` reorder the items after that sort, and a user after a gap would find it stopped."""
    cluster = getattr(item, "funcargs", {}).get("loopback_cluster")
    yield
    if cluster is None:
        return
    users = [i for i in item.session.items if "loopback_cluster" in getattr(i, "fixturenames", ())]
    if users[-1] is item:
        cluster.close()


class PostgresServer:
    """A real PostgreSQL server (Debian's package, which ``make test`` installs) on 127.0.0.1 and a
    free port, its data in a temporary folder, with password authentication. PostgreSQL refuses to
    run as root, so as root it runs as the package's ``postgres`` user. Stopped by ``pg_ctl``,
    which signals the postmaster this fixture started (its data folder's ``postmaster.pid``)."""

    USER, PASSWORD = "tunefleet", "pg-test-password"

    def __init__(self) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            raise RuntimeError("PostgreSQL is not installed; `make test` installs Debian's postgresql")
        self.bin = found[-1].parent
        self.folder = Path(tempfile.mkdtemp(prefix="tfpg"))  # not under pytest's root-only tmp folders
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.databases = 0

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_user, str(self.bin / tool), *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        password = self.folder / "password"
        password.write_text(self.PASSWORD + "\n")
        if self.as_user:
            shutil.chown(self.folder, "postgres")
            shutil.chown(password, "postgres")
        data = str(self.folder / "data")
        self._run("initdb", "-D", data, "-U", self.USER, "--auth=scram-sha-256", f"--pwfile={password}",
                  "-E", "UTF8", "--no-sync")  # fmt: skip
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", data, "-l", str(self.folder / "server.log"), "-w", "-o", options, "start")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # never started, or already down
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    def uri(self, database: str, password: bool = True) -> str:
        auth = f"{self.USER}:{self.PASSWORD}" if password else self.USER
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A new, empty database; its URI (with the password)."""
        import psycopg

        self.databases += 1
        name = f"db{self.databases}"
        with psycopg.connect(self.uri("postgres"), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.uri(name)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session; each test takes a new database of its own."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()
