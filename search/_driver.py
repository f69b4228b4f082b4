"""The search driver behind ``tunefleet search`` (and, on a cluster, behind a submitted job).

It opens the search run, starts or joins Ray, runs the Tune experiment with the ledger, MLflow
and console callbacks, and closes every run however the search ends. SIGTERM (``kill``, a job
stop) is handled as Ctrl-C: Tune stops gracefully and trials cut short close as interrupted.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient
from rich.console import Console

from tunefleet.spaces import SearchSpec, SpecError
from tunefleet.spaces.records import COMPLETED, RUNNING, STOPPED
from tunefleet.trainables import RunLink

from ._cluster import autoscaler_node_shapes, check_trial_fits
from ._experiment import Plan, run_experiment, start_ray
from ._jobs import JOB_ENV
from ._ledger import TrialLedger
from ._progress import ConsoleProgress, trials_table
from ._search_run import finish_search_run, start_search_run
from ._tracking import MlflowTrialCallback

SERVER_SCHEMES = ("http://", "https://")


def _sigterm_as_interrupt() -> None:
    # Tune installs its graceful-stop handler for SIGINT; route SIGTERM there too.
    signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))


def _local_nodes() -> list[dict[str, float]]:
    import torch

    return [{"CPU": float(os.cpu_count() or 1), "GPU": float(torch.cuda.device_count())}]


def _cluster_nodes() -> list[dict[str, float]]:
    """The nodes that are up, and the node types an autoscaler may add."""
    import ray

    return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")] + autoscaler_node_shapes()


def _header(spec: SearchSpec, plan: Plan, console: Console) -> None:
    s, res = spec.search, spec.resources
    planned = f"grid of {plan.trials} points" if s.searcher == "grid" else f"{plan.trials} trials"
    console.print(
        f"[bold]{spec.name}[/]: {planned} · {s.searcher} searcher · {s.scheduler} scheduler · "
        f"{s.max_epochs} max epochs · ranking by {s.metric} ({s.mode})"
    )
    workers = (
        f" · {res.workers_per_trial} DDP workers per trial (batch and LR scaled: {res.lr_scaling})"
        if res.workers_per_trial > 1
        else ""
    )
    console.print(f"data: {plan.data} at {spec.data.image_size} px{workers}", markup=False, highlight=False)


def _open(spec: SearchSpec, client: MlflowClient, address: str | None) -> str:
    """Open the search run while Ray starts (a new SQLite schema takes seconds); refuse a trial
    shape no node holds. ray.init stays on the main thread, where it installs signal handlers."""
    joining = bool(address or os.environ.get("RAY_ADDRESS"))
    if not joining:
        check_trial_fits(spec.resources, _local_nodes())
    with ThreadPoolExecutor(1) as pool:
        parent = pool.submit(start_search_run, client, spec, os.environ.get(JOB_ENV))
        try:
            start_ray(address, dashboard=spec.resources.workers_per_trial > 1)
            if joining:
                check_trial_fits(spec.resources, _cluster_nodes())
        except SpecError:
            client.delete_run(parent.result())  # refused before any trial: leave no run behind
            raise
        except BaseException:
            client.set_terminated(parent.result(), "FAILED")
            raise
        return parent.result()


def run_search(
    spec: SearchSpec, plan: Plan, uri: str, address: str | None, storage: str | Path, console: Console
) -> int:
    """Run the search to its end; returns the exit code (0, 1 every trial failed, 130 interrupted)."""
    _header(spec, plan, console)
    _sigterm_as_interrupt()
    client = MlflowClient(tracking_uri=uri)
    parent_id = _open(spec, client, address)
    s = spec.search
    on_server = uri.startswith(SERVER_SCHEMES)
    ledger = TrialLedger(s.metric, s.mode)
    tracker = MlflowTrialCallback(uri, parent_id, spec, ledger, driver_uploads=not on_server)
    callbacks: list[Any] = [ledger, tracker, ConsoleProgress(ledger, console, plan.trials)]
    link = RunLink(uri, parent_id) if on_server else None
    started, status, cut_short = time.perf_counter(), "FAILED", 0
    try:
        run_experiment(spec, callbacks, storage, plan.trials, run_link=link)
        # On Ctrl-C Tune stops gracefully and returns: trials still running mean an interruption.
        status = "KILLED" if ledger.counts()[RUNNING] else "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
    finally:
        wall = time.perf_counter() - started
        if status != "FINISHED":
            cut_short = tracker.mark_interrupted()
        tracker.close()  # every queued trial write lands before the search run is closed
        finish_search_run(client, parent_id, ledger, wall, status)
    console.print(trials_table(ledger))
    if status == "KILLED":
        console.print(
            f"interrupted: {cut_short} running trial(s) stopped (MLflow status KILLED, outcome interrupted); "
            "finished trials and their checkpoints are kept"
        )
        return 130
    best, counts = ledger.best_record(), ledger.counts()
    if best is not None:
        console.print(f"best: {best.name}  {s.metric}={best.best[s.metric]:.4f}")
    console.print(
        f"wall time {wall:.1f}s · MLflow experiment [bold]{spec.tracking.experiment}[/] (search run {parent_id})"
    )
    if on_server:
        experiment_id = client.get_run(parent_id).info.experiment_id
        console.print(f"open the results: {uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{parent_id}")
    else:
        console.print(f"open the results: mlflow ui --backend-store-uri {uri}")
    return 0 if counts[COMPLETED] + counts[STOPPED] else 1
