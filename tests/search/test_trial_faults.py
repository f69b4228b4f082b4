"""A trial's worker process killed (SIGKILL) or frozen (SIGSTOP) in the middle of a search.

The worker is the real Ray actor process running the trial (``ray::ImplicitFunc``), found among
the driver's descendants, and the signal is the real thing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from mlflow.tracking import MlflowClient

from tunefleet.spaces import records as rec

from ..conftest import made_store_client


def _trial_worker(driver: subprocess.Popen[str]) -> psutil.Process | None:
    for child in psutil.Process(driver.pid).children(recursive=True):
        try:
            if child.cmdline()[:1] == ["ray::ImplicitFunc.train"]:  # Ray's title while it runs a trial
                return child
        except (psutil.NoSuchProcess, psutil.AccessDenied, IndexError):
            continue
    return None


def _epochs_reported(client: MlflowClient) -> int:
    experiment = client.get_experiment_by_name("small")
    if experiment is None:
        return 0
    runs = client.search_runs([experiment.experiment_id], f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_TRIAL}'")
    return max((int(r.data.metrics.get("epoch", 0)) for r in runs if r.info.status == "RUNNING"), default=0)


def _search_then(tmp_path: Path, spec: Path, epochs: int, sig: int) -> tuple[str, int, MlflowClient]:
    """Start a search, send ``sig`` to the running trial's worker once it reported ``epochs``."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    driver = subprocess.Popen(
        [sys.executable, "-m", "tunefleet.search.cli", "search", str(spec)],
        cwd=tmp_path,
        env={**env, "COLUMNS": "160"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    client = None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and driver.poll() is None:
        worker = _trial_worker(driver)
        client = client or made_store_client(tmp_path)
        if worker is not None and client is not None and _epochs_reported(client) >= epochs:
            worker.send_signal(sig)
            break
        time.sleep(0.25)
    else:
        driver.kill()
        raise AssertionError("no trial worker to signal")
    out = driver.communicate(timeout=400)[0]
    return out, driver.returncode, client


def _trials(client: MlflowClient) -> list:
    experiment = client.get_experiment_by_name("small")
    return client.search_runs([experiment.experiment_id], f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_TRIAL}'")


@pytest.mark.slow
def test_killed_worker_resumes_from_its_checkpoint(write_spec, small_spec, tmp_path):
    """Scenario 1. Nothing lost: every trial finishes all its epochs; the killed one restarts once
    from its latest checkpoint (epoch 1 is not trained twice) and its run has every epoch's
    metrics with no gap, plus the failure's traceback as ``error.txt``."""
    # 12 epochs: the kill must land after epoch 2 and before the trial's end, seen from outside
    # (MLflow, polled); at 6, a fast CI machine finished both trials between two polls.
    small_spec["search"].update(num_samples=2, max_epochs=12, max_concurrent=1, max_failures=2)
    out, code, client = _search_then(tmp_path, write_spec(small_spec), epochs=2, sig=signal.SIGKILL)
    assert code == 0, out[-4000:]
    trials = _trials(client)
    statuses = [(r.info.status, r.data.metrics.get(rec.EPOCHS_TRAINED)) for r in trials]
    assert len(trials) == 2 and all(r.info.status == "FINISHED" for r in trials), (statuses, out[-6000:])
    (restarted,) = [r for r in trials if r.data.tags.get(rec.RESTARTS_TAG) == "1"]
    history = [int(m.value) for m in client.get_metric_history(restarted.info.run_id, "epoch")]
    assert set(history) == set(range(1, 13)) and history.count(1) == 1, history
    errors = client.download_artifacts(restarted.info.run_id, rec.ERROR_ARTIFACT, str(tmp_path))
    assert "Failure # 1" in Path(errors).read_text()
    assert "restart 1" in out


@pytest.mark.slow
def test_hung_trial_is_stopped_after_trial_timeout(write_spec, small_spec, tmp_path):
    """Scenario 8. A frozen worker never reports again: it is stopped once ``trial_timeout`` has
    passed, marked ``timed_out`` (FAILED, with the reason), and the search goes on to its end
    with the other trial. Nothing lost: the hung trial's epochs so far stay in its run."""
    # 8 epochs: a window after epoch 1 wide enough for the polls above to freeze the trial in it.
    small_spec["search"].update(num_samples=2, max_epochs=8, max_concurrent=1, max_failures=0, trial_timeout="15s")
    started = time.monotonic()
    out, code, client = _search_then(tmp_path, write_spec(small_spec), epochs=1, sig=signal.SIGSTOP)
    assert code == 0, out[-4000:]
    assert time.monotonic() - started < 300  # bounded: it did not wait for the frozen process
    trials = _trials(client)
    (hung,) = [r for r in trials if r.info.status == "FAILED"]
    assert hung.data.tags[rec.OUTCOME_TAG] == rec.TIMED_OUT
    assert "search.trial_timeout" in hung.data.tags[rec.ERROR_TAG]
    assert hung.data.metrics["epoch"] >= 1
    (done,) = [r for r in trials if r.info.run_id != hung.info.run_id]
    assert done.info.status == "FINISHED" and done.data.metrics[rec.EPOCHS_TRAINED] == 8
