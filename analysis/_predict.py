"""Run an exported ensemble on image files through onnxruntime, preprocessing as its card says.

A model is an export folder (``ensemble.onnx`` + ``card.json``) or a registered model
(``models:/NAME/VERSION``, whose MLmodel metadata holds the card's preprocessing). Images are
prepared exactly as the search prepared its data (convert to the recorded mode, resize to the
recorded size with the recorded filter, scale to [0, 1]); the graph normalizes inside. Either
card is read as a ``tunefleet.spaces.ServingCard`` (the part of the card that running needs).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from pydantic import ValidationError

from tunefleet.spaces import Preprocessing, ServingCard, SpecError, record_problem
from tunefleet.spaces import records as rec

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
BATCH = 64


@dataclass
class ExportedModel:
    onnx_path: Path
    preprocessing: Preprocessing
    class_names: list[str]
    _session: Any = field(default=None, repr=False)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        if self._session is None:
            import onnxruntime as ort

            self._session = ort.InferenceSession(str(self.onnx_path), providers=["CPUExecutionProvider"])
        (out,) = self._session.run(None, {self._session.get_inputs()[0].name: batch})
        return np.asarray(out)


def _from_card(onnx_path: Path, card: str | bytes | dict[str, Any], source: str) -> ExportedModel:
    """The model behind ``onnx_path``, prepared as its card (card.json's text, or the registered
    model's metadata) says; a card this tunefleet cannot run from is one ``MODEL`` line."""
    try:
        read = ServingCard.model_validate(card) if isinstance(card, dict) else ServingCard.model_validate_json(card)
    except ValidationError as err:
        if any(e["type"] == "missing" and e["loc"] == ("preprocessing",) for e in err.errors()):
            raise SpecError(
                "MODEL", f"{source} has no preprocessing in its card; export it again with this tunefleet"
            ) from None
        raise SpecError("MODEL", f"{source} has an unreadable card: {record_problem(err)}") from None
    return ExportedModel(onnx_path, read.preprocessing, list(read.class_names))


def load_exported(model: str, tracking_uri: str, workdir: Path) -> ExportedModel:
    """An export folder, or ``models:/NAME/VERSION`` downloaded from the registry into ``workdir``."""
    if model.startswith("models:/"):
        import mlflow
        from mlflow.models import Model

        try:
            local = Path(mlflow.artifacts.download_artifacts(model, dst_path=str(workdir), tracking_uri=tracking_uri))
        except Exception as err:  # MLflow raises its own exception types per store
            raise SpecError("MODEL", f"cannot load {model} from {tracking_uri}: {str(err).splitlines()[0]}") from err
        metadata = Model.load(str(local)).metadata or {}
        if not isinstance(metadata.get(rec.CARD_METADATA_KEY), dict):
            raise SpecError("MODEL", f"{model} was not registered by tunefleet (no {rec.CARD_METADATA_KEY} metadata)")
        return _from_card(local / "model.onnx", metadata[rec.CARD_METADATA_KEY], model)
    folder = Path(model)
    card_path, onnx_path = folder / rec.CARD_FILE, folder / rec.ONNX_FILE
    if not card_path.is_file() or not onnx_path.is_file():
        raise SpecError("MODEL", f"{folder} is not an export folder (needs {rec.ONNX_FILE} and {rec.CARD_FILE})")
    return _from_card(onnx_path, card_path.read_bytes(), str(folder))


def image_files(paths: Sequence[Path]) -> list[Path]:
    """Files as given, and the image files under each folder (sorted, recursive)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.exists():
            files.append(path)
        else:
            raise SpecError("IMAGES", f"{path} does not exist")
    if not files:
        raise SpecError("IMAGES", f"no image files in {', '.join(map(str, paths))}")
    return files


def _prepared(image: Image.Image, prep: Preprocessing) -> np.ndarray:
    image = image.convert(prep.mode).resize((prep.size, prep.size), Image.Resampling[prep.resize.upper()])
    array = np.asarray(image, dtype=np.float32) / 255.0
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def preprocess(item: Path | Image.Image, prep: Preprocessing) -> np.ndarray:
    """One image (a file, or one already in memory) as the graph takes it: float32 [C, H, W] in [0, 1]."""
    if isinstance(item, Image.Image):
        return _prepared(item, prep)
    with Image.open(item) as opened:
        return _prepared(opened, prep)


def _batches(
    items: list[tuple[str, Path | Image.Image]], prep: Preprocessing, skipped: list[tuple[Path, str]]
) -> Iterator[tuple[list[str], np.ndarray]]:
    chunk: list[tuple[str, np.ndarray]] = []
    for name, item in items:
        try:
            chunk.append((name, preprocess(item, prep)))
        except Exception as err:  # PIL raises many types for a bad file; skip it and say which
            skipped.append((Path(name), str(err).splitlines()[0] if str(err) else type(err).__name__))
        if len(chunk) == BATCH:
            yield [p for p, _ in chunk], np.stack([a for _, a in chunk])
            chunk = []
    if chunk:
        yield [p for p, _ in chunk], np.stack([a for _, a in chunk])


@dataclass
class Predictions:
    frame: pd.DataFrame  # file, class, probability (of the predicted class), then one column per class
    skipped: list[tuple[Path, str]]


def predict_images(model: ExportedModel, images: Sequence[Path | Image.Image]) -> Predictions:
    """Class and probability per readable image (a file, or an image in memory: named
    ``<image N>`` by its position); unreadable files are skipped and listed."""
    skipped: list[tuple[Path, str]] = []
    rows: list[dict[str, Any]] = []
    named = [(f"<image {i}>" if isinstance(x, Image.Image) else str(x), x) for i, x in enumerate(images)]
    for names, batch in _batches(named, model.preprocessing, skipped):
        probs = model.probabilities(batch)
        for name, p in zip(names, probs, strict=True):
            best = int(p.argmax())
            row = {"file": name, "class": model.class_names[best], "probability": float(p[best])}
            rows.append(row | {f"p_{name}": float(v) for name, v in zip(model.class_names, p, strict=True)})
    if not rows:
        raise SpecError("IMAGES", f"none of the {len(images)} image files could be read")
    return Predictions(pd.DataFrame(rows), skipped)


def predict(model: str, paths: Sequence[Path], tracking_uri: str) -> Predictions:
    """``tunefleet predict``: load ``model``, read ``paths``, predict."""
    files = image_files(paths)
    with tempfile.TemporaryDirectory(prefix="tunefleet-predict-") as tmp:
        return predict_images(load_exported(model, tracking_uri, Path(tmp)), files)
