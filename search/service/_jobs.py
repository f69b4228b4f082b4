"""Searches as Ray Jobs: submit a validated spec, follow it, read its progress from MLflow, stop it.

A submitted search is ``tunefleet search spec.yaml`` run by Ray's Jobs SDK on the cluster's head,
with the spec carried in the job's ``runtime_env`` (its working directory). The job id is ours
(``tunefleet-<name>-<time>``) and lands on the search run as a tag, which is how ``status``
finds the search's trials in MLflow. ``stop`` asks Ray to send SIGINT: the search stops the way
Ctrl-C stops it (running trials close KILLED / interrupted, the search run KILLED).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunefleet.spaces import SearchSpec, SpecError
from tunefleet.spaces import records as rec

from .._defaults import MODELS_CHECKED_ENV, models_fingerprint
from ..resume._liveness import resume_command, search_state

JOB_ENV = "TUNEFLEET_JOB_ID"  # the job id, set for the search driver; its search run is tagged with it
STOP_WAIT_S = 120  # how long Ray lets a stopped search close its runs before it kills the driver
META_EXPERIMENT, META_TRACKING = "tunefleet.experiment", "tunefleet.tracking_uri"
TERMINAL_STATES = ("SUCCEEDED", "FAILED", "STOPPED")  # Ray's JobStatus values of an ended job
STATUS_POLL_S = 0.5  # while following a job's log: how often its state is read
DRAIN_WAIT_S = 0.25  # once it has ended: how long its log stream may take to close by itself


def job_client(address: str, headers: dict[str, str]) -> Any:
    import logging

    from ray.job_submission import JobSubmissionClient

    logging.getLogger("ray").setLevel(logging.WARNING)  # package uploads and websocket notes are noise here
    return JobSubmissionClient(address, headers=headers)


def new_job_id(spec: SearchSpec) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", spec.name.lower()).strip("-")[:40] or "search"
    return f"tunefleet-{slug}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class Submission:
    job_id: str
    experiment_id: str
    experiment_url: str


def _experiment_id(uri: str, name: str) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(name)
    return str(experiment.experiment_id) if experiment else str(client.create_experiment(name))


def submit(client: Any, spec: SearchSpec, uri: str, storage: str, python: str) -> Submission:
    """Submit ``spec`` (already validated) as a Ray Job recording to ``uri``; returns at once."""
    job_id = new_job_id(spec)
    experiment_id = _experiment_id(uri, spec.tracking.experiment)
    with tempfile.TemporaryDirectory(prefix="tunefleet-job-") as folder:
        (Path(folder) / "spec.yaml").write_text(spec.to_yaml())
        # The client has run the model checks on this spec (prepare): the job may skip them.
        checked = models_fingerprint(spec)
        client.submit_job(
            submission_id=job_id,
            entrypoint=f"{python} -m tunefleet.search.cli search spec.yaml --tracking-uri {uri} --storage {storage}",
            runtime_env={
                "working_dir": folder,  # uploaded now: the spec travels with the job
                "env_vars": {
                    JOB_ENV: job_id,
                    **({MODELS_CHECKED_ENV: checked} if checked else {}),
                    "PYTHONUNBUFFERED": "1",
                    # `tunefleet stop` = Ctrl-C, with time to close every run before a SIGKILL.
                    "RAY_JOB_STOP_SIGNAL": "SIGINT",
                    "RAY_JOB_STOP_WAIT_TIME_S": str(STOP_WAIT_S),
                },
            },
            metadata={META_EXPERIMENT: spec.tracking.experiment, META_TRACKING: uri},
        )
    url = f"{uri.rstrip('/')}/#/experiments/{experiment_id}"
    return Submission(job_id, experiment_id, url)


def job_info(client: Any, job_id: str) -> Any:
    """The job's details; a SpecError naming the id when the cluster has no such job."""
    try:
        return client.get_job_info(job_id)
    except RuntimeError as err:
        if "does not exist" in str(err) or "404" in str(err):
            raise SpecError("JOB", f"no job {job_id!r} on this cluster (see: tunefleet status)") from None
        raise


