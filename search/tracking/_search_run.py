"""The search run and what a trial run records: params, summary, and closing the search.

``MlflowTrialCallback`` (``_callback.py``) writes trial runs during the search; these functions
open and close the search run around it and define what goes into each record (names from
``tunefleet.spaces.records``).
"""

from __future__ import annotations

import time
from typing import Any

from mlflow.entities import Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tunefleet.spaces import SearchSpec, flatten_recipe, scaled_lr
from tunefleet.spaces import records as rec

from ._ledger import TrialLedger
from ._store import LogBatch, Op, SetTerminated, apply_op


def start_search_run(
    client: MlflowClient,
    spec: SearchSpec,
    job_id: str | None = None,
    tags: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> str:
    """Create (or reuse) the experiment and open the parent run (with ``tags``, and ``params``
    besides the spec's); return its id."""
    experiment = client.get_experiment_by_name(spec.tracking.experiment)
    if experiment is None:
        try:
            experiment_id = client.create_experiment(spec.tracking.experiment)
        except MlflowException:  # another search created it a moment ago
            experiment = client.get_experiment_by_name(spec.tracking.experiment)
            if experiment is None:
                raise
            experiment_id = experiment.experiment_id
    else:
        experiment_id = experiment.experiment_id
        if experiment.lifecycle_stage == "deleted":  # deleted in the UI: names stay taken, so bring it back
            client.restore_experiment(experiment_id)
    run = client.create_run(
        experiment_id,
        run_name=f"{spec.name} {time.strftime('%Y-%m-%d %H:%M:%S')}",
        tags={
            rec.ROLE_TAG: rec.ROLE_SEARCH,
            rec.SPEC_NAME_TAG: spec.name,
            **({rec.JOB_ID_TAG: job_id} if job_id else {}),
            **(tags or {}),
        },
    )
    logged = [Param(k, str(v)) for k, v in (spec.params() | (params or {})).items()]
    client.log_batch(run.info.run_id, params=logged)
    client.log_text(run.info.run_id, spec.to_yaml(), rec.SPEC_ARTIFACT)
    return str(run.info.run_id)


def trial_params(spec: SearchSpec, recipe: dict[str, Any], trial_id: str) -> dict[str, Any]:
    """A trial run's params: its recipe, and what the batch and LR become with several workers."""
    res = spec.resources
    return {
        **flatten_recipe(recipe),
        "resources.workers_per_trial": res.workers_per_trial,
        "resources.lr_scaling": res.lr_scaling,
        rec.EFFECTIVE_BATCH_SIZE: recipe["batch_size"] * res.workers_per_trial,
        rec.EFFECTIVE_LR: scaled_lr(recipe["lr"], res.workers_per_trial, res.lr_scaling),
        rec.TRIAL_ID_PARAM: trial_id,
    }


def trial_summary(best: dict[str, Any], epochs: int, metric: str) -> dict[str, float]:
    """A trial's summary metrics: every val/test metric (and the search metric) at its best epoch."""
    summary = {rec.best_key(k): float(v) for k, v in best.items() if k.startswith(("val_", "test_")) or k == metric}
    if best:
        summary[rec.BEST_EPOCH] = float(best["epoch"])
    summary[rec.EPOCHS_TRAINED] = float(epochs)
    return summary


def search_summary(key: str, ledger: TrialLedger, wall_s: float, status: str) -> list[Op]:
    """The writes that summarize the search on its parent run (named ``key``) and close it."""
    counts = ledger.counts()
    now = int(time.time() * 1000)
    metrics = {
        rec.TRIALS_COMPLETED: counts[rec.COMPLETED],
        rec.TRIALS_STOPPED_EARLY: counts[rec.STOPPED],
        rec.TRIALS_FAILED: counts[rec.FAILED] + counts[rec.TIMED_OUT],
        rec.EPOCHS_TRAINED: sum(r.epochs for r in ledger.records.values()),
        rec.WALL_S: wall_s,
    }
    tags = {}
    best = ledger.best_record()
    if best is not None:
        metrics[rec.best_key(ledger.metric)] = best.best[ledger.metric]
        if rec.TEST_ACC in best.best:
            metrics[rec.BEST_TRIAL_TEST_ACC] = best.best[rec.TEST_ACC]
        tags[rec.BEST_TRIAL_TAG] = best.name
    rows = tuple((k, float(v), now, 0) for k, v in metrics.items())
    return [LogBatch(key=key, metrics=rows, tags=tags), SetTerminated(key=key, status=status)]


def finish_search_run(client: MlflowClient, run_id: str, ledger: TrialLedger, wall_s: float, status: str) -> None:
    """Summarize the search on its parent run and close it with ``status``, right away (the
    driver sends the same writes through its ``TrackingWriter`` instead)."""
    for op in search_summary(run_id, ledger, wall_s, status):
        apply_op(client, op, run_id)
