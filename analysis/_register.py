"""Register an exported ensemble in MLflow's Model Registry as an ONNX-flavour MLflow model.

The model is logged from an *export run* nested under the search run (so the UI shows where it
came from), with a signature and an input example (so ``mlflow models serve`` and
``mlflow.pyfunc.load_model("models:/NAME/VERSION")`` take images as the graph does), the card
as the version's description and its headline numbers as tags, all read from the card record
(``tunefleet.spaces.ExportCard``). ``tunefleet predict`` reads the preprocessing back from the
model's metadata (the card's ``ServingCard``), never guessing it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient

from tunefleet.spaces import ExportCard
from tunefleet.spaces import records as rec

from ._runs import tracking_uri_set


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    uri: str  # models:/NAME/VERSION
    run_id: str  # the export run


def _signature(card: ExportCard) -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    chans, size, classes = card.input.channels, card.input.size, len(card.class_names)
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, chans, size, size), card.input.name)]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, classes), card.output.name)]),
    )


def model_metadata(card: ExportCard) -> dict[str, Any]:
    """What ``predict`` needs from a registered model, kept in its MLmodel file (the whole card,
    with per-class matrices, is an artifact of the export run instead)."""
    return {rec.CARD_METADATA_KEY: card.serving().model_dump(mode="json")}


def describe(card: ExportCard) -> str:
    """The version's description: what it is, how it scores, where it came from."""
    ens = card.ensemble
    members = ", ".join(m.name for m in card.members)
    return (
        f"tunefleet ensemble ({card.method}) of {len(card.members)} trials of experiment "
        f"{card.experiment!r} (search run {card.search_run_id}), chosen by {card.metric} on validation.\n\n"
        f"Test split: accuracy {ens.acc:.4f}, macro F1 {ens.f1:.4f}, ECE {ens.ece:.4f} (n={ens.n}).\n\n"
        f"Members: {members}.\n\nInput: {json.dumps(card.preprocessing.model_dump(mode='json'))}."
    )


def _test_metrics(card: ExportCard) -> dict[str, float]:
    """The ensemble's scalar test scores, as the export run's metrics (``test_acc``, ...)."""
    scores = card.ensemble.model_dump(exclude_none=True)
    return {f"test_{k}": v for k, v in scores.items() if isinstance(v, float)}


def register_model(uri: str, name: str, onnx_path: Path, card: ExportCard, example: np.ndarray) -> Registered:
    """Log ``onnx_path`` as an MLflow model from a new export run and register it as ``name``; the
    export run keeps the ``card.json`` exported beside the graph."""
    import onnx

    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run(card.search_run_id)
    tags = {rec.ROLE_TAG: rec.ROLE_EXPORT, rec.PARENT_RUN_TAG: parent.info.run_id}
    with tracking_uri_set(uri):
        run = mlflow.start_run(experiment_id=parent.info.experiment_id, run_name=f"export {name}", tags=tags)
        with run:
            mlflow.log_params({"method": card.method, "members": len(card.members), "metric": card.metric})
            mlflow.log_metrics(_test_metrics(card))
            mlflow.log_artifact(str(onnx_path.parent / rec.CARD_FILE))
            with _without_provider_warning():
                info = mlflow.onnx.log_model(
                    onnx.load(str(onnx_path)),
                    name="model",
                    registered_model_name=name,
                    signature=_signature(card),
                    input_example=example,
                    metadata=model_metadata(card),
                )
    version = str(info.registered_model_version)
    client.update_model_version(name, version, description=describe(card))
    for key, value in _version_tags(card).items():
        client.set_model_version_tag(name, version, key, value)
    return Registered(name=name, version=version, uri=f"models:/{name}/{version}", run_id=run.info.run_id)


def _providers_warning(record: logging.LogRecord) -> bool:
    return "declares execution providers" not in record.getMessage()


@contextmanager
def _without_provider_warning() -> Iterator[None]:
    """The logged model keeps MLflow's default providers, CUDA first, so a GPU host serves it on its
    GPU. ``log_model`` loads it here to check the input example, and on a CPU-only onnxruntime
    warns that CUDA is missing: true of this machine, not of the model. That one warning is
    dropped while the model is logged; every other line of MLflow's stays."""
    logger = logging.getLogger("mlflow.onnx")
    logger.addFilter(_providers_warning)
    try:
        yield
    finally:
        logger.removeFilter(_providers_warning)


def _version_tags(card: ExportCard) -> dict[str, str]:
    return {
        "tunefleet.method": card.method,
        "tunefleet.metric": card.metric,
        "tunefleet.members": ",".join(m.run_id for m in card.members),
        "tunefleet.search_run_id": card.search_run_id,
        "tunefleet.test_acc": f"{card.ensemble.acc:.4f}",
    }
