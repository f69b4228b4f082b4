"""Real searches through the CLI on local Ray, checked the way a user would check them: in MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tunefleet.spaces import records as rec

pytestmark = pytest.mark.slow


def _runs(tmp_path, experiment: str):
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get(rec.ROLE_TAG) == rec.ROLE_SEARCH]
    children = [r for r in runs if r.data.tags.get(rec.ROLE_TAG) == rec.ROLE_TRIAL]  # not export runs
    return client, parents, children


def test_search_records_every_trial_in_mlflow(searched, tmp_path):
    # The shared search (conftest's ``searched``); exporting it is tested in tests/analysis.
    assert "best: t" in searched.output and "mlflow ui --backend-store-uri" in searched.output
    assert "cached in memory" in searched.output  # the data path, chosen by data.cache: auto
    client, parents, children = _runs(searched.folder, "small")
    assert len(parents) == 1 and len(children) == 4
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["search.searcher"] == "optuna" and parent.data.metrics[rec.TRIALS_COMPLETED] == 4
    assert parent.data.params[rec.DATA_CACHE_PARAM] == "memory" and parent.data.params["data.cache"] == "auto"
    assert rec.SPEC_ARTIFACT in [a.path for a in client.list_artifacts(parent.info.run_id)]
    for run in children:
        assert run.data.tags[rec.PARENT_RUN_TAG] == parent.info.run_id
        assert run.info.status == "FINISHED" and run.data.tags[rec.OUTCOME_TAG] == rec.COMPLETED
        params = run.data.params
        assert {"lr", "batch_size", "optimizer", "model", rec.EFFECTIVE_LR, rec.EFFECTIVE_BATCH_SIZE} <= set(params)
        # conditional knobs exist only under their option
        assert ("optimizer.momentum" in params) == (params["optimizer"] == "sgd")
        assert float(params[rec.EFFECTIVE_LR]) == pytest.approx(float(params["lr"]))  # one worker
        history = client.get_metric_history(run.info.run_id, "val_acc")
        assert sorted(m.step for m in history) == [1, 2, 3]
        assert run.data.metrics[rec.EPOCHS_TRAINED] == 3
        assert max(m.value for m in history) == pytest.approx(run.data.metrics[rec.best_key("val_acc")])
        # set-up is timed once, on the first epoch; no file went unread
        assert [m.step for m in client.get_metric_history(run.info.run_id, rec.SETUP_TIME)] == [1]
        assert {m.value for m in client.get_metric_history(run.info.run_id, rec.UNREADABLE)} == {0.0}
        files = {a.path for a in client.list_artifacts(run.info.run_id, rec.CHECKPOINT_ARTIFACT_DIR)}
        assert {"checkpoint/model.safetensors", "checkpoint/meta.json", "checkpoint/logits.safetensors"} <= files

    too_many = searched.cli("export", "small", "--top-k", "5", "--out", str(tmp_path / "again"))
    assert too_many.returncode == 2 and "--top-k" in too_many.stderr
    assert not (tmp_path / "again").exists()


def test_grid_with_asha_records_stopped_and_failed_trials(cli, write_spec, small_spec, tmp_path):
    """Scenarios 6 and 9: a trial that diverges (NaN loss) on every attempt is restarted
    ``max_failures`` times, then ends FAILED with the reason and every attempt's traceback; the
    search goes on, and export leaves it out. ASHA stops a trial early: one trial at a time, in
    grid order, so the hopeless LR reaches the first rung after a good one has set its cutoff."""
    small_spec["space"] = {
        "lr": {"grid": [0.06, 1.0e-5, 0.03, 1.0e10]},  # 1e-5 barely learns; 1e10 diverges
        "batch_size": 32,
        "optimizer": "sgd",
    }
    small_spec["search"] = {
        "searcher": "grid",
        "scheduler": "asha",
        "num_samples": 4,
        "max_epochs": 4,
        "grace_period": 1,
        "reduction_factor": 2,
        "max_failures": 1,
        "max_concurrent": 1,
    }
    result = cli("search", str(write_spec(small_spec)))
    assert result.returncode == 0, result.stdout + result.stderr

    client, parents, children = _runs(tmp_path, "small")
    assert len(parents) == 1 and len(children) == 4
    by_lr = {float(r.data.params["lr"]): r for r in children}
    assert sorted(by_lr) == [1.0e-5, 0.03, 0.06, 1.0e10]
    failed = by_lr[1.0e10]
    assert failed.info.status == "FAILED" and failed.data.tags[rec.OUTCOME_TAG] == rec.FAILED
    assert "train loss became" in failed.data.tags[rec.ERROR_TAG]
    assert failed.data.tags[rec.RESTARTS_TAG] == "1"
    tracebacks = Path(client.download_artifacts(failed.info.run_id, rec.ERROR_ARTIFACT, str(tmp_path)))
    text = tracebacks.read_text()
    assert "Failure # 1" in text and "Failure # 2" in text and "FloatingPointError" in text
    hopeless = by_lr[1.0e-5]  # stopped at the first rung, below the cutoff the 0.06 trial set
    assert hopeless.info.status == "KILLED" and hopeless.data.tags[rec.OUTCOME_TAG] == rec.STOPPED
    assert hopeless.data.metrics[rec.EPOCHS_TRAINED] == 1
    assert parents[0].data.metrics[rec.TRIALS_STOPPED_EARLY] >= 1
    for lr in (1.0e-5, 0.03, 0.06):
        run = by_lr[lr]
        epochs = run.data.metrics[rec.EPOCHS_TRAINED]
        if run.info.status == "KILLED":
            assert run.data.tags[rec.OUTCOME_TAG] == rec.STOPPED and epochs < 4
        else:
            assert run.info.status == "FINISHED" and epochs == 4
    assert parents[0].data.metrics[rec.TRIALS_FAILED] == 1
    # Every trial with a best epoch is a candidate, the ones ASHA stopped too (at their best epoch);
    # --finished-only keeps to the trials that ran all their epochs.
    finished = sum(r.info.status == "FINISHED" for r in children)
    stopped = {r.info.run_name: r for r in children if r.data.tags[rec.OUTCOME_TAG] == rec.STOPPED}
    pool = finished + len(stopped)
    exported = cli("export", "small", "--top-k", str(pool), "--out", str(tmp_path / "export"))
    assert exported.returncode == 0, exported.stderr
    assert "epochs (best)" in exported.stdout and f"{hopeless.info.run_name} " in exported.stdout
    card = json.loads((tmp_path / "export" / "card.json").read_text())
    assert len(card["members"]) == pool and failed.info.run_name not in [m["name"] for m in card["members"]]
    trained = {m["name"]: m["epochs_trained"] for m in card["members"]}
    assert {name: trained[name] for name in stopped} == {
        name: int(run.data.metrics[rec.EPOCHS_TRAINED]) for name, run in stopped.items()
    }
    assert trained[hopeless.info.run_name] == 1 and all(trained[n] == 4 for n in trained if n not in stopped)
    only = cli("export", "small", "--top-k", str(pool), "--finished-only", "--out", str(tmp_path / "none"))
    assert only.returncode == 2, only.stdout + only.stderr
    assert f"--top-k: asked for {pool} trials but the search has {finished} finished trials" in only.stderr
    assert not (tmp_path / "none").exists()
