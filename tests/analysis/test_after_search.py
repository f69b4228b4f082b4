"""After a real search: the trials table against MLflow, ensembles of every method, the ONNX
export, the Model Registry and ``predict`` on an image folder written from the test split."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from tunefleet.analysis import METHODS, export_ensemble, onnx_session
from tunefleet.spaces import ExportCard
from tunefleet.spaces import records as rec
from tunefleet.trainables import ImageData, Split, load_data

pytestmark = pytest.mark.slow


def _trial_runs(uri: str) -> list:
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("small")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    return [r for r in runs if r.data.tags.get(rec.ROLE_TAG) == rec.ROLE_TRIAL]


def test_trials_in_every_format_match_mlflow(searched):
    runs = _trial_runs(searched.uri)
    assert len(runs) == 4
    by_id = {r.info.run_id: r for r in runs}

    csv = searched.cli("trials", "small", "--format", "csv")
    assert csv.returncode == 0, csv.stderr
    table = pd.read_csv(io.StringIO(csv.stdout), dtype={"params.batch_size": str})
    rows = json.loads(searched.cli("trials", "small", "--format", "json").stdout)
    for frame in (table, pd.DataFrame(rows)):
        assert set(frame["run_id"]) == set(by_id)
        assert list(frame["best_val_acc"]) == sorted(frame["best_val_acc"], reverse=True)  # best first
        for row in frame.to_dict(orient="records"):
            run = by_id[row["run_id"]]
            assert row["name"] == run.info.run_name and row["status"] == run.info.status
            assert row["outcome"] == run.data.tags[rec.OUTCOME_TAG] and row["node"] == run.data.tags[rec.HOSTNAME_TAG]
            for key, value in run.data.metrics.items():
                assert row[key] == pytest.approx(value), key
            for key, value in run.data.params.items():
                assert str(row[f"params.{key}"]) == value, key
            assert row["duration_s"] == pytest.approx((run.info.end_time - run.info.start_time) / 1000, abs=1e-3)

    top = json.loads(searched.cli("trials", "small", "--top", "2", "--sort", "val_loss", "--format", "json").stdout)
    assert [r["best_val_loss"] for r in top] == sorted(r.data.metrics["best_val_loss"] for r in runs)[:2]

    shown = searched.cli("trials", "small", "--top", "3")
    assert shown.returncode == 0, shown.stderr
    shown_ids = [i for i in by_id if by_id[i].info.run_name in shown.stdout]
    assert len(shown_ids) == 3
    worst = min(r.data.metrics["best_val_acc"] for r in runs)
    assert all(by_id[i].data.metrics["best_val_acc"] >= worst for i in shown_ids)
    positions = sorted(shown_ids, key=lambda i: shown.stdout.index(by_id[i].info.run_name))
    assert [by_id[i].data.metrics["best_val_acc"] for i in positions] == sorted(
        (by_id[i].data.metrics["best_val_acc"] for i in shown_ids), reverse=True
    )


def test_the_search_ends_with_its_report_on_the_search_run(searched):
    assert "report: " in searched.output
    client = MlflowClient(tracking_uri=searched.uri)
    exp = client.get_experiment_by_name("small")
    (parent,) = client.search_runs([exp.experiment_id], f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_SEARCH}'")
    logged = {Path(a.path).name for a in client.list_artifacts(parent.info.run_id, rec.REPORT_ARTIFACT_DIR)}
    local = {p.name for p in (searched.folder / "reports" / "small").iterdir()}
    assert "report.html" in logged and len([n for n in logged if n.endswith(".png")]) >= 5
    assert logged == local - {"live-report.log"}  # the live refreshes' own log stays local


def _without_test_labels(data: ImageData) -> ImageData:
    """The same data, but the test split's labels shuffled: a choice that read them would change."""
    shuffled = np.random.default_rng(1).permutation(data.test.labels)
    return ImageData(data.train, data.val, Split(data.test.images, shuffled), data.class_names)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_exports_one_graph_that_matches_onnxruntime(searched, method, tmp_path):
    result = export_ensemble(searched.uri, "small", 3, tmp_path / method, method=method, say=lambda _: None)
    card = result.card
    assert card.onnx.max_abs_diff_vs_torch < 1e-4
    data = load_data("digits", 16, 0)
    probs = onnx_session(tmp_path / method / rec.ONNX_FILE)(_inputs(data.test.images))
    assert float((probs.argmax(1) == data.test.labels).mean()) == pytest.approx(card.ensemble.acc, abs=1e-9)
    assert {"acc", "top5_acc", "precision", "recall", "f1", "roc_auc", "ece", "confusion_matrix"} <= set(
        card.ensemble.model_dump()
    )
    best_member = max(m.test.acc for m in card.members)
    assert card.ensemble.acc >= best_member - 0.05  # a combination, not a collapse
    if method != "auto":
        assert card.method == method


