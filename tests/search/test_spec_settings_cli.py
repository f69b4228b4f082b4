"""Spec settings as a user sets them, checked through the CLI: the metric's direction and the spec's store."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from tunefleet.spaces import records as rec

pytestmark = pytest.mark.slow


def test_val_loss_search_minimizes_and_uses_the_specs_tracking_uri(cli, write_spec, small_spec, tmp_path):
    (tmp_path / "store").mkdir()
    uri = "sqlite:///store/runs.db"  # relative to where the command runs
    small_spec["search"] |= {"metric": "val_loss", "num_samples": 3, "max_epochs": 2}
    small_spec["tracking"] = {"uri": uri}
    result = cli("search", str(write_spec(small_spec)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ranking by val_loss (min)" in result.stdout
    assert (tmp_path / "store" / "runs.db").is_file() and not (tmp_path / "mlflow.db").exists()

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'store' / 'runs.db'}")
    exp = client.get_experiment_by_name("small")
    (search,) = client.search_runs([exp.experiment_id], f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_SEARCH}'")
    assert search.data.params[rec.SEARCH_METRIC_PARAM] == "val_loss"
    assert search.data.params[rec.SEARCH_MODE_PARAM] == "min"
    trials = client.search_runs([exp.experiment_id], f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_TRIAL}'")
    assert len(trials) == 3
    best_loss = rec.best_key("val_loss")
    for run in trials:  # each trial's best epoch is its lowest validation loss
        history = client.get_metric_history(run.info.run_id, "val_loss")
        assert run.data.metrics[best_loss] == pytest.approx(min(m.value for m in history))
    lowest = min(trials, key=lambda r: r.data.metrics[best_loss])
    assert search.data.metrics[best_loss] == pytest.approx(lowest.data.metrics[best_loss])
    assert search.data.tags[rec.BEST_TRIAL_TAG] == lowest.info.run_name

    listed = cli("trials", "small", "--tracking-uri", uri)
    assert listed.returncode == 0, listed.stderr
    order = [ln.split("│")[1].strip() for ln in listed.stdout.splitlines() if ln.startswith("│ t")]
    by_loss = sorted(trials, key=lambda r: r.data.metrics[best_loss])
    assert order == [r.info.run_name for r in by_loss]  # lowest loss first
