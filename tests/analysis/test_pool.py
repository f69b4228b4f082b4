"""Which trials may be ensembled together: a trial without a checkpoint, or with other classes or
another input size, is left out by name (never mixed in silently); too few left is one line, exit 2.
And trials of a streamed search export without decoding their folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from tunefleet.analysis import Normalized, export_ensemble, onnx_session
from tunefleet.analysis._members import EvalData, eval_data
from tunefleet.spaces import DataSpec, SearchSettings, SpecError, resolve
from tunefleet.spaces import records as rec
from tunefleet.trainables import FileSplit, TrialSettings, load_model, open_data, read_meta, run_trial

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_checkpoint(searched, tmp_path_factory) -> Path:
    """The best checkpoint of the shared real search, as a local folder."""
    client = MlflowClient(tracking_uri=searched.uri)
    exp = client.get_experiment_by_name("small")
    runs = client.search_runs([exp.experiment_id], rec.trials_filter(_search_id(client, exp.experiment_id)))
    best = max(runs, key=lambda r: r.data.metrics[rec.best_key("val_acc")])
    dst = tmp_path_factory.mktemp("ckpt")
    return Path(client.download_artifacts(best.info.run_id, rec.CHECKPOINT_ARTIFACT_DIR, str(dst)))


def _search_id(client: MlflowClient, experiment_id: str) -> str:
    (search,) = client.search_runs([experiment_id], f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_SEARCH}'")
    return str(search.info.run_id)


def _variant(source: Path, folder: Path, **meta_changes: object) -> Path:
    """A copy of ``source`` whose meta.json says something else (meta.json is not in its own checksums)."""
    shutil.copytree(source, folder)
    meta = json.loads((folder / rec.META).read_text())
    (folder / rec.META).write_text(json.dumps(meta | meta_changes))
    return folder


def _search(tmp_path: Path, trials: list[tuple[str, Path | None, str]]) -> str:
    """A search run with trial runs (name, checkpoint folder or None, outcome), ranked in list order."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("pool", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(exp, tags={rec.ROLE_TAG: rec.ROLE_SEARCH}, run_name="search").info.run_id
    client.log_param(parent, rec.SEARCH_METRIC_PARAM, "val_acc")
    client.log_param(parent, rec.SEARCH_MODE_PARAM, "max")
    for rank, (name, checkpoint, outcome) in enumerate(trials):
        tags = {rec.ROLE_TAG: rec.ROLE_TRIAL, rec.PARENT_RUN_TAG: parent, rec.OUTCOME_TAG: outcome}
        run_id = client.create_run(exp, tags=tags, run_name=name).info.run_id
        client.log_metric(run_id, rec.best_key("val_acc"), 0.9 - rank / 10)
        client.log_metric(run_id, rec.EPOCHS_TRAINED, 3 + rank)
        if checkpoint is not None:
            client.log_artifacts(run_id, str(checkpoint), rec.CHECKPOINT_ARTIFACT_DIR)
        client.set_terminated(run_id, rec.OUTCOME_STATUS[outcome])
    client.set_terminated(parent, "FINISHED")
    return uri


def test_members_that_cannot_be_mixed_are_left_out_by_name(real_checkpoint, tmp_path):
    other_classes = _variant(real_checkpoint, tmp_path / "b", class_names=[f"c{i}" for i in range(10)])
    bigger = _variant(real_checkpoint, tmp_path / "d", image_size=32)
    uri = _search(
        tmp_path,
        [
            ("alpha", real_checkpoint, rec.COMPLETED),
            ("beta", other_classes, rec.COMPLETED),
            ("gamma", None, rec.COMPLETED),
            ("delta", bigger, rec.COMPLETED),
            ("eps", real_checkpoint, rec.COMPLETED),
        ],
    )
    said: list[str] = []
    card = export_ensemble(uri, "pool", 2, tmp_path / "out", method="mean", say=said.append).card
    assert [m.name for m in card.members] == ["alpha", "eps"]
    assert said == [
        "left out trial beta: its class_names differs from the best trial's",
        "left out trial gamma: it has no best checkpoint in MLflow",
        "left out trial delta: its image_size differs from the best trial's",
    ]
    with pytest.raises(SpecError, match=r"^--top-k: .*only 2 .*beta: its class_names.*gamma: no checkpoint.*delta"):
        export_ensemble(uri, "pool", 3, tmp_path / "none", method="mean", say=said.append)
    assert not (tmp_path / "none").exists()


