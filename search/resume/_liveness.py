"""Is a search's driver still there? Read from the search run's tags, for ``trials``, ``status``
and ``resume``.

A driver killed outright (SIGKILL, a reboot, a lost head node) cannot close its MLflow runs, so
they stay ``RUNNING``. The driver therefore tags its search run with its host and pid and
refreshes a heartbeat every ``HEARTBEAT_EVERY_S``. On the same host the pid answers at once
(checked against the driver's recorded start time, since pids are reused); elsewhere a heartbeat older
than three beats means the driver is gone.
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING, Literal

from tunefleet.spaces import records as rec

if TYPE_CHECKING:
    from mlflow.entities import Run

SearchState = Literal["running", "interrupted", "finished"]
STALE_AFTER_S = 3 * rec.HEARTBEAT_EVERY_S


def _pid_is_the_driver(pid: int, started_s: float) -> bool:
    import psutil

    try:
        process = psutil.Process(pid)
        # Another process that got the pid later started at another time.
        return bool(abs(process.create_time() - started_s) < 2 and process.status() != "zombie")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def driver_alive(run: Run, now: float | None = None) -> bool:
    """Whether the driver of a ``RUNNING`` search run is still alive."""
    tags = run.data.tags
    host, pid, beat = tags.get(rec.DRIVER_HOST_TAG), tags.get(rec.DRIVER_PID_TAG), tags.get(rec.HEARTBEAT_TAG)
    started = tags.get(rec.DRIVER_STARTED_TAG)
    if host == socket.gethostname() and pid and pid.isdigit() and started:
        return _pid_is_the_driver(int(pid), float(started))
    if beat is None:  # a search from before heartbeats: trust its status
        return True
    return (now or time.time()) - float(beat) < STALE_AFTER_S


def search_state(run: Run) -> SearchState:
    """``running`` (its driver is alive), ``finished``, or ``interrupted`` (stopped, failed, or
    its driver is gone): the last can be continued with ``tunefleet resume``."""
    status = run.info.status
    if status == "RUNNING":
        return "running" if driver_alive(run) else "interrupted"
    return "finished" if status == "FINISHED" else "interrupted"


def resume_command(experiment: str, run_id: str, uri: str = rec.DEFAULT_TRACKING_URI) -> str:
    store = "" if uri == rec.DEFAULT_TRACKING_URI else f" --tracking-uri {uri}"
    return f"tunefleet resume {experiment} --search-run {run_id}{store}"
