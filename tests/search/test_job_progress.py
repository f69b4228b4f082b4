"""``status`` / ``Job.progress()`` read a submitted search from MLflow: right after ``submit`` its
search run may exist with its tags but not yet its params (the driver logs them next), and that
moment reads as not started yet, never as an error."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from tunefleet.search.service._jobs import Progress, progress
from tunefleet.search.tracking._open import open_store
from tunefleet.spaces import records as rec


def test_a_search_run_being_opened_reads_as_not_started(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    open_store(uri)
    client = MlflowClient(tracking_uri=uri)
    assert progress(uri, "small", "tunefleet-job") == Progress()  # no experiment yet
    tags = {rec.ROLE_TAG: rec.ROLE_SEARCH, rec.JOB_ID_TAG: "tunefleet-job"}
    run = client.create_run(client.create_experiment("small"), tags=tags)
    assert progress(uri, "small", "tunefleet-job") == Progress()  # tagged, its params still to come
    client.log_param(run.info.run_id, rec.SEARCH_METRIC_PARAM, "val_acc")
    client.log_param(run.info.run_id, rec.SEARCH_MODE_PARAM, "max")
    opened = progress(uri, "small", "tunefleet-job")
    assert opened.run_id == run.info.run_id and opened.metric == "val_acc" and opened.best is None
