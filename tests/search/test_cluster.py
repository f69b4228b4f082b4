"""Searches submitted to a real 2-node Ray cluster on loopback, recorded in a real MLflow server.

"Nothing lost" here: every trial of a submitted search is a child of the one search run, ran on a
node of the cluster (tagged), and its best checkpoint downloads through the tracking server from
any process; a stopped search leaves no run RUNNING.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

import tunefleet
from tunefleet.spaces import records as rec

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def _submit(cli, cluster, spec_path, *extra: str) -> str:
    args = ["submit", str(spec_path), "--address", cluster.dashboard, "--tracking-uri", cluster.tracking_uri]
    result = cli(*args, "--storage", str(cluster.storage), *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{cluster.tracking_uri}/#/experiments/" in result.stdout
    return re.search(r"submitted (tunefleet-\S+)", result.stdout).group(1)


def _status_until(cli, cluster, job: str, states: tuple[str, ...], timeout: float = 900) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = cli("status", job, "--address", cluster.dashboard)
        assert result.returncode == 0, result.stderr
        state = next((s for s in ("SUCCEEDED", "FAILED", "STOPPED", "RUNNING", "PENDING") if s in result.stdout), "")
        if state in states:
            return result.stdout
        time.sleep(3)
    raise TimeoutError(
        f"job {job} did not reach {states}; logs:\n{cli('logs', job, '--address', cluster.dashboard).stdout}"
    )


def _search_and_trials(client: MlflowClient, experiment: str, job: str):
    exp = client.get_experiment_by_name(experiment)
    (search,) = client.search_runs([exp.experiment_id], f"tags.`{rec.JOB_ID_TAG}` = '{job}'")
    trials = client.search_runs([exp.experiment_id], f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_TRIAL}'", max_results=100)
    return search, [t for t in trials if t.data.tags[rec.PARENT_RUN_TAG] == search.info.run_id]


def test_submitted_search_spreads_over_both_nodes_and_records_through_the_server(
    loopback_cluster, cli, write_spec, small_spec, tmp_path
):
    cluster = loopback_cluster
    # Two trials at once on two 1-CPU nodes: the second can only start on the worker. Trials long
    # enough (about 30 s) that the worker's first actor (a fresh process that sets up the job's
    # runtime env and imports torch: 25 s and more on this 2-core machine) is up before the head's
    # reused actor is free to take the second trial.
    small_spec["search"] |= {"num_samples": 2, "max_epochs": 30}
    job = _submit(cli, cluster, write_spec(small_spec))
    found = tunefleet.Job.attach(job, cluster.dashboard).wait(timeout=900)  # the job's Search, once SUCCEEDED
    assert found.state == "finished" and len(found.trials()) == 2

    client = MlflowClient(tracking_uri=cluster.tracking_uri)
    search, trials = _search_and_trials(client, "small", job)
    assert search.info.status == "FINISHED" and len(trials) == 2 and search.info.run_id == found.run_id
    assert {t.info.status for t in trials} == {"FINISHED"}
    node_ids = {t.data.tags[rec.NODE_ID_TAG] for t in trials}
    alive = {n["node_id"] for n in cluster.alive_nodes()}
    assert node_ids == alive and len(alive) == 2  # trials ran on both nodes
    assert all(t.data.tags[rec.HOSTNAME_TAG] for t in trials)
    for trial in trials:  # every best checkpoint comes back through the server, from this process
        local = client.download_artifacts(
            trial.info.run_id, rec.CHECKPOINT_ARTIFACT_DIR, str(tmp_path / trial.info.run_id)
        )
        meta = json.loads((tmp_path / trial.info.run_id / rec.CHECKPOINT_ARTIFACT_DIR / rec.META).read_text())
        assert meta["epoch"] == int(trial.data.metrics[rec.BEST_EPOCH]) and local
        assert (tmp_path / trial.info.run_id / rec.CHECKPOINT_ARTIFACT_DIR / rec.WEIGHTS).stat().st_size > 0

    out = tmp_path / "export"
    exported = cli("export", "small", "--top-k", "2", "--tracking-uri", cluster.tracking_uri, "--out", str(out))
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert len(json.loads((out / "card.json").read_text())["members"]) == 2


def test_stop_closes_every_run(loopback_cluster, cli, write_spec, small_spec):
    cluster = loopback_cluster
    small_spec["name"] = "long"
    small_spec["search"] |= {"num_samples": 6, "max_epochs": 40}
    submitted = tunefleet.submit(  # from Python: the spec as a dict, checked here first
        small_spec, address=cluster.dashboard, tracking_uri=cluster.tracking_uri, storage=str(cluster.storage)
    )
    job, client = submitted.job_id, MlflowClient(tracking_uri=cluster.tracking_uri)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # stop once trials are running and reporting
        progress = submitted.progress()
        if progress.running and progress.best is not None:
            break
        time.sleep(2)
    stopped = cli("stop", job, "--address", cluster.dashboard)
    assert stopped.returncode == 0, stopped.stderr
    assert f"job {job}: STOPPED" in stopped.stdout
    assert submitted.status() == "STOPPED" and submitted.stop() == "STOPPED"  # already ended: nothing to do
    with pytest.raises(KeyboardInterrupt, match=f"job {job} was stopped"):
        submitted.wait(timeout=60)
    assert submitted.search().state == "interrupted" and "started t01" in submitted.logs()

    search, trials = _search_and_trials(client, "long", job)
    assert search.info.status == "KILLED"
    assert trials and not [t for t in trials if t.info.status == "RUNNING"]
    cut = [t for t in trials if t.data.tags.get(rec.OUTCOME_TAG) == rec.INTERRUPTED]
    assert cut and all(t.info.status == "KILLED" for t in cut)
    assert "STOPPED" in _status_until(cli, cluster, job, ("STOPPED",), timeout=30)


def test_bad_submissions_are_refused_before_reaching_the_cluster(loopback_cluster, run_cli, write_spec, small_spec):
    cluster = loopback_cluster
    small_spec["resources"] = {"gpus_per_worker": 1}
    result = _refused(run_cli, "submit", str(write_spec(small_spec)), "--address", cluster.dashboard,
                      "--tracking-uri", cluster.tracking_uri, "--storage", str(cluster.storage))  # fmt: skip
    assert "resources.gpus_per_worker" in result.stderr and "no node has more than 0" in result.stderr
    assert (
        "no job 'tunefleet-nope'"
        in _refused(run_cli, "status", "tunefleet-nope", "--address", cluster.dashboard).stderr
    )
    assert "no job" in _refused(run_cli, "stop", "tunefleet-nope", "--address", cluster.dashboard).stderr
    before = {j for j in _job_ids(cluster)}
    small_spec["resources"] = {}
    unreachable = f"http://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    result = _refused(run_cli, "submit", str(write_spec(small_spec)), "--address", cluster.dashboard,
                      "--tracking-uri", unreachable, "--storage", str(cluster.storage))  # fmt: skip
    assert "--tracking-uri" in result.stderr and time.monotonic() - started < 60
    assert {j for j in _job_ids(cluster)} == before  # nothing was submitted


def _refused(cli, *args: str):
    result = cli(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert len([ln for ln in result.stderr.splitlines() if ln.strip()]) == 1, result.stderr
    return result


def _job_ids(cluster) -> set[str]:
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(cluster.dashboard, headers={"Authorization": f"Bearer {cluster.token}"})
    return {j.submission_id for j in client.list_jobs()}


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_search_with_address_drives_the_cluster_interactively(loopback_cluster, cli, write_spec, small_spec):
    cluster = loopback_cluster
    small_spec["name"] = "interactive"
    small_spec["search"] |= {"num_samples": 2, "max_epochs": 2}
    result = cli(
        "search", str(write_spec(small_spec)), "--address", cluster.gcs,
        "--tracking-uri", cluster.tracking_uri, "--storage", str(cluster.storage),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    client = MlflowClient(tracking_uri=cluster.tracking_uri)
    exp = client.get_experiment_by_name("interactive")
    trials = client.search_runs([exp.experiment_id], f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_TRIAL}'")
    alive = {n["node_id"] for n in cluster.alive_nodes()}
    assert len(trials) == 2 and {t.data.tags[rec.NODE_ID_TAG] for t in trials} <= alive
    assert all(t.info.status == "FINISHED" for t in trials)
    assert f"{cluster.tracking_uri}/#/experiments/{exp.experiment_id}/runs/" in result.stdout


def test_scale_benchmark_joins_the_cluster_and_times_the_cli(loopback_cluster, tmp_path):
    """benchmarks/scale.py at one tiny size, its driver joining this shared cluster by address (the
    path of ``--cluster`` after its own cluster is up; run as ``make bench`` runs it, RESULTS.md left alone)."""
    root = Path(__file__).resolve().parents[2]
    results = (root / "benchmarks" / "RESULTS.md").read_bytes()
    args = ["--sizes", "3", "--sleep", "0.05", "--address", loopback_cluster.gcs, "--no-write"]
    proc = subprocess.run(
        [sys.executable, "benchmarks/scale.py", *args], cwd=root, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (root / "benchmarks" / "RESULTS.md").read_bytes() == results
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [(r["trials"], r["completed"]) for r in rows] == [(3, 3)]
    assert all(r["mlflow_rows_per_s"] > 0 and r["peak_rss_mib"] > 0 for r in rows)
    assert f"Ray cluster at {loopback_cluster.gcs}" in proc.stdout
    assert "`tunefleet trials` on 3 trials" in proc.stdout and "`tunefleet report` on 3 trials" in proc.stdout
