"""``tunefleet up`` / ``down``: a Ray head and an MLflow tracking server on this machine.

Both run as background processes in sessions of their own, so ``down`` stops exactly what ``up``
started (their process groups), and nothing else on the machine. Ray binds its dashboard (which
is also the Jobs API, i.e. code execution) to 127.0.0.1 with token authentication on; MLflow
listens on 127.0.0.1 with a SQLite store (or a team's PostgreSQL, ``_backend.py``) and proxied
artifacts (``--serve-artifacts``), so trials upload checkpoints through it. What ``up`` started is recorded in
``.tunefleet/service.json``; later commands run in this directory read it instead of flags.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel

from tunefleet.spaces import SpecError

from ._backend import prepare_backend_store, redact, server_workers
from ._cluster import auth_headers, http_ok, ray_executable, ray_token

STATE_DIR = Path(".tunefleet")
STATE_FILE = "service.json"
READY_TIMEOUT_S = 120.0
RAY_WORKER_PORTS = (10002, 19999)  # Ray's default range for worker processes: its own ports must lie outside


class Service(BaseModel):
    """What ``tunefleet up`` started, and where it answers."""

    ray_address: str  # GCS address: ray.init(address=...) and `ray start --address`
    dashboard: str  # Ray dashboard and Jobs API (http://127.0.0.1:PORT)
    tracking_uri: str  # MLflow tracking server (http://127.0.0.1:PORT)
    storage: str  # Ray Tune's state and checkpoints, shared by every search of this service
    backend_store: str = ""  # MLflow's store behind the server, its password masked
    ray_pid: int  # process-group leaders: what `down` stops
    mlflow_pid: int
    folder: str  # the service folder: store, artifacts, logs


def load_service(folder: Path = STATE_DIR) -> Service | None:
    path = folder / STATE_FILE
    return Service.model_validate_json(path.read_text()) if path.is_file() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_running(service: Service) -> bool:
    return _alive(service.ray_pid) and _alive(service.mlflow_pid)


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spawn(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    # A session of its own: the process group is stopped as a whole by `down`, and a Ctrl-C in
    # the terminal that ran `up` does not reach it.
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _start_ray(folder: Path, ports: dict[str, int], cpus: int | None, gpus: int | None) -> subprocess.Popen[bytes]:
    command = [
        ray_executable(),
        "start",
        "--head",
        "--block",  # stays in the foreground of its session: its group holds every Ray process
        f"--port={ports['ray']}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={ports['dashboard']}",
        "--include-dashboard=true",
        f"--ray-client-server-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        "--disable-usage-stats",
    ]
    command += [f"--num-cpus={cpus}"] if cpus is not None else []
    command += [f"--num-gpus={gpus}"] if gpus is not None else []
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    return _spawn(command, folder / "ray.log", env)


def default_store(folder: Path) -> str:
    return f"sqlite:///{folder.resolve() / 'mlflow.db'}"


def _start_mlflow(folder: Path, port: int, store: str) -> subprocess.Popen[bytes]:
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    command = [
        mlflow,
        "server",
        "--host=127.0.0.1",
        f"--port={port}",
        "--serve-artifacts",
        f"--artifacts-destination={folder / 'mlartifacts'}",
        f"--workers={server_workers(store)}",
    ]
    # The store by environment, not argv: a PostgreSQL URI may carry a password (_backend.py).
    env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": store}
    # MLflow's server job executor (its GenAI jobs: a runner and eight Huey consumers, each a
    # Python process importing MLflow, 14 s of CPU at start and ~1.2 GB) serves nothing a search
    # logs; a user who wants it sets the variable to true.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return _spawn(command, folder / "mlflow.log", env)


def _wait_ready(service: Service, procs: dict[str, subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    headers = auth_headers(ray_token())
    ray_ready = mlflow_ready = False
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {service.folder}/{name}.log")
        ray_ready = ray_ready or http_ok(f"{service.dashboard}/api/version", headers, timeout=2)
        mlflow_ready = mlflow_ready or http_ok(f"{service.tracking_uri}/health", {}, timeout=2)
        if ray_ready and mlflow_ready:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the service did not answer within {READY_TIMEOUT_S:.0f} s; see the logs in {service.folder}")


def up(
    folder: Path, cpus: int | None, gpus: int | None, ports: dict[str, int], store: str | None = None
) -> tuple[Service, bool]:
    """Start the service (or find it running); returns it and whether it was already up.
    ``store``: MLflow's backend store URI [default: SQLite in ``folder``]."""
    current = load_service(folder)
    if current is not None and is_running(current):
        return current, True
    for name, port in ports.items():
        if name != "mlflow" and RAY_WORKER_PORTS[0] <= port <= RAY_WORKER_PORTS[1]:
            raise SpecError(
                f"--{name}-port", f"{port} lies in Ray's worker port range {RAY_WORKER_PORTS}; pick another"
            )
        if not port_free(port):
            raise SpecError(f"--{name}-port", f"127.0.0.1:{port} is in use; pick another port")
    if store is not None:
        prepare_backend_store(store)  # refused before anything is started or written
    folder.mkdir(parents=True, exist_ok=True)
    folder = folder.resolve()
    store = store or default_store(folder)
    ray_token(generate=True)  # Ray's documented way: `ray get-auth-token --generate`
    ray_proc = _start_ray(folder, ports, cpus, gpus)
    mlflow_proc = _start_mlflow(folder, ports["mlflow"], store)
    service = Service(
        ray_address=f"127.0.0.1:{ports['ray']}",
        dashboard=f"http://127.0.0.1:{ports['dashboard']}",
        tracking_uri=f"http://127.0.0.1:{ports['mlflow']}",
        storage=str(folder / "ray-results"),
        backend_store=redact(store),
        ray_pid=ray_proc.pid,
        mlflow_pid=mlflow_proc.pid,
        folder=str(folder),
    )
    try:
        _wait_ready(service, {"ray": ray_proc, "mlflow": mlflow_proc})
    except BaseException:
        _stop_service(service)
        raise
    (folder / STATE_FILE).write_text(json.dumps(service.model_dump(), indent=2))
    return service, False


