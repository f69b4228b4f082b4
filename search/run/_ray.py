"""Starting or joining Ray for a search: a quiet local Ray by default, or a cluster with its token."""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from pathlib import Path

# The thread stopping this process's Ray while the driver writes its report (``stop_ray_soon``).
_stopping: threading.Thread | None = None


def _token_auth_if_token() -> None:
    """Joining a cluster with a Ray token at hand: send it, as ``ray start`` does for its nodes
    (``RAY_AUTH_MODE=token`` when unset and ``$RAY_AUTH_TOKEN``, ``$RAY_AUTH_TOKEN_PATH`` or
    ``~/.ray/auth_token`` holds one). An explicit ``RAY_AUTH_MODE`` is left as it is."""
    has_token = any(os.environ.get(v) for v in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"))
    if "RAY_AUTH_MODE" not in os.environ and (has_token or (Path.home() / ".ray" / "auth_token").is_file()):
        os.environ["RAY_AUTH_MODE"] = "token"
        from ray._raylet import Config  # type: ignore[attr-defined]  # compiled, no stub

        Config.initialize("")  # Ray read its config when imported: make it see token mode, as `ray start` does


def start_ray(address: str | None, dashboard: bool = False) -> None:
    """Connect to a cluster at ``address``, or start a quiet local Ray on this machine's CPUs.

    ``dashboard``: multi-worker trials need it locally: Ray Train frees the worker group of a
    trial stopped early (by ASHA) through the state API, which the dashboard serves.
    """
    import ray

    # Tune's default CSV/JSON/TensorBoard loggers duplicate what MLflow records; skip the writes.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Tune logs each failed attempt's full traceback; the console shows one line and MLflow keeps
    # every traceback in the trial's error.txt.
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")
    # Checkpoints come only on improvement; Tune's warning about frequent state syncs is noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # With the file loggers off, Tune's result analysis cannot find progress files; MLflow has them.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    _join_stopping()  # a Ray still stopping (``stop_ray_soon``) would look up here, and then go
    if ray.is_initialized():
        return
    if address or os.environ.get("RAY_ADDRESS"):  # a job's driver: Ray sets RAY_ADDRESS for it
        _token_auth_if_token()
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    else:
        _start_local_ray(dashboard)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def _start_local_ray(dashboard: bool) -> None:
    """A new Ray here, even where `ray start` (or `tunefleet up`) runs one.

    Multi-worker trials (``dashboard``): every process of it is told its own address. Ray
    Train's placement-group cleaner (which frees the worker group of a trial stopped early) finds
    the cluster by auto-detection, which fails as soon as a second Ray runs on the machine; with
    ``RAY_ADDRESS`` in the job's environment it never has to guess. Ray reads the new head's GCS
    port from ``RAY_GCS_SERVER_PORT``, so the address is known first. Single-worker trials run no
    Ray Train and get no job environment.

    Ray's start of one worker per CPU for its first driver is off: those workers have no runtime
    environment, and Tune gives every trial actor one (``env_vars``, ray/tune/execution/
    class_cache.py), so no trial could use them. They only imported Ray (0.7-0.85 CPU-s a search
    between them, sampled) while the trials' own workers started beside them.
    """
    import ray
    from ray._private.services import get_node_ip_address

    port = _free_port()
    address = f"{get_node_ip_address()}:{port}"
    previous = os.environ.get("RAY_GCS_SERVER_PORT")
    os.environ["RAY_GCS_SERVER_PORT"] = str(port)
    try:
        ray.init(
            address="local",
            num_cpus=os.cpu_count(),
            include_dashboard=dashboard,
            logging_level=logging.WARNING,
            log_to_driver=False,
            runtime_env={"env_vars": {"RAY_ADDRESS": address}} if dashboard else None,
            _system_config={"prestart_worker_first_driver": False},
        )
    finally:
        if previous is None:
            del os.environ["RAY_GCS_SERVER_PORT"]
        else:
            os.environ["RAY_GCS_SERVER_PORT"] = previous


def stop_ray_soon() -> None:
    """Stop this process's Ray in a thread, for a command whose search has ended and that uses Ray
    no more (``tunefleet search``, ``resume``): ``ray.shutdown`` mostly waits, 1.3-1.4 s here, for
    Ray's processes to exit, and the report after the search needs MLflow, not Ray, so the two run
    side by side. Python's API and ``fit`` keep Ray for what they run next. ``ray_stopped`` waits."""
    global _stopping
    _join_stopping()
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        _stopping = threading.Thread(target=ray.shutdown, name="tunefleet-ray-stop", daemon=True)
        _stopping.start()


def _join_stopping() -> None:
    global _stopping
    if _stopping is not None:
        _stopping.join()
        _stopping = None


def ray_stopped() -> None:
    """Wait for ``stop_ray_soon``'s thread, if one runs; then stop a Ray still up (a command that
    ended before its trials did, by an error or Ctrl-C, never started that thread)."""
    _join_stopping()
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
