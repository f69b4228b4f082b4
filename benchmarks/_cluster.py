"""A real 2-node Ray cluster on loopback for a benchmark: ``ray start --head`` and one ``ray start
--address`` node, 1 CPU each, token authentication on (the token is Ray's own, from ``ray
get-auth-token --generate``, which writes ``~/.ray/auth_token`` where none exists: as ``ray start``
would), every port free. Each node runs in a process group of its own and is stopped by it, so no
other Ray process on the machine is touched.

    with loopback_cluster() as address:   # "127.0.0.1:PORT", for start_ray(address)
        ...
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tunefleet.search.service._service import stop_groups

RAY = str(Path(sys.executable).parent / "ray")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _node(head: bool, gcs_port: int, temp: str, log: Path) -> subprocess.Popen[bytes]:
    command = [RAY, "start", "--block", "--num-cpus=1", "--disable-usage-stats", f"--temp-dir={temp}"]
    command += [f"--dashboard-agent-listen-port={_free_port()}", f"--metrics-export-port={_free_port()}"]
    if head:
        command += ["--head", f"--port={gcs_port}", "--include-dashboard=false"]
        command += [f"--ray-client-server-port={_free_port()}"]
    else:
        command += [f"--address=127.0.0.1:{gcs_port}"]
    with log.open("ab") as out:
        env = {**os.environ, "RAY_AUTH_MODE": "token"}
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _alive_nodes(address: str) -> int:
    """How many nodes the cluster lists as alive, asked in a fresh process (this one stays unjoined)."""
    script = "import ray; ray.init(address=%r, logging_level='ERROR'); print(sum(n['Alive'] for n in ray.nodes()))"
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    try:
        out = subprocess.run(
            [sys.executable, "-c", script % address], capture_output=True, text=True, env=env, timeout=60
        )
    except subprocess.TimeoutExpired:
        return 0
    return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else 0


@contextmanager
def loopback_cluster(nodes: int = 2, timeout_s: float = 120) -> Iterator[str]:
    """Start the cluster, wait until all ``nodes`` are alive, yield its GCS address, stop it."""
    subprocess.run([RAY, "get-auth-token", "--generate"], capture_output=True, check=True)
    temps = [tempfile.mkdtemp(prefix="tfbray") for _ in range(nodes)]  # one per node, as on separate machines
    gcs_port = _free_port()
    address = f"127.0.0.1:{gcs_port}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i, temp in enumerate(temps):
            procs.append(_node(i == 0, gcs_port, temp, Path(temp) / "node.log"))
            if i == 0:
                time.sleep(3)  # the head's GCS listens before a worker node tries to register
        deadline = time.monotonic() + timeout_s
        while _alive_nodes(address) < nodes:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the {nodes}-node loopback cluster at {address} did not come up")
            time.sleep(1)
        yield address
    finally:
        stop_groups([(proc.pid, True) for proc in procs])  # each a `ray start --block` node
        for proc in procs:
            proc.poll()  # each is reaped: the Popen notes it (no ResourceWarning at exit)
        for temp in temps:
            shutil.rmtree(temp, ignore_errors=True)
