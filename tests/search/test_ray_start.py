"""The local Ray a search starts, and how the CLI stops it: in a fresh interpreter, as a search's is."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import glob, json, os
from tunefleet.search.run import _ray
_ray.start_ray(None)
import ray
from ray._private import ray_constants
node = ray._private.worker._global_node
raylet = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid

@ray.remote
def pid():
    return os.getpid()

task_pid = ray.get(pid.remote())
workers = glob.glob(os.path.join(node.get_session_dir_path(), "logs", "worker-*.out"))
_ray.stop_ray_soon()
stopping = _ray._stopping
_ray.ray_stopped()
print(json.dumps({
    "workers": [os.path.basename(w) for w in workers],
    "task_pid": task_pid,
    "stopped_in": stopping.name if stopping is not None else None,
    "ray_up": ray.is_initialized(),
    "raylet_alive": os.path.exists(f"/proc/{raylet}"),
    "thread_forgotten": _ray._stopping is None,  # a later search in this process stops its own Ray
}))
"""


@pytest.mark.slow
def test_no_workers_ahead_for_the_driver_and_ray_stops_in_a_thread():
    """Ray's workers started ahead for a first driver have no job and no runtime environment, so
    no Tune trial (which always has one) could use them: none is started. ``stop_ray_soon`` stops
    Ray in its thread; ``ray_stopped`` waits for it, and Ray's processes are gone."""
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    # worker-<id>-<job>-<pid>.out: a worker started ahead, before any job, has the nil job ffffffff
    jobs = {name.split("-")[2] for name in seen["workers"]}
    assert seen["workers"] and "ffffffff" not in jobs, seen["workers"]
    assert any(name.endswith(f"-{seen['task_pid']}.out") for name in seen["workers"])
    assert seen["stopped_in"] == "tunefleet-ray-stop"
    assert not seen["ray_up"] and not seen["raylet_alive"] and seen["thread_forgotten"]
