"""Is a search's driver alive? Decided from the search run's tags, on a real SQLite store."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from tunefleet.search.resume._liveness import driver_alive, search_state
from tunefleet.search.tracking._trial_records import driver_tags
from tunefleet.spaces import records as rec


@pytest.fixture
def new_run(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("liveness")

    def make(tags: dict[str, str]):
        run = client.create_run(experiment, tags={rec.ROLE_TAG: rec.ROLE_SEARCH, **tags})
        return client.get_run(run.info.run_id)

    return make


def test_this_process_is_alive_even_long_after_the_run_started(new_run):
    # A resumed search's driver starts long after its search run did: its own start time counts.
    run = new_run(driver_tags())
    assert driver_alive(run) and search_state(run) == "running"


def test_a_dead_driver_and_a_reused_pid_read_as_gone(new_run):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = new_run({**driver_tags(), rec.DRIVER_PID_TAG: finished.stdout.strip()})
    assert not driver_alive(dead) and search_state(dead) == "interrupted"
    reused = new_run({**driver_tags(), rec.DRIVER_STARTED_TAG: "1000"})  # this pid, but not the driver's start
    assert not driver_alive(reused)


def test_on_another_host_the_heartbeat_decides(new_run):
    elsewhere = {**driver_tags(), rec.DRIVER_HOST_TAG: "some-other-host"}
    assert driver_alive(new_run({**elsewhere, rec.HEARTBEAT_TAG: f"{time.time():.0f}"}))
    stale = f"{time.time() - 10 * rec.HEARTBEAT_EVERY_S:.0f}"
    assert not driver_alive(new_run({**elsewhere, rec.HEARTBEAT_TAG: stale}))
