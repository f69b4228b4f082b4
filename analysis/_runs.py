"""Reading a search back from MLflow into pandas: the parent run and one row per trial."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities import Experiment, Run
from mlflow.tracking import MlflowClient

from tunefleet.spaces import SpecError
from tunefleet.spaces import records as rec


def open_experiment(uri: str, name: str) -> tuple[MlflowClient, Experiment]:
    """A client and the named experiment; a SpecError (nothing created) when either is missing.

    A ``sqlite:///`` store that does not exist yet is reported, not created: MLflow would
    otherwise make an empty database just by being asked.
    """
    file = rec.sqlite_file(uri)
    if file is not None and not Path(file).exists():
        raise SpecError("experiment", f"no experiment {name!r}: the tracking store {uri} does not exist")
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        known = [e.name for e in client.search_experiments()]
        raise SpecError("experiment", f"no experiment {name!r} at {uri}; known: {', '.join(known) or 'none'}")
    return client, experiment


def search_run(client: MlflowClient, experiment: Experiment, run_id: str | None = None) -> Run:
    """The search's parent run: ``run_id`` if given, else the latest search in the experiment."""
    if run_id:
        run = client.get_run(run_id)
        if run.info.experiment_id != experiment.experiment_id or run.data.tags.get(rec.ROLE_TAG) != rec.ROLE_SEARCH:
            raise SpecError("--search-run", f"{run_id} is not a search run of experiment {experiment.name!r}")
        return run
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_SEARCH}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise SpecError("experiment", f"experiment {experiment.name!r} holds no tunefleet search")
    return runs[0]


@contextmanager
def tracking_uri_set(uri: str) -> Iterator[None]:
    """``mlflow.search_runs`` reads the process-wide tracking URI: point it at ``uri`` for one call."""
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous or "")


# Columns every trials frame has, in this order, before its params and metrics.
TRIAL_COLUMNS = ("run_id", "name", "status", "outcome", "error", "node", "start_time", "end_time", "duration_s")
_TAG_COLUMNS = {
    "name": "tags.mlflow.runName",
    "outcome": f"tags.{rec.OUTCOME_TAG}",
    "error": f"tags.{rec.ERROR_TAG}",
    "node": f"tags.{rec.HOSTNAME_TAG}",
}


def trials_frame(client: MlflowClient, parent: Run) -> pd.DataFrame:
    """One row per trial of ``parent``, read with MLflow's own pandas search: the columns in
    ``TRIAL_COLUMNS``, then ``params.<name>`` (strings, as MLflow stores them), then every metric
    under its bare name (``best_val_acc``, ``epochs_trained``; an epoch metric holds its last value)."""
    with tracking_uri_set(client.tracking_uri):
        runs = mlflow.search_runs(
            [parent.info.experiment_id],
            filter_string=rec.trials_filter(parent.info.run_id),
            order_by=["attributes.start_time ASC"],
        )
    assert isinstance(runs, pd.DataFrame)
    if runs.empty:
        return pd.DataFrame(columns=list(TRIAL_COLUMNS))
    frame = pd.DataFrame({"run_id": runs["run_id"], "status": runs["status"]})
    for column, source in _TAG_COLUMNS.items():
        frame[column] = runs[source].fillna("") if source in runs else ""
    frame["start_time"], frame["end_time"] = runs["start_time"], runs["end_time"]
    frame["duration_s"] = (runs["end_time"] - runs["start_time"]).dt.total_seconds()
    params = runs.filter(like="params.", axis=1)
    metrics = runs.filter(like="metrics.", axis=1).rename(columns=lambda c: c.removeprefix("metrics."))
    return pd.concat([frame[list(TRIAL_COLUMNS)], params.sort_index(axis=1), metrics.sort_index(axis=1)], axis=1)


def finished_trials(frame: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    """Trials that ran their planned epochs (status FINISHED) with a best ``metric``, best first;
    a SpecError when there are none (nothing to rank, ensemble or report)."""
    column = rec.best_key(metric)
    finished = frame[frame["status"] == rec.OUTCOME_STATUS[rec.COMPLETED]] if len(frame) else frame
    if column in finished:
        finished = finished.dropna(subset=[column])
    if finished.empty or column not in finished:
        outcomes = frame["outcome"].value_counts().to_dict() if len(frame) else {}
        seen = ", ".join(f"{n} {o or 'running'}" for o, n in outcomes.items()) or "no trials"
        raise SpecError("experiment", f"the search has no finished trials ({seen})")
    return finished.sort_values(column, ascending=mode == "min", kind="stable")


def ranking(parent: Run) -> tuple[str, str]:
    """The metric a search ranked its trials by, and its mode, as the search run recorded them."""
    params = parent.data.params
    return params[rec.SEARCH_METRIC_PARAM], params[rec.SEARCH_MODE_PARAM]


def run_url(uri: str, experiment_id: str, run_id: str) -> str | None:
    """The MLflow UI page of a run when ``uri`` is a tracking server (http/https), else None."""
    if not uri.startswith(("http://", "https://")):
        return None
    return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
