"""Losing a node mid-search: a worker node added to the session's loopback cluster for this test
is killed (SIGKILL to its whole process group, as when a machine dies) while a trial runs on it.

"Nothing lost" here: the search still exits 0 and every trial ends FINISHED with all its epochs;
the trial that was on the dead node is restarted (``search.max_failures``) from its latest
checkpoint on a node that is left, so its run says so (``tunefleet.restarts`` >= 1, its node tag
now names that node, the failure's traceback in ``error.txt``), its epoch history covers every
epoch from 1 to ``max_epochs`` without a gap (an epoch reported again after the restart is
allowed), and it does not start over (epoch 1 was reported once).

The cluster is the session's (``loopback_cluster``): the test adds the node it kills, as Ray's
own tests do with ``ray.cluster_utils.Cluster``, so the head and worker stay for other tests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
from mlflow.tracking import MlflowClient

from tunefleet.spaces import records as rec

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

MAX_EPOCHS = 12


def _search(cluster, spec_path, cwd, log) -> subprocess.Popen[bytes]:
    """``tunefleet search --address`` as the ``cli`` fixture runs it, but in the background (in a
    session of its own, so the test can stop it by its group if it outlives the test); its output
    goes to ``log``."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["COLUMNS"] = "160"
    command = [sys.executable, "-m", "tunefleet.search.cli", "search", str(spec_path), "--address", cluster.gcs,
               "--tracking-uri", cluster.tracking_uri, "--storage", str(cluster.storage)]  # fmt: skip
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the search's own process group, SIGKILL it if it is still there after 30 s."""
    for sig, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue


def _kill_node(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a ``ray start`` node as if its machine died: its process group, and every process
    under it (Ray puts each worker process in a process group of its own)."""
    tree = psutil.Process(proc.pid).children(recursive=True)
    os.killpg(proc.pid, signal.SIGKILL)
    for child in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    _, alive = psutil.wait_procs(tree, timeout=30)
    assert not alive, alive


def _trial_runs(client: MlflowClient, experiment: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_TRIAL}'")


def _wait_for_epochs_on(client: MlflowClient, experiment: str, node_id: str, search, epochs: int, timeout: float):
    """The trial run tagged with ``node_id`` once it has reported ``epochs`` epochs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert search.poll() is None, "the search ended before the worker's trial ran"
        for run in _trial_runs(client, experiment):
            if run.data.tags.get(rec.NODE_ID_TAG) == node_id and run.data.metrics.get("epoch", 0) >= epochs:
                assert run.info.status == "RUNNING" and run.data.metrics["epoch"] < MAX_EPOCHS
                return run
        time.sleep(0.5)
    raise TimeoutError(f"no trial reported {epochs} epochs on the worker node {node_id} within {timeout:.0f} s")


def _alive_node_ids(cluster, until: list[str], timeout: float) -> list[str]:
    """The ids of the nodes Ray lists as alive, polled until they are ``until`` or ``timeout``
    passes: the GCS marks a node dead only after its health checks miss (tens of seconds), and a
    short search can end before that, since Tune restarts the trial as soon as its actor is lost."""
    deadline = time.monotonic() + timeout
    while sorted(ids := [n["node_id"] for n in cluster.alive_nodes()]) != sorted(until) and time.monotonic() < deadline:
        time.sleep(1)
    return ids


def test_killing_a_node_loses_nothing(loopback_cluster, write_spec, small_spec, tmp_path):
    """Nothing lost when a node dies mid-trial: the search exits 0; every trial ends FINISHED with
    all ``max_epochs`` epochs; the trial that ran on the dead node was restarted
    (``tunefleet.restarts`` >= 1, its traceback in ``error.txt``) on a node that is left (its node
    tag names it now), from its latest checkpoint: its epoch history covers 1..max_epochs with no
    gap (an epoch may come twice) and epoch 1 appears once (it did not start over)."""
    cluster = loopback_cluster
    nodes = cluster.alive_nodes()
    assert len(nodes) == 2
    (head,) = [n["node_id"] for n in nodes if n.get("is_head_node")]
    (worker,) = [n["node_id"] for n in nodes if not n.get("is_head_node")]
    doomed = cluster.add_node("doomed")["node_id"]

    small_spec["name"] = "nodeloss"
    # Three trials at once, one CPU each: one on each 1-CPU node, the added one included.
    small_spec["search"] |= {"num_samples": 3, "max_concurrent": 3, "max_epochs": MAX_EPOCHS, "max_failures": 2}
    small_spec["resources"] = {"cpus_per_worker": 1}
    client = MlflowClient(tracking_uri=cluster.tracking_uri)
    log = tmp_path / "search.log"
    search = _search(cluster, write_spec(small_spec), tmp_path, log)
    try:
        try:
            moved = _wait_for_epochs_on(client, "nodeloss", doomed, search, epochs=2, timeout=300)
        except (AssertionError, TimeoutError) as err:
            raise AssertionError(f"{err}; search output:\n{log.read_text(errors='replace')}") from err
        _kill_node(cluster.procs.pop("doomed"))
        search.wait(timeout=600)
    finally:
        _stop(search)
    output = log.read_text(errors="replace")
    assert search.returncode == 0, output

    exp = client.get_experiment_by_name("nodeloss")
    (search_run,) = client.search_runs([exp.experiment_id], f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_SEARCH}'")
    assert search_run.info.status == "FINISHED", output
    trials = _trial_runs(client, "nodeloss")
    assert len(trials) == 3 and {t.data.tags[rec.PARENT_RUN_TAG] for t in trials} == {search_run.info.run_id}
    for trial in trials:
        history = client.get_metric_history(trial.info.run_id, "epoch")
        assert trial.info.status == "FINISHED", (trial.data.tags, output)
        assert trial.data.tags[rec.OUTCOME_TAG] == rec.COMPLETED
        assert max(m.value for m in history) == MAX_EPOCHS

    (restarted,) = [t for t in trials if t.info.run_id == moved.info.run_id]
    stayed = [t for t in trials if t.info.run_id != moved.info.run_id]
    assert int(restarted.data.tags[rec.RESTARTS_TAG]) >= 1, restarted.data.tags
    assert restarted.data.tags[rec.NODE_ID_TAG] in (head, worker)  # re-tagged when it moved
    epochs = Counter(int(m.value) for m in client.get_metric_history(restarted.info.run_id, "epoch"))
    assert set(epochs) == set(range(1, MAX_EPOCHS + 1)), sorted(epochs.elements())  # no gap
    assert epochs[1] == 1, sorted(epochs.elements())  # resumed from its checkpoint, not from epoch 1
    local = client.download_artifacts(restarted.info.run_id, rec.ERROR_ARTIFACT, str(tmp_path / "error"))
    assert Path(local).read_text().strip()  # the failure's traceback is kept

    # The trials on the head and the worker never failed and stayed where they were.
    assert all(t.data.tags.get(rec.RESTARTS_TAG, "0") == "0" for t in stayed)
    assert sorted(t.data.tags[rec.NODE_ID_TAG] for t in stayed) == sorted([head, worker])
    assert sorted(_alive_node_ids(cluster, until=[head, worker], timeout=90)) == sorted([head, worker])