def test_auto_chooses_without_reading_the_test_split(searched, tmp_path, monkeypatch):
    first = export_ensemble(searched.uri, "small", 3, tmp_path / "a", method="auto", say=lambda _: None).card
    import tunefleet.analysis._members as members

    real = members.open_data
    monkeypatch.setattr(members, "open_data", lambda spec: (_without_test_labels(real(spec)[0]), real(spec)[1]))
    again = export_ensemble(searched.uri, "small", 3, tmp_path / "b", method="auto", say=lambda _: None).card
    assert again.ensemble.acc < first.ensemble.acc - 0.3  # the test split did change...
    assert again.combination == first.combination and again.method == first.method  # ...the choice did not
    assert [m.weight for m in again.members] == [m.weight for m in first.members]


def _inputs(images: np.ndarray):
    import torch

    x = images.astype(np.float32) / 255.0
    return torch.from_numpy(x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2))


def _test_split_folder(root: Path) -> Path:
    data = load_data("digits", 16, 0)
    for i, (image, label) in enumerate(zip(data.test.images, data.test.labels, strict=True)):
        folder = root / data.class_names[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:04d}.png")
    return root


def _accuracy(csv_text: str) -> float:
    frame = pd.read_csv(io.StringIO(csv_text), dtype={"class": str})
    truth = frame["file"].map(lambda f: Path(f).parent.name)
    return float((frame["class"] == truth).mean())


def test_export_register_and_predict_reproduce_the_cards_test_accuracy(searched, tmp_path):
    out = tmp_path / "export"
    exported = searched.cli("export", "small", "--top-k", "3", "--out", str(out), "--register")
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert "registered models:/small/1" in exported.stdout
    card = ExportCard.model_validate_json((out / rec.CARD_FILE).read_bytes())
    prep = card.preprocessing
    assert (prep.mode, prep.size, prep.resize) == ("L", 16, "bilinear")

    images = _test_split_folder(tmp_path / "images")
    (images / "0" / "broken.png").write_bytes(b"not an image")
    for model in (str(out), "models:/small/1"):
        predicted = searched.cli("predict", model, str(images), "--format", "csv")
        assert predicted.returncode == 0, predicted.stderr
        assert _accuracy(predicted.stdout) == pytest.approx(card.ensemble.acc, abs=1e-9)
        assert "skipped 1 unreadable image" in predicted.stderr and "broken.png" in predicted.stderr

    client = MlflowClient(tracking_uri=searched.uri)
    version = client.get_model_version("small", "1")
    assert card.method in version.description and version.tags["tunefleet.method"] == card.method
    mlflow.set_tracking_uri(searched.uri)
    try:
        model = mlflow.pyfunc.load_model("models:/small/1")
    finally:
        mlflow.set_tracking_uri("")
    data = load_data("digits", 16, 0)
    probs = model.predict(_inputs(data.test.images).numpy())["probs"]
    assert float((probs.argmax(1) == data.test.labels).mean()) == pytest.approx(card.ensemble.acc, abs=1e-9)
    assert len(_trial_runs(searched.uri)) == 4  # the export run is nested under the search, not a trial


def test_an_int8_export_is_smaller_and_predicts_what_its_card_says(searched, tmp_path):
    """``--precision int8``: the graph shipped is onnxruntime's static int8 (calibrated on training
    images); the card scores that graph and measures it beside fp32; predict and the registry run it."""
    out = tmp_path / "int8"
    args = ["--precision", "int8", "--batch", "8", "--out", str(out), "--register", "small-int8"]
    exported = searched.cli("export", "small", "--top-k", "2", *args)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert "shipped as int8" in exported.stdout and "ms, batch 8" in exported.stdout
    card = ExportCard.model_validate_json((out / rec.CARD_FILE).read_bytes())
    fp32, int8 = card.variants
    assert (card.precision, fp32.precision, int8.precision, int8.batch_n) == ("int8", "fp32", "int8", 8)
    assert int8.file_bytes < fp32.file_bytes / 2 and (out / rec.ONNX_FILE).stat().st_size == int8.file_bytes
    assert int8.test_acc == pytest.approx(card.ensemble.acc) and int8.agreement_with_fp32 >= 0.9
    assert fp32.max_abs_diff_vs_fp32 == 0 and 0 < int8.max_abs_diff_vs_fp32 < 1
    images = _test_split_folder(tmp_path / "images")
    for model in (str(out), "models:/small-int8/1"):
        predicted = searched.cli("predict", model, str(images), "--format", "csv")
        assert predicted.returncode == 0, predicted.stderr
        assert _accuracy(predicted.stdout) == pytest.approx(card.ensemble.acc, abs=1e-9)


