"""Ctrl-C during a search started from Python (``tunefleet.tune``, as in a notebook: a kernel
interrupt is SIGINT): nothing recorded is lost, nothing is reported as finished, and ``tune``
raises ``KeyboardInterrupt`` once the search has closed its runs, leaving it resumable. The CLI's
Ctrl-C (exit code 130, then ``tunefleet resume``): tests/search/test_resume.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import tunefleet
from tunefleet.spaces import records as rec

from ..conftest import made_store_client


@pytest.mark.slow
def test_interrupted_search_closes_its_runs_as_killed(write_spec, small_spec, tmp_path):
    small_spec["search"].update(num_samples=4, max_epochs=30, max_concurrent=2)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    script = (
        "import sys, tunefleet\n"
        "try:\n"
        f"    tunefleet.tune({str(write_spec(small_spec))!r})\n"
        "except KeyboardInterrupt as err:\n"
        "    print(f'raised {type(err).__name__}: {err}')\n"
        "    sys.exit(130)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    client = None
    deadline = time.monotonic() + 240
    # Interrupt once two trials have each logged an epoch (metrics reach MLflow every ~2 s).
    while time.monotonic() < deadline:
        time.sleep(2)
        client = client or made_store_client(tmp_path)
        experiment = client is not None and client.get_experiment_by_name("small")
        if experiment:
            runs = client.search_runs([experiment.experiment_id], f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_TRIAL}'")
            if sum("val_acc" in r.data.metrics for r in runs) >= 2:
                break
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=240)
    assert client is not None, out[-3000:]
    assert proc.returncode == 130, out[-3000:]
    assert "interrupted: 2 running trial(s) stopped" in out  # the CLI's own lines, printed by the API
    assert "raised SearchInterrupted: search interrupted; continue it with tunefleet.open('small', search_run=" in out

    experiment = client.get_experiment_by_name("small")
    (search,) = client.search_runs([experiment.experiment_id], f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_SEARCH}'")
    assert search.info.status == "KILLED"
    found = tunefleet.open("small", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert found.run_id == search.info.run_id and found.state == "interrupted"
    trials = client.search_runs([experiment.experiment_id], f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_TRIAL}'")
    assert len(trials) == 2
    for run in trials:
        assert run.info.status == "KILLED" and run.data.tags[rec.OUTCOME_TAG] == rec.INTERRUPTED
        assert "val_acc" in run.data.metrics  # what was measured is kept
        names = {a.path for a in client.list_artifacts(run.info.run_id, rec.CHECKPOINT_ARTIFACT_DIR)}
        assert "checkpoint/model.safetensors" in names  # and so are the best weights so far
