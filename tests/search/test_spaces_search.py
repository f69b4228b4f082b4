"""One real search through the CLI, read back two ways: a random search over a conditional space,
ranked by ``val_loss`` and recorded in the store the spec names.

- The space: each trial logs the knobs of the options it chose, and only those (Ray Tune's random
  search samples every knob flat).
- The settings, as a user sets them: the metric's direction and the spec's tracking URI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from tunefleet.spaces import records as rec

pytestmark = pytest.mark.slow

URI = "sqlite:///store/runs.db"  # relative to where the command runs


@pytest.fixture(scope="module")
def random_search(search_in) -> Any:
    space = {
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
    search = {
        "searcher": "random",
        "scheduler": "fifo",
        "num_samples": 4,
        "max_epochs": 2,
        "grace_period": 1,
        "seed": 7,
        "metric": "val_loss",
    }
    return search_in("random", store="store/runs.db", space=space, search=search, tracking={"uri": URI})


def _runs(searched: Any, role: str) -> list:
    client = MlflowClient(tracking_uri=searched.uri)
    exp = client.get_experiment_by_name("small")
    return client.search_runs([exp.experiment_id], f"tags.`{rec.ROLE_TAG}` = '{role}'", max_results=100)


def test_random_search_logs_momentum_only_for_sgd_trials(random_search):
    assert "4 trials · random searcher" in random_search.output
    children = _runs(random_search, rec.ROLE_TRIAL)
    assert len(children) == 4 and all(r.data.tags.get(rec.PARENT_RUN_TAG) for r in children)
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


def test_val_loss_search_minimizes_and_uses_the_specs_tracking_uri(random_search):
    folder: Path = random_search.folder
    assert "ranking by val_loss (min)" in random_search.output
    assert (folder / "store" / "runs.db").is_file() and not (folder / "mlflow.db").exists()

    client = MlflowClient(tracking_uri=random_search.uri)
    (search,) = _runs(random_search, rec.ROLE_SEARCH)
    assert search.data.params[rec.SEARCH_METRIC_PARAM] == "val_loss"
    assert search.data.params[rec.SEARCH_MODE_PARAM] == "min"
    trials = _runs(random_search, rec.ROLE_TRIAL)
    assert len(trials) == 4
    best_loss = rec.best_key("val_loss")
    for run in trials:  # each trial's best epoch is its lowest validation loss
        history = client.get_metric_history(run.info.run_id, "val_loss")
        assert run.data.metrics[best_loss] == pytest.approx(min(m.value for m in history))
    lowest = min(trials, key=lambda r: r.data.metrics[best_loss])
    assert search.data.metrics[best_loss] == pytest.approx(lowest.data.metrics[best_loss])
    assert search.data.tags[rec.BEST_TRIAL_TAG] == lowest.info.run_name

    listed = random_search.cli("trials", "small", "--tracking-uri", URI)
    assert listed.returncode == 0, listed.stderr
    order = [ln.split("│")[1].strip() for ln in listed.stdout.splitlines() if ln.startswith("│ t")]
    by_loss = sorted(trials, key=lambda r: r.data.metrics[best_loss])
    assert order == [r.info.run_name for r in by_loss]  # lowest loss first