def _fresh_read(uri: str, run_id: str) -> dict:
    """A run as a new process reads it. This worker's cached MLflow store can miss a run another
    process wrote after it (seen once this file's in-process exports had used the store)."""
    code = (
        "import json, sys; from mlflow.tracking import MlflowClient\n"
        "c = MlflowClient(sys.argv[1]); r = c.get_run(sys.argv[2])\n"
        "steps = [m.step for m in c.get_metric_history(sys.argv[2], 'val_acc')]\n"
        "print(json.dumps({'status': r.info.status, 'tags': r.data.tags, 'val_acc_steps': steps}))"
    )
    done = subprocess.run([sys.executable, "-c", code, uri, run_id], capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_a_distilled_student_ships_in_the_ensembles_place(searched, tmp_path):
    """``--distill``: one student (the fastest member's architecture, from its weights) trained on
    the ensemble's soft targets is the graph shipped; its run is under the search; predict and the
    registry run it and reproduce its card."""
    out = tmp_path / "student"
    args = ["--distill", "--distill-epochs", "2", "--out", str(out), "--register", "small-student"]
    exported = searched.cli("export", "small", "--top-k", "2", *args)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert "the student keeps" in exported.stdout and "x faster at batch 1" in exported.stdout
    card = ExportCard.model_validate_json((out / rec.CARD_FILE).read_bytes())
    student = card.distilled
    assert student is not None and card.method == "distilled" and len(card.members) == 2
    assert student.student == "test_resnet" and student.initialized_from in {m.name for m in card.members}
    assert student.epochs == 2 and 0 <= student.best_epoch <= 2 and student.teacher_test.acc > 0.5
    assert card.variants[0].test_acc == pytest.approx(card.ensemble.acc)  # the card scores the student
    assert card.variants[0].file_bytes < student.teacher_file_bytes  # one model, not two
    run = _fresh_read(searched.uri, student.run_id)
    assert run["status"] == "FINISHED" and run["tags"][rec.ROLE_TAG] == rec.ROLE_DISTILL
    assert run["tags"][rec.PARENT_RUN_TAG] == card.search_run_id and run["val_acc_steps"] == [1, 2]
    assert len(_trial_runs(searched.uri)) == 4  # the distill run is not a trial
    images = _test_split_folder(tmp_path / "images")
    for model in (str(out), "models:/small-student/1"):
        predicted = searched.cli("predict", model, str(images), "--format", "csv")
        assert predicted.returncode == 0, predicted.stderr
        assert _accuracy(predicted.stdout) == pytest.approx(card.ensemble.acc, abs=1e-9)


@pytest.mark.parametrize(
    "args, field",
    [
        (["export", "small", "--precision", "int4"], "--precision"),
        (["export", "small", "--precision", "int8", "--batch", "0"], "--batch"),
        (["export", "small", "--method", "bagging"], "--method"),
        (["export", "small", "--top-k", "9"], "--top-k"),
        (["export", "small", "--register", "no spaces"], "--register"),
        (["export", "small", "--distill", "resnet_nope"], "--distill"),
        (["export", "small", "--distill-epochs", "2"], "--distill-epochs"),
        (["export", "small", "--pick", "latency_ms<=1"], "--pick"),  # this search measured no latency
        (["trials", "small", "--format", "xml"], "--format"),
        (["trials", "small", "--sort", "nope"], "--sort"),
        (["trials", "small", "--top", "0"], "--top"),
        (["report", "nope"], "experiment"),
        (["predict", "exports", "missing.png"], "IMAGES"),
        (["predict", "nowhere", "."], "MODEL"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_with_nothing_written(searched, args, field, monkeypatch, capsys):
    """The CLI's own entry point, in this process (the same code path as the command, without
    paying its start-up per case)."""
    from tunefleet.search.cli import main

    monkeypatch.chdir(searched.folder)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    before = sorted(p.relative_to(searched.folder) for p in searched.folder.rglob("*") if "mlflow.db" not in p.name)
    monkeypatch.setattr(sys, "argv", ["tunefleet", *args, *(["--out", "never"] if args[0] == "export" else [])])
    with pytest.raises(SystemExit) as exited:
        main()
    stderr = capsys.readouterr().err
    assert exited.value.code == 2, stderr
    assert stderr.startswith(f"error: {field}") and stderr.count("\n") == 1, stderr
    after = sorted(p.relative_to(searched.folder) for p in searched.folder.rglob("*") if "mlflow.db" not in p.name)
    assert after == before
