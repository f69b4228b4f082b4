"""Searches as Ray Jobs from Python: ``submit`` checks a spec here and runs it on a cluster; the
``Job`` it returns reads the job's state, logs and progress, waits for it and stops it.
``tunefleet submit``, ``logs`` and ``stop`` call the same code.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tunefleet.spaces import SpecError

from ..service._cluster import (
    auth_headers,
    check_dashboard,
    check_tracking_server,
    may_autoscale,
    node_resources,
    ray_token,
)
from ..service._cluster import check_trial_fits as check_fits
from ..service._jobs import TERMINAL_STATES as TERMINAL
from ..service._service import STATE_DIR, Service, is_running, load_service
from ._search import Search, SearchFailed, SearchInterrupted, SpecSource

if TYPE_CHECKING:
    from ..service._jobs import Progress


def running_service() -> Service | None:
    """The service ``tunefleet up`` started on this machine, if it still runs."""
    service = load_service(STATE_DIR)
    return service if service is not None and is_running(service) else None


def dashboard(address: str | None) -> str:
    """``address`` (the Jobs API), else the local service's."""
    if address:
        return address.rstrip("/")
    service = running_service()
    if service is None:
        raise SpecError(
            "--address", "no tunefleet service runs here: run `tunefleet up` or pass --address http://HOST:8265"
        )
    return service.dashboard


def connect(address: str | None) -> tuple[Any, str, dict[str, str]]:
    """A Jobs SDK client for the cluster (its token sent), checked to answer; its URL and headers."""
    from ..service._jobs import job_client

    url = dashboard(address)
    headers = auth_headers(ray_token())
    check_dashboard(url, headers)
    return job_client(url, headers), url, headers


def _follow(client: Any, job_id: str) -> None:
    """Print the job's output as it comes, to its end. In Jupyter an event loop already runs in
    this thread, so the stream runs in a thread of its own."""
    from ..service._jobs import follow_logs

    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no loop here: a script, the CLI
        asyncio.run(follow_logs(client, job_id))
        return
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, follow_logs(client, job_id)).result()


@dataclass(frozen=True)
class Job:
    """A search running as a Ray Job: ``status()``, ``progress()``, ``logs()``, ``follow()``,
    ``wait()``, ``stop()``, ``search()``.

    >>> job = tunefleet.submit("examples/digits.yaml")   # doctest: +SKIP
    >>> job.wait().trials()                              # doctest: +SKIP
    """

    job_id: str
    address: str  # the cluster's Jobs API, http://HOST:8265
    tracking_uri: str  # "" for a job tunefleet did not submit
    experiment: str
    mlflow_url: str = ""  # the experiment in the MLflow UI

    @classmethod
    def attach(cls, job_id: str, address: str | None = None) -> Job:
        """A job submitted earlier (``tunefleet status`` lists them); a ``SpecError`` when the
        cluster has no such job."""
        from ..service._jobs import META_EXPERIMENT, META_TRACKING, job_info

        client, url, _ = connect(address)
        meta = job_info(client, job_id).metadata or {}
        return cls(job_id, url, meta.get(META_TRACKING, ""), meta.get(META_EXPERIMENT, ""))

    @cached_property
    def _client(self) -> Any:
        # One Jobs SDK client per Job: each new one checks the dashboard and Ray's version first.
        return connect(self.address)[0]

    def status(self) -> str:
        """Ray's state of the job: PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED."""
        return str(self._client.get_job_status(self.job_id))

    def progress(self) -> Progress:
        """Its trials as MLflow has them: done, running, stopped, failed, interrupted, best so far."""
        from ..service._jobs import progress

        return progress(self._tracked(), self.experiment, self.job_id)

    def logs(self) -> str:
        """The driver's output so far (progress lines, the trials table)."""
        return str(self._client.get_job_logs(self.job_id))

    def follow(self) -> None:
        """Print the driver's output as it comes, until the job ends."""
        _follow(self._client, self.job_id)

    def until_done(self, timeout: float | None = None) -> str:
        """Block until the job ends; its last state (SUCCEEDED, FAILED or STOPPED)."""
        client, deadline = self._client, None if timeout is None else time.monotonic() + timeout
        while (state := str(client.get_job_status(self.job_id))) not in TERMINAL:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {self.job_id} still {state} after {timeout}s")
            time.sleep(1)
        return state

    def wait(self, timeout: float | None = None) -> Search:
        """Block until the job ends; its ``Search``. A failed job raises ``SearchFailed``, a
        stopped one ``SearchInterrupted`` (the CLI's exit codes 1 and 130)."""
        state = self.until_done(timeout)
        if state == "STOPPED":
            raise SearchInterrupted(f"job {self.job_id} was stopped; continue it with {self._resume()}")
        if state == "FAILED":
            raise SearchFailed(f"job {self.job_id} failed; see Job.logs()")
        return self.search()

    def stop(self) -> str:
        """Stop the search gracefully (running trials close interrupted); the job's last state."""
        from ..service._jobs import STOP_WAIT_S

        client = self._client
        if (state := str(client.get_job_status(self.job_id))) in TERMINAL:
            return state
        client.stop_job(self.job_id)
        deadline = time.monotonic() + STOP_WAIT_S + 30
        while (state := str(client.get_job_status(self.job_id))) not in TERMINAL and time.monotonic() < deadline:
            time.sleep(1)
        return state

    def search(self) -> Search:
        """The search run this job's driver opened (tagged with the job id)."""
        from ..service._jobs import job_search_run

        _, run = job_search_run(self._tracked(), self.experiment, self.job_id)
        if run is None:
            raise SpecError("JOB", f"job {self.job_id!r} has not opened its search run yet")
        return Search(self.experiment, run.info.run_id, self.tracking_uri)

    def _tracked(self) -> str:
        if not self.tracking_uri:
            raise SpecError("JOB", f"job {self.job_id!r} was not submitted by tunefleet: no MLflow record of it")
        return self.tracking_uri

    def _resume(self) -> str:
        return f"tunefleet.open({self.experiment!r}, tracking_uri={self.tracking_uri!r}).resume(address=...)"


def submit(
    spec: SpecSource,
    *,
    address: str | None = None,
    tracking_uri: str | None = None,
    storage: str | None = None,
    num_samples: int | None = None,
) -> Job:
    """Check ``spec`` here (as ``tunefleet search`` would), then run it as a Ray Job on the cluster
    at ``address`` (default: the service ``tunefleet up`` started here); returns at once."""
    from ..service._submit import prepare

    plan = prepare(spec, address, tracking_uri, storage, num_samples, running_service())
    client, url, headers = connect(plan.address)
    check_tracking_server(plan.tracking_uri)
    if not may_autoscale(url, headers):  # else the driver checks against the node types it may launch
        check_fits(plan.spec.resources, node_resources(url, headers))
    from ..service._jobs import submit as submit_job  # Ray's Jobs SDK: only once everything checked out

    done = submit_job(client, plan.spec, plan.tracking_uri, plan.storage, plan.python)
    return Job(done.job_id, url, plan.tracking_uri, plan.spec.tracking.experiment, done.experiment_url)