def test_trials_stopped_early_are_candidates_unless_finished_only(real_checkpoint, tmp_path):
    """The pool is every trial with a best epoch: one a scheduler stopped is a real model at it."""
    uri = _search(tmp_path, [("alpha", real_checkpoint, rec.STOPPED), ("beta", real_checkpoint, rec.COMPLETED)])
    card = export_ensemble(uri, "pool", 2, tmp_path / "out", method="mean").card
    assert [(m.name, m.epochs_trained) for m in card.members] == [("alpha", 3), ("beta", 4)]
    with pytest.raises(SpecError, match=r"^--top-k: asked for 2 trials but the search has 1 finished trials$"):
        export_ensemble(uri, "pool", 2, tmp_path / "only", method="mean", stopped=False)
    assert not (tmp_path / "only").exists()


def test_a_search_without_a_trial_to_ensemble_is_refused_by_export(tmp_path):
    uri = _search(tmp_path, [("alpha", None, rec.STOPPED), ("beta", None, rec.FAILED)])
    with pytest.raises(SpecError, match=r"^--top-k: asked for 1 trials but only 0 of them .*alpha: no checkpoint"):
        export_ensemble(uri, "pool", 1, tmp_path / "out")
    with pytest.raises(
        SpecError, match=r"^experiment: the search has no finished trials \(1 stopped_early, 1 failed\)"
    ):
        export_ensemble(uri, "pool", 1, tmp_path / "out", stopped=False)
    assert not (tmp_path / "out").exists()


@pytest.fixture
def streamed_checkpoint(tmp_path, image_folder) -> Path:
    """The best checkpoint of a two-epoch trial on an image folder streamed from disk."""
    root = image_folder(tmp_path / "images", {"cat": 20, "dog": 20, "fox": 20})
    data = DataSpec(kind="imagefolder", root=str(root), image_size=20, cache="stream", loader_workers=1)
    settings = TrialSettings(data=data, search=SearchSettings(max_epochs=2, grace_period=1))
    best = tmp_path / "best"

    def keep_best(metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        if checkpoint_dir is not None and rec.TEST_ACC in metrics:  # a new best: its test logits are saved
            shutil.rmtree(best, ignore_errors=True)
            shutil.copytree(checkpoint_dir / rec.BEST, best)

    run_trial(resolve({"lr": 0.05, "batch_size": 16}), settings, keep_best)
    return best


def test_a_streamed_search_exports_from_files_a_batch_at_a_time(streamed_checkpoint, tmp_path):
    """Scoring reads the test files through loader workers (no decoded split), gives the logits
    the memory path gives bit for bit, and the export's ONNX graph reproduces the card on them."""
    meta = read_meta(streamed_checkpoint)
    assert meta.settings.data.cache == "stream"
    streamed = eval_data(meta.settings.data)
    assert isinstance(streamed.feed.splits["test"], FileSplit)
    memory_spec = DataSpec.model_validate(meta.settings.data.model_dump() | {"cache": "memory"})
    decoded = EvalData(open_data(memory_spec)[0], workers=0)
    model, _ = load_model(streamed_checkpoint)
    module = Normalized(model, meta.mean, meta.std).eval()
    logits = streamed.over_test(lambda x: module(x).numpy())
    assert np.array_equal(logits, decoded.over_test(lambda x: module(x).numpy()))
    assert np.array_equal(streamed.y_test, decoded.y_test) and len(logits) == len(streamed.y_test) == 12
    streamed.feed.close()
    decoded.feed.close()

    uri = _search(
        tmp_path, [("alpha", streamed_checkpoint, rec.COMPLETED), ("beta", streamed_checkpoint, rec.COMPLETED)]
    )
    card = export_ensemble(uri, "pool", 2, tmp_path / "out", method="mean", say=print).card
    labels = decoded.y_test
    member_acc = float((logits.argmax(1) == labels).mean())
    assert card.members[0].test.acc == pytest.approx(member_acc, abs=1e-9)
    images = np.stack([np.asarray(decoded.feed.splits["test"].image(i)) for i in range(len(labels))])
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    probs = onnx_session(tmp_path / "out" / rec.ONNX_FILE)(x)
    assert float((probs.argmax(1) == labels).mean()) == pytest.approx(card.ensemble.acc, abs=1e-9)