def _stop_service(service: Service) -> None:
    """Stop the Ray head and the MLflow server side by side (about 4 s; one after the other, 7)."""
    stop_groups([(service.ray_pid, True), (service.mlflow_pid, False)])


def stop_groups(groups: list[tuple[int, bool]], grace_s: float = 20.0) -> None:
    """Stop process groups side by side: each ``(pid, ray_node)`` group led by ``pid`` gets its
    SIGTERM, then SIGKILL if it is still there after ``grace_s``; returns once all are gone (or,
    past SIGKILL, after 10 s more: a process stuck in the kernel cannot be waited for). The test
    fixtures and the benchmarks' loopback cluster stop what they start with it too.

    A ``ray start --block`` node (``ray_node``) wants its SIGTERM alone (Kubernetes sends it so):
    it drains its node and then stops the processes it started. A SIGTERM to its whole group at
    once stops its GCS too, and its drain request then waits on that GCS until SIGKILL.
    """
    pending = [pid for pid, ray_node in groups if _terminate(pid, leader=ray_node)]
    deadline = time.monotonic() + grace_s
    left = [pid for pid in pending if not _gone_within(pid, max(0.0, deadline - time.monotonic()))]
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    for pid in left:
        _gone_within(pid, 10.0)  # SIGKILL is delivered at once, but exiting a large process takes a moment


def _terminate(pid: int, leader: bool) -> bool:
    """SIGTERM the process group led by ``pid`` (with ``leader``, the leader alone); whether it was there."""
    # A leader of ours that has exited but is not yet reaped would take the SIGTERM meant for its
    # group's processes as a zombie: reap it, so the group gets it below.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    try:
        (os.kill if leader else os.killpg)(pid, signal.SIGTERM)
    except ProcessLookupError:  # the leader is gone (reaped) but not its group: signal the group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    return True


def _gone_within(pid: int, seconds: float) -> bool:
    """Whether the process group led by ``pid`` is gone within ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        with contextlib.suppress(ChildProcessError):  # reap our own child, so it does not linger as a zombie
            os.waitpid(pid, os.WNOHANG)
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def down(folder: Path) -> Service | None:
    """Stop what ``up`` started; the store, artifacts and logs stay. None when nothing was up."""
    service = load_service(folder)
    if service is None:
        return None
    _stop_service(service)
    _forget_address(service.ray_address)
    (folder / STATE_FILE).unlink(missing_ok=True)
    return service


def _forget_address(address: str) -> None:
    """Remove Ray's note of the "current cluster" if it names ours, as ``ray stop`` would: else a
    later ``ray.init()`` here would try to join a cluster that is gone."""
    note = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    with contextlib.suppress(OSError):
        # Ray writes the node's IP there, we record 127.0.0.1: compare the GCS port.
        if note.read_text().strip().rsplit(":", 1)[-1] == address.rsplit(":", 1)[-1]:
            note.unlink()
