"""A real search through the CLI over a conditional space, checked in MLflow: each trial logs the
knobs of the options it chose, and only those (Ray Tune's random search samples every knob flat)."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from tunefleet.spaces import records as rec

pytestmark = pytest.mark.slow


def test_random_search_logs_momentum_only_for_sgd_trials(cli, write_spec, small_spec, tmp_path):
    small_spec["space"] = {
        "lr": {"loguniform": [0.01, 0.05]},
        "batch_size": 32,
        "optimizer": {
            "choice": {
                "sgd": {"momentum": {"uniform": [0.8, 0.95]}, "nesterov": {"choice": [True, False]}},
                "adamw": {"beta2": {"uniform": [0.99, 0.999]}},
                "lamb": {},
            }
        },
        "schedule": {"choice": {"cosine": {}, "plateau": {"patience_epochs": {"int": [0, 2]}}}},
        "augmentation": {"mixup_alpha": {"choice": [0.0, 0.2]}},
    }
    small_spec["search"] = {
        "searcher": "random",
        "scheduler": "fifo",
        "num_samples": 4,
        "max_epochs": 2,
        "grace_period": 1,
        "seed": 7,
    }
    result = cli("search", str(write_spec(small_spec)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 trials · random searcher" in result.stdout

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("small")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    children = [r for r in runs if r.data.tags.get(rec.PARENT_RUN_TAG)]
    assert len(children) == 4
    chosen = {r.data.params["optimizer"] for r in children}
    assert chosen == {"sgd", "adamw", "lamb"}, chosen  # Tune's generator is seeded: seed 7 draws all three
    for run in children:
        params = run.data.params
        assert run.info.status == "FINISHED", run.data.tags.get(rec.ERROR_TAG)
        sgd = params["optimizer"] == "sgd"
        assert ("optimizer.momentum" in params) == sgd and ("optimizer.nesterov" in params) == sgd
        assert ("optimizer.beta2" in params) == (params["optimizer"] in ("adamw", "lamb"))
        if params["optimizer"] == "lamb":  # not searched for lamb: its default, not adamw's flat-sampled value
            assert params["optimizer.beta2"] == "0.999"
        if sgd:
            assert 0.8 <= float(params["optimizer.momentum"]) <= 0.95
        assert ("schedule.patience_epochs" in params) == (params["schedule"] == "plateau")
        # nothing of the flat sampling leaks into the logged recipe
        assert not any(k.startswith(("optimizer.sgd.", "optimizer.adamw.", "schedule.plateau.")) for k in params)
        assert params["augmentation.mixup_alpha"] in ("0.0", "0.2")
