"""Image folders and multi-worker (DDP) trials through the real CLI, local Ray and MLflow."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from tunefleet.spaces import records as rec
from tunefleet.trainables import read_meta


def _assert_refused(result, field: str, tmp_path) -> None:
    assert result.returncode == 2, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}"), result.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "tunefleet-runs").exists()


def _folder_spec(small_spec, root, **data):
    small_spec["data"] = {"kind": "imagefolder", "root": str(root), "image_size": 24, **data}
    return small_spec


@pytest.mark.parametrize(
    ("make", "data", "model", "field", "message"),
    [
        (None, {}, "test_resnet", "data.root", "no such folder"),
        ({"cat": 6}, {}, "test_resnet", "data.root", "need at least 2"),
        ({"cat": 6, "dog": 6}, {"image_size": 32}, "vit_tiny_patch16_224", "data.image_size", "does not fit"),
        ({"cat": 6, "dog": 6}, {"val_fraction": 1.5}, "test_resnet", "data.val_fraction", "must be < 1.0, got 1.5"),
    ],
    ids=["missing-root", "one-class", "size-vs-model", "bad-fraction"],
)
def test_bad_data_is_refused_before_anything_starts(
    make, data, model, field, message, run_cli, write_spec, small_spec, image_folder, tmp_path
):
    root = tmp_path / "images"
    if make:
        image_folder(root, make)
    spec = _folder_spec(small_spec, root, **data)
    spec["model"] = model
    result = run_cli("search", str(write_spec(spec)))
    _assert_refused(result, field, tmp_path)
    assert message in result.stderr


@pytest.mark.slow
def test_image_folder_search_and_export(cli, write_spec, small_spec, image_folder, tmp_path):
    root = image_folder(tmp_path / "images", {"cat": 40, "dog": 25, "fox": 15})
    (root / "fox" / "corrupt.jpg").write_bytes(b"\xff\xd8 truncated")
    spec = _folder_spec(small_spec, "images")  # relative to where the command runs
    spec["search"].update(num_samples=2, max_epochs=2)
    result = cli("search", str(write_spec(spec)))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "80 images in 3 classes" in result.stdout and "1 unreadable skipped" in result.stdout

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("small")
    trials = client.search_runs([experiment.experiment_id], f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_TRIAL}'")
    assert len(trials) == 2 and {r.info.status for r in trials} == {"FINISHED"}
    local = client.download_artifacts(trials[0].info.run_id, rec.CHECKPOINT_ARTIFACT_DIR, str(tmp_path / "ckpt"))
    meta = read_meta(local)
    assert list(meta.class_names) == ["cat", "dog", "fox"] and meta.in_chans == 3 and meta.data_skipped == 1

    exported = cli("export", "small", "--top-k", "2", "--out", "out")
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert (tmp_path / "out" / "ensemble.onnx").is_file()


@pytest.mark.slow
def test_two_worker_trials_scale_batch_and_lr_and_free_workers_when_stopped(cli, write_spec, small_spec, tmp_path):
    # One trial at a time: the second is stopped by ASHA at epoch 1, and the third can only start
    # once the stopped trial's worker group has been given back.
    small_spec["space"] = {"lr": {"grid": [0.05, 1e-5, 1e-4]}, "batch_size": 32, "optimizer": "sgd"}
    small_spec["search"] = {
        "searcher": "grid", "scheduler": "asha", "num_samples": 3, "max_epochs": 2,
        "grace_period": 1, "reduction_factor": 2, "max_concurrent": 1,
    }  # fmt: skip
    small_spec["resources"] = {"workers_per_trial": 2, "cpus_per_worker": 0.5, "lr_scaling": "linear"}
    result = cli("search", str(write_spec(small_spec)), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("small")
    trials = client.search_runs([experiment.experiment_id], f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_TRIAL}'")
    by_lr = {float(t.data.params["lr"]): t for t in trials}
    assert sorted(by_lr) == [1e-5, 1e-4, 0.05]
    assert by_lr[0.05].info.status == "FINISHED" and by_lr[1e-5].info.status == "KILLED"
    assert all(t.data.metrics.get(rec.EPOCHS_TRAINED, 0) >= 1 for t in trials)  # the third one ran too
    for lr, trial in by_lr.items():
        params = trial.data.params
        assert params["resources.workers_per_trial"] == "2" and int(params[rec.EFFECTIVE_BATCH_SIZE]) == 64
        assert float(params[rec.EFFECTIVE_LR]) == pytest.approx(2 * lr)
    best = by_lr[0.05]
    assert best.data.metrics["val_acc"] > 0.5
    # what the workers actually used, as recorded by rank 0 in the checkpoint
    meta = read_meta(client.download_artifacts(best.info.run_id, rec.CHECKPOINT_ARTIFACT_DIR, str(tmp_path / "ckpt")))
    assert meta.workers == 2 and meta.effective_batch_size == 64
    assert meta.effective_lr == pytest.approx(0.1)
