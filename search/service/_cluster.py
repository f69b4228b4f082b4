"""Talking to a Ray cluster from outside it: the auth token, reachability, and what its nodes hold.

Ray 2.60 turns token authentication on; clients send ``Authorization: Bearer <token>``. The token
is taken the way Ray documents: ``$RAY_AUTH_TOKEN`` when set, else ``ray get-auth-token`` (which
reads ``$RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``). Nothing here turns authentication off.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tunefleet.spaces import Resources, SpecError

REACH_TIMEOUT_S = 5.0  # per try; two tries keep an unreachable address under ~10 s


def ray_executable() -> str:
    beside = Path(sys.executable).with_name("ray")
    return str(beside) if beside.exists() else (shutil.which("ray") or "ray")


def ray_token(generate: bool = False) -> str:
    """The cluster token: ``$RAY_AUTH_TOKEN``, else ``ray get-auth-token [--generate]``."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"]
    if generate:
        return _get_auth_token(generate=True)
    # Where `ray get-auth-token` looks: the answer stays the same while these do.
    return _known_token(os.environ.get("RAY_AUTH_TOKEN_PATH", ""), str(Path.home()))


@functools.lru_cache(maxsize=8)
def _known_token(token_path: str, home: str) -> str:
    """Asked once per process for each place the token may be: ``ray get-auth-token`` is a Python
    process that imports Ray, over a second that every command talking to the cluster paid again."""
    return _get_auth_token(generate=False)


def _get_auth_token(generate: bool) -> str:
    command = [ray_executable(), "get-auth-token", *(["--generate"] if generate else [])]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if result.returncode != 0 or not result.stdout.strip():
        raise SpecError("RAY_AUTH_TOKEN", "no Ray token: set RAY_AUTH_TOKEN or run `ray get-auth-token --generate`")
    return result.stdout.strip()


def auth_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _get(url: str, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # http(s) only
            return int(response.status), response.read()
    except urllib.error.HTTPError as err:
        return err.code, b""


def http_ok(url: str, headers: dict[str, str], timeout: float = REACH_TIMEOUT_S) -> bool:
    try:
        return _get(url, headers, timeout)[0] == 200
    except (OSError, ValueError):
        return False


def check_dashboard(address: str, headers: dict[str, str], field: str = "--address") -> None:
    """The Ray dashboard (Jobs API) at ``address`` answers and takes our token; else one clear line."""
    if not address.startswith(("http://", "https://")):
        raise SpecError(field, f"expected the dashboard's http://HOST:PORT (Jobs API), got {address!r}")
    status = 0
    for _ in range(2):
        try:
            status = _get(f"{address}/api/version", headers, REACH_TIMEOUT_S)[0]
            break
        except (OSError, ValueError):
            continue
    if status in (401, 403):
        raise SpecError(field, f"the cluster at {address} refused the Ray token (check RAY_AUTH_TOKEN)")
    if status != 200:
        raise SpecError(field, f"no Ray dashboard answers at {address} (is the cluster up?)")


def check_tracking_server(uri: str, field: str = "--tracking-uri") -> None:
    """A search on a cluster records to an MLflow server every node can reach."""
    if not uri.startswith(("http://", "https://")):
        raise SpecError(field, f"a cluster search needs an MLflow server (http://HOST:PORT), got {uri!r}")
    if not any(http_ok(f"{uri.rstrip('/')}/health", {}) for _ in range(2)):
        raise SpecError(field, f"no MLflow server answers at {uri}")


def node_resources(address: str, headers: dict[str, str]) -> list[dict[str, float]]:
    """``resources_total`` of every alive node, from the dashboard's state API."""
    status, body = _get(f"{address}/api/v0/nodes?detail=1&limit=1000", headers, 30)
    if status != 200:
        raise SpecError("--address", f"could not list the cluster's nodes at {address} (HTTP {status})")
    nodes = json.loads(body)["data"]["result"]["result"]
    return [dict(n.get("resources_total", {})) for n in nodes if n.get("state") == "ALIVE"]


def may_autoscale(address: str, headers: dict[str, str]) -> bool:
    """Whether the cluster's autoscaler lists worker node types it may launch (a ``ray up`` cluster
    scaling from zero GPU nodes); a cluster of ``ray start`` nodes lists none."""
    status, body = _get(f"{address}/api/cluster_status", headers, 30)
    text = str(json.loads(body).get("data", {}).get("autoscalingStatus") or "") if status == 200 else ""
    _, _, types = text.partition("Worker node types:")
    return any(line.strip() for line in types.splitlines())


def autoscaler_node_shapes() -> list[dict[str, float]]:
    """The node types the autoscaler may launch (their resources), as it reported them to the GCS;
    empty without an autoscaler config. Read through Ray's internal state accessor (no public API)."""
    try:
        from ray._private.state import state

        config = state.get_cluster_config()
    except Exception:  # an older or newer Ray without it: judge by the nodes that are up
        return []
    if config is None:
        return []
    return [{k: float(v) for k, v in group.resources.items()} for group in config.node_group_configs if group.max_count]


def workers_that_fit(node: dict[str, Any], res: Resources) -> int:
    """How many of one trial's workers a node could ever hold (its total, not what is free now)."""
    counts = [math.floor(node.get("CPU", 0.0) / res.cpus_per_worker + 1e-9)]
    if res.gpus_per_worker > 0:
        counts.append(math.floor(node.get("GPU", 0.0) / res.gpus_per_worker + 1e-9))
    return max(0, min(counts))


def check_trial_fits(res: Resources, nodes: list[dict[str, Any]]) -> None:
    """Refuse a trial no node (or, for DDP, no set of nodes) of the cluster could ever hold,
    instead of letting it wait forever."""
    if not nodes:
        raise SpecError("--address", "the cluster has no alive nodes")
    most_gpus = max(n.get("GPU", 0.0) for n in nodes)
    most_cpus = max(n.get("CPU", 0.0) for n in nodes)
    if res.gpus_per_worker > most_gpus:
        raise SpecError(
            "resources.gpus_per_worker",
            f"{res.gpus_per_worker:g} GPUs per worker, but no node has more than {most_gpus:g}",
        )
    if res.cpus_per_worker > most_cpus:
        raise SpecError(
            "resources.cpus_per_worker",
            f"{res.cpus_per_worker:g} CPUs per worker, but no node has more than {most_cpus:g}",
        )
    room = sum(workers_that_fit(n, res) for n in nodes)
    if room < res.workers_per_trial:
        raise SpecError(
            "resources.workers_per_trial",
            f"{res.workers_per_trial} workers per trial, but the whole cluster holds at most {room} such workers",
        )
