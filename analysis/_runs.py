"""Reading a search back from MLflow into pandas: the parent run and one row per trial."""

from __future__ import annotations

from pathlib import Path

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


def trials_frame(client: MlflowClient, parent: Run) -> pd.DataFrame:
    """One row per trial of ``parent``: run id, name, status, outcome, params and summary metrics."""
    runs = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`{rec.PARENT_RUN_TAG}` = '{parent.info.run_id}'",
        max_results=10_000,
    )
    rows = []
    for run in runs:
        row: dict[str, object] = {
            "run_id": run.info.run_id,
            "name": run.info.run_name,
            "status": run.info.status,
            "outcome": run.data.tags.get(rec.OUTCOME_TAG, ""),
            "error": run.data.tags.get(rec.ERROR_TAG, ""),
        }
        row.update({f"params.{k}": v for k, v in run.data.params.items()})
        row.update(run.data.metrics)
        rows.append(row)
    return pd.DataFrame(rows)


def top_trials(frame: pd.DataFrame, metric: str, mode: str, k: int) -> pd.DataFrame:
    """The ``k`` best trials that ran their planned epochs (status FINISHED), best first."""
    column = rec.best_key(metric)
    finished = frame[frame["status"] == rec.OUTCOME_STATUS[rec.COMPLETED]] if len(frame) else frame
    if column in finished:
        finished = finished.dropna(subset=[column])
    if k < 1 or k > len(finished):
        raise SpecError("--top-k", f"asked for {k} trials but the search has {len(finished)} finished trials")
    return finished.sort_values(column, ascending=mode == "min").head(k)


def ranking(parent: Run) -> tuple[str, str]:
    """The metric a search ranked its trials by, and its mode, as the search run recorded them."""
    params = parent.data.params
    return params[rec.SEARCH_METRIC_PARAM], params[rec.SEARCH_MODE_PARAM]
