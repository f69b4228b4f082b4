"""The file records: a checkpoint's ``meta.json`` and an export's ``card.json`` read back as they
were written, in the keys they have always had; a meta.json from before checksums still loads; a
malformed one is refused in one line naming the file, never as a pydantic traceback."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tunefleet.spaces import (
    CheckpointMeta,
    CheckpointSettings,
    ClassScores,
    DataSpec,
    ExportCard,
    GraphInput,
    GraphOutput,
    MemberCard,
    OnnxParity,
    Preprocessing,
    Resources,
    Scores,
    SearchSettings,
    ServingCard,
)
from tunefleet.spaces import records as rec
from tunefleet.trainables import CorruptCheckpoint, read_meta, verify_checkpoint

# The keys trials have written to meta.json (and exports to card.json) since before the records.
META_KEYS = {
    "model",
    "class_names",
    "in_chans",
    "image_size",
    "mean",
    "std",
    "recipe",
    "settings",
    "workers",
    rec.EFFECTIVE_BATCH_SIZE,
    rec.EFFECTIVE_LR,
    "data_skipped",
    "data_cache",
    "loader_workers",
    "epoch",
    "metrics",
    rec.HISTORY_KEY,
    rec.CHECKSUMS_KEY,
}
SETTINGS_KEYS = {"data", "search", "resources", "device", "amp", "patience", "checkpoint_every"}
CARD_KEYS = {
    "created",
    "experiment",
    "experiment_id",
    "search_run_id",
    "tracking_uri",
    "metric",
    "mode",
    "method",
    "combination",
    "input",
    "preprocessing",
    "output",
    "class_names",
    "members",
    "ensemble",
    "onnx",
    "precision",
    "variants",
}
CLASSES = ["cat", "dog", "fox"]


def _meta() -> CheckpointMeta:
    report = {"epoch": 2.0, "val_acc": 0.75, "val_loss": 0.5}
    return CheckpointMeta(
        model="test_resnet",
        class_names=CLASSES,
        in_chans=3,
        image_size=16,
        mean=[0.485, 0.456, 0.406],
        std=[0.229, 0.224, 0.225],
        recipe={"model": "test_resnet", "lr": 0.01, "optimizer": {"name": "sgd", "momentum": 0.9}},
        settings=CheckpointSettings(
            data=DataSpec(image_size=16), search=SearchSettings(max_epochs=3), resources=Resources()
        ),
        workers=2,
        effective_batch_size=64,
        effective_lr=0.02,
        data_skipped=1,
        data_cache="memory",
        loader_workers=0,
        epoch=2,
        metrics=report,
        history=[{"epoch": 1.0, "val_acc": 0.5, "val_loss": 0.9}, report],
    ).with_checksums({rec.WEIGHTS: "ab" * 32, rec.LOGITS: "cd" * 32})


def _scores(acc: float) -> Scores:
    per_class = [ClassScores(name=c, precision=acc, recall=acc, f1=acc, support=4) for c in CLASSES]
    return Scores(
        n=12,
        acc=acc,
        precision=acc,
        recall=acc,
        f1=acc,
        roc_auc=None,
        roc_auc_classes=0,
        nll=0.4,
        ece=0.05,
        class_names=CLASSES,
        per_class=per_class,
        confusion_matrix=[[4, 0, 0], [0, 4, 0], [1, 0, 3]],
    )


def _card() -> ExportCard:
    members = [
        MemberCard(
            run_id=f"run{i}",
            name=f"t{i}",
            weight=w,
            recipe={"lr": 0.01},
            epoch=3,
            epochs_trained=5,
            score=s,
            test=_scores(s),
        )
        for i, (w, s) in enumerate([(0.7, 0.9), (0.0, 0.8)])
    ]
    return ExportCard(
        created="2026-12-03T10:00:00+0000",
        experiment="small",
        experiment_id="1",
        search_run_id="abc",
        tracking_uri="sqlite:///mlflow.db",
        metric="val_acc",
        mode="max",
        method="weighted",
        combination={"pool_size": 2, "val_nll": 0.3},
        input=GraphInput(name="image", shape=("batch", 3, 16, 16), dtype="float32"),
        preprocessing=Preprocessing(mode="RGB", size=16, resize="bilinear"),
        output=GraphOutput(name="probs", meaning="class probabilities of the weighted ensemble"),
        class_names=CLASSES,
        members=members,
        ensemble=_scores(0.92),
        onnx=OnnxParity(file=rec.ONNX_FILE, opset=18, max_abs_diff_vs_torch=3e-7),
    )


def test_checkpoint_meta_round_trips_in_the_keys_it_always_had():
    meta = _meta()
    text = meta.model_dump_json(indent=2)
    on_disk = json.loads(text)
    assert set(on_disk) == META_KEYS and set(on_disk["settings"]) == SETTINGS_KEYS
    assert on_disk[rec.CHECKSUMS_KEY] == {rec.WEIGHTS: "ab" * 32, rec.LOGITS: "cd" * 32}
    assert on_disk[rec.EFFECTIVE_BATCH_SIZE] == 64 and on_disk[rec.HISTORY_KEY][0]["val_acc"] == 0.5
    assert on_disk["settings"]["data"] == DataSpec(image_size=16).model_dump()
    again = CheckpointMeta.model_validate_json(text)
    assert again == meta and again.settings.data == DataSpec(image_size=16) and again.history[-1] == meta.metrics


def test_a_non_finite_metric_is_written_as_json_dumps_wrote_it():
    meta = _meta().stamped(3, {"epoch": 3.0, "val_loss": math.nan}, [])
    text = meta.model_dump_json()
    assert '"val_loss":NaN' in text and math.isnan(json.loads(text)["metrics"]["val_loss"])
    assert math.isnan(CheckpointMeta.model_validate_json(text).metrics["val_loss"])


def test_export_card_round_trips_with_each_members_score_under_the_metric():
    card = _card()
    text = card.model_dump_json(indent=2)
    on_disk = json.loads(text)
    assert set(on_disk) == CARD_KEYS
    assert [set(m) for m in on_disk["members"]] == [
        {"run_id", "name", "weight", "recipe", "epoch", "epochs_trained", "val_acc", "test"}
    ] * 2
    assert [m["val_acc"] for m in on_disk["members"]] == [0.9, 0.8]
    assert "top5_acc" not in on_disk["ensemble"] and on_disk["ensemble"]["roc_auc"] is None  # three classes
    assert on_disk["input"]["shape"] == ["batch", 3, 16, 16]
    again = ExportCard.model_validate_json(text)
    assert again == card and again.members[0].score == 0.9 and again.members[1].weight == 0.0
    assert again.input.channels == 3 and again.input.size == 16
    del on_disk["members"][0]["epochs_trained"]  # a card written before members recorded it
    assert ExportCard.model_validate(on_disk).members[0].epochs_trained is None


def test_the_serving_card_reads_from_a_whole_card_and_from_registry_metadata():
    card = _card()
    serving = card.serving()
    assert ServingCard.model_validate_json(card.model_dump_json()) == serving  # predict on an export folder
    metadata = json.loads(json.dumps(serving.model_dump(mode="json")))  # what MLmodel keeps
    assert set(metadata) == {"preprocessing", "class_names", "input", "output", "method", "metric", "search_run_id"}
    assert ServingCard.model_validate(metadata) == serving
    assert serving.preprocessing.scale == "pixel / 255; normalization is inside the graph"


def _checkpoint(folder: Path, meta: dict[str, object] | str) -> Path:
    folder.mkdir()
    (folder / rec.WEIGHTS).write_bytes(b"weights")
    (folder / rec.META).write_text(meta if isinstance(meta, str) else json.dumps(meta))
    return folder


def test_a_meta_json_from_before_checksums_and_history_is_accepted(tmp_path):
    old = json.loads(_meta().model_dump_json())
    for key in (rec.CHECKSUMS_KEY, rec.HISTORY_KEY, "data_cache", "loader_workers"):
        del old[key]
    folder = _checkpoint(tmp_path / "old", old)
    meta = verify_checkpoint(folder)  # no checksums: the weights are there and not empty, as before
    assert meta.checksums is None and meta.history == [] and meta.data_cache is None
    assert meta.class_names == CLASSES and meta.settings.search.max_epochs == 3
    assert read_meta(folder) == meta


def _without(key: str) -> dict[str, object]:
    meta = json.loads(_meta().model_dump_json())
    del meta[key]
    return meta


@pytest.mark.parametrize(
    ("meta", "problem"),
    [
        (_meta().model_dump_json()[:200], r"invalid JSON \(EOF while parsing"),
        ("[1, 2]", "not a JSON object but list"),
        (_without("epoch"), "'epoch' is missing"),
        (json.loads(_meta().model_dump_json()) | {"epoch": "three"}, r"invalid 'epoch': .*integer.*, got 'three'"),
        (
            json.loads(_meta().model_dump_json()) | {rec.CHECKSUMS_KEY: [1]},
            "invalid 'sha256': not a map of file name to sha256 hex",
        ),
        (
            json.loads(_meta().model_dump_json()) | {rec.CHECKSUMS_KEY: {rec.META: "ab"}},
            "invalid 'sha256': not a map of file name to sha256 hex",
        ),
        (_without("settings") | {"settings": {"data": {"kind": "bogus"}}}, r"invalid 'settings\.data\.kind'"),
    ],
)
def test_a_malformed_meta_json_is_one_line_naming_the_file(tmp_path, meta, problem):
    folder = _checkpoint(tmp_path / "bad", meta)
    for read in (read_meta, verify_checkpoint):
        with pytest.raises(CorruptCheckpoint, match=problem) as caught:
            read(folder)
        assert caught.value.path == folder / rec.META
        assert str(caught.value).startswith(f"{folder / rec.META}: ") and "\n" not in str(caught.value)
        assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no pydantic traceback
