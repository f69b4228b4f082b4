"""The service commands: ``up`` / ``down`` (a local cluster), ``submit`` / ``status`` / ``logs`` / ``stop``
(searches as Ray Jobs). Flags name the cluster; without them the service ``up`` recorded here is used."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..api._job import TERMINAL
from ..service._service import STATE_DIR
from ._console import fail, out

Address = Annotated[str | None, typer.Option("--address", help="Ray dashboard / Jobs API, http://HOST:8265")]
Job = Annotated[str, typer.Argument(help="job id (from submit or status)")]
Follow = Annotated[bool, typer.Option("--follow", "-f", help="stream until the job ends")]


def _client(address: str | None) -> tuple[Any, str, dict[str, str]]:
    from ..api._job import connect

    return connect(address)


def up(
    cpus: Annotated[int | None, typer.Option(help="CPUs Ray may use [default: all]")] = None,
    gpus: Annotated[int | None, typer.Option(help="GPUs Ray may use [default: all]")] = None,
    ray_port: Annotated[int, typer.Option("--ray-port", help="Ray GCS port")] = 6379,
    dashboard_port: Annotated[int, typer.Option("--dashboard-port", help="Ray dashboard / Jobs API")] = 8265,
    mlflow_port: Annotated[int, typer.Option("--mlflow-port", help="MLflow tracking server")] = 5000,
    backend_store_uri: Annotated[
        str | None,
        typer.Option(
            "--backend-store-uri",
            help="MLflow's store: postgresql://USER@HOST:PORT/DATABASE for a team (password from PGPASSWORD "
            "or ~/.pgpass) [default: SQLite in .tunefleet/]",
        ),
    ] = None,
) -> None:
    """Start a Ray head and an MLflow server on this machine (127.0.0.1), in the background."""
    from ..service._service import up as start

    ports = {"ray": ray_port, "dashboard": dashboard_port, "mlflow": mlflow_port}
    try:
        service, already = start(STATE_DIR, cpus, gpus, ports, backend_store_uri)
    except RuntimeError as err:  # a process died or did not answer: its log says why
        fail(str(err), 1)
    console = out()
    console.print("already up" if already else "up", style="bold")
    console.print(f"ray:    {service.ray_address}  (dashboard and Jobs API {service.dashboard})")
    console.print(f"mlflow: {service.tracking_uri}  (open the UI at {service.tracking_uri})")
    console.print(f"store:  {service.backend_store or 'SQLite in ' + service.folder}")
    console.print(f"state:  {service.folder}  · next: tunefleet submit SPEC.yaml")


def down() -> None:
    """Stop the service `up` started here; the MLflow store and artifacts stay."""
    from ..service._service import down as stop_service

    service = stop_service(STATE_DIR)
    out().print("nothing was up" if service is None else f"down; store and artifacts kept in {service.folder}")


def submit(
    spec: Annotated[Path, typer.Argument(help="search spec (YAML)")],
    address: Address = None,
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri", help="MLflow server")] = None,
    storage: Annotated[str | None, typer.Option(help="Ray Tune state: a shared path or s3://, gs://")] = None,
    num_samples: Annotated[int | None, typer.Option("--num-samples", help="trials to run")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="follow the search to its end")] = False,
) -> None:
    """Validate SPEC here, then run it as a Ray Job on the cluster; prints the job id and returns."""
    from ..api._job import submit as submit_job

    job = submit_job(spec, address=address, tracking_uri=tracking_uri, storage=storage, num_samples=num_samples)
    console = out()
    console.print(f"submitted [bold]{job.job_id}[/] to {job.address}")
    console.print(f"MLflow: {job.mlflow_url}")
    if not wait:
        console.print(f"follow it: tunefleet status {job.job_id} · tunefleet logs {job.job_id} --follow")
        return
    job.follow()
    state = job.until_done()
    out().print(f"job {job.job_id}: {state}")
    if state != "SUCCEEDED":
        raise typer.Exit(130 if state == "STOPPED" else 1)


def status(job: Annotated[str | None, typer.Argument(help="one job [default: recent jobs]")] = None,
           address: Address = None) -> None:  # fmt: skip
    """A job's state and its trials (done / running / stopped / failed, best so far), read from MLflow."""
    from ..service._jobs import META_EXPERIMENT, META_TRACKING, job_info, progress, tunefleet_jobs

    client, _, _ = _client(address)
    jobs = [job_info(client, job)] if job else tunefleet_jobs(client)[:20]
    table = Table(title="tunefleet jobs" if not job else None)
    table.add_column("job", no_wrap=True)
    for col in ("state", "search", "done", "running", "stopped", "failed", "interrupted", "best"):
        table.add_column(col)
    for info in jobs:
        meta = info.metadata or {}
        p = progress(meta[META_TRACKING], meta[META_EXPERIMENT], info.submission_id)
        best = f"{p.metric}={p.best:.4f}" if p.best is not None else "-"
        counts = [str(n) for n in (p.done, p.running, p.stopped, p.failed, p.interrupted)]
        table.add_row(info.submission_id, str(info.status), p.search or "-", *counts, best)
    console = out()
    console.print(table)
    if job and p.resume:
        console.print(f"interrupted: continue it with {p.resume} --address <the cluster's Ray address>")
    if job and p.run_id:
        uri = (jobs[0].metadata or {})[META_TRACKING]
        console.print(f"search run {p.run_id}: {uri.rstrip('/')}/#/experiments/{p.experiment_id}/runs/{p.run_id}")


def logs(job: Job, address: Address = None, follow: Follow = False) -> None:
    """The search driver's output (progress lines, trial table)."""
    from ..api._job import Job as SearchJob

    found = SearchJob.attach(job, address)
    if follow:
        found.follow()
    else:
        sys.stdout.write(found.logs())


def stop(job: Job, address: Address = None) -> None:
    """Stop a search gracefully: running trials close KILLED (interrupted), the search run KILLED."""
    from ..api._job import Job as SearchJob

    found = SearchJob.attach(job, address)
    before = found.status()
    if before in TERMINAL:
        out().print(f"job {job} already ended: {before}")
        return
    out().print(f"job {job}: {found.stop()}")