@dataclass(frozen=True)
class Progress:
    """A search's trials as MLflow has them: counts by how they ended and the best so far."""

    done: int = 0
    running: int = 0
    stopped: int = 0
    failed: int = 0
    interrupted: int = 0
    best: float | None = None
    metric: str = ""
    run_id: str = ""
    experiment_id: str = ""
    search: str = ""  # running | interrupted (its driver is gone) | finished
    resume: str = ""  # the command that continues an interrupted search


def job_search_run(uri: str, experiment: str, job_id: str) -> tuple[Any, Any]:
    """An MLflow client, and the search run the driver of job ``job_id`` opened (tagged with the
    job id; None before the driver has started)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return client, None
    found = client.search_runs([exp.experiment_id], f"tags.`{rec.JOB_ID_TAG}` = '{job_id}'", max_results=1)
    return client, (found[0] if found else None)


def progress(uri: str, experiment: str, job_id: str) -> Progress:
    """Read the search run tagged with ``job_id`` and its trials (empty until the driver has opened it)."""
    from tunefleet.analysis import trial_runs

    client, search = job_search_run(uri, experiment, job_id)
    params = search.data.params if search is not None else {}
    if rec.SEARCH_METRIC_PARAM not in params or rec.SEARCH_MODE_PARAM not in params:
        # Not started, or being opened: the driver creates the run with its tags, then logs its params.
        return Progress()
    metric, mode = params[rec.SEARCH_METRIC_PARAM], params[rec.SEARCH_MODE_PARAM]
    trials = trial_runs(client, search)
    outcomes = [t.data.tags.get(rec.OUTCOME_TAG, rec.RUNNING) for t in trials]
    found_scores = [t.data.metrics.get(rec.best_key(metric), t.data.metrics.get(metric)) for t in trials]
    scores = [s for s in found_scores if s is not None]
    best = (max(scores) if mode == "max" else min(scores)) if scores else None
    running = sum(t.info.status == "RUNNING" for t in trials)
    state = search_state(search)
    cut_short = running if state == "interrupted" else 0  # runs a dead driver could not close
    return Progress(
        done=outcomes.count(rec.COMPLETED),
        running=running - cut_short,
        stopped=outcomes.count(rec.STOPPED),
        failed=outcomes.count(rec.FAILED) + outcomes.count(rec.TIMED_OUT),
        interrupted=outcomes.count(rec.INTERRUPTED) + cut_short,
        search=state,
        resume=resume_command(experiment, search.info.run_id, uri) if state == "interrupted" else "",
        best=best,
        metric=metric,
        run_id=search.info.run_id,
        experiment_id=str(search.info.experiment_id),
    )


def tunefleet_jobs(client: Any) -> list[Any]:
    """The cluster's tunefleet jobs, newest first."""
    jobs = [j for j in client.list_jobs() if (j.metadata or {}).get(META_EXPERIMENT)]
    return sorted(jobs, key=lambda j: j.start_time or 0, reverse=True)


async def follow_logs(client: Any, job_id: str) -> None:
    """Print the job's output as it comes, to its end.

    Ray's log stream closes seconds after the job has ended (it looks at the job's state only
    between reads of the log, a second or more apart), so the job's state is watched beside it:
    once the job has ended, the stream gets ``DRAIN_WAIT_S`` to finish by itself, then the rest of
    the log is read whole and printed from where the stream stopped. Nothing is printed twice or
    left out: the stream yields the log file in order, so what it printed is a prefix of the log.
    """
    printed = 0

    async def stream() -> None:
        nonlocal printed
        async for lines in client.tail_job_logs(job_id):
            print(lines, end="", flush=True)
            printed += len(lines)

    streaming = asyncio.ensure_future(stream())
    while not streaming.done():
        await asyncio.wait({streaming}, timeout=STATUS_POLL_S)
        if streaming.done() or str(await asyncio.to_thread(client.get_job_status, job_id)) not in TERMINAL_STATES:
            continue
        try:
            await asyncio.wait_for(asyncio.shield(streaming), DRAIN_WAIT_S)
        except TimeoutError:
            streaming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await streaming
            log = await asyncio.to_thread(client.get_job_logs, job_id)
            print(log[printed:], end="", flush=True)
            return
    await streaming  # its error, if the stream failed
