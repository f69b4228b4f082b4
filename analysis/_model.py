"""An exported ensemble as a Python object: predict with it, score it on a labelled folder,
register it. ``tunefleet.load`` and ``Search.export`` hand one back; ``tunefleet predict`` runs
the same ``predict_images``.

The model runs in onnxruntime exactly as it ships (``ensemble.onnx``), prepared as its card
says, so what a notebook sees is what a server running the export would answer.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from tunefleet.spaces import ExportCard, SpecError
from tunefleet.spaces import records as rec

from ._metrics import classifier_metrics
from ._predict import ExportedModel, image_files, load_exported, predict_images
from ._register import Registered, check_model_name, register_model

# What ``predict`` takes: a file or folder, an image in memory, a batch array, or a list of these.
ImageInput = str | Path | Image.Image | np.ndarray | Sequence[str | Path | Image.Image | np.ndarray]


def _from_array(array: np.ndarray, where: str) -> Image.Image:
    """One [H, W] or [H, W, C] array (uint8 0-255, or float 0-1) as an image."""
    if array.ndim not in (2, 3):
        raise SpecError("images", f"{where}: an image array is [H, W] or [H, W, C], got shape {array.shape}")
    if array.dtype != np.uint8:
        if array.size and (array.min() < 0 or array.max() > 1):
            low, high = array.min(), array.max()
            raise SpecError("images", f"{where}: a float image holds values in [0, 1], got [{low}, {high}]")
        array = (array * 255).round().astype(np.uint8)
    return Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[2] == 1 else array)


def _items(images: ImageInput) -> list[Path | Image.Image]:
    """Files (a folder's image files, sorted) and in-memory images, in the order given. An array
    with one more axis than an image ([N, H, W] or [N, H, W, C]) is a batch."""
    if isinstance(images, str | Path):
        return list(image_files([Path(images)]))
    if isinstance(images, Image.Image):
        return [images]
    if isinstance(images, np.ndarray):
        if images.ndim not in (3, 4):
            raise SpecError("images", f"a batch array is [N, H, W] or [N, H, W, C], got shape {images.shape}")
        return [_from_array(a, f"images[{i}]") for i, a in enumerate(images)]
    items: list[Path | Image.Image] = []
    for i, item in enumerate(images):
        if isinstance(item, np.ndarray):
            items.append(_from_array(item, f"images[{i}]"))
        elif isinstance(item, Image.Image):
            items.append(item)
        else:
            items += image_files([Path(item)])
    if not items:
        raise SpecError("images", "no images given")
    return items


@dataclass
class Ensemble:
    """An exported model: ``onnx_path`` (one graph: the members and their combination) and its
    ``card`` (members, scores, preprocessing: ``card.json``, also kept on a registered model's export run).

    >>> model = tunefleet.load("exports/digits-demo")          # doctest: +SKIP
    >>> model.predict("new-images/").head()                    # doctest: +SKIP
    """

    source: str  # the export folder, or models:/NAME/VERSION
    tracking_uri: str
    onnx_path: Path
    card: ExportCard
    _model: ExportedModel = field(repr=False)

    @classmethod
    def open(cls, model: str | Path, tracking_uri: str) -> Ensemble:
        """An export folder, or a registered ``models:/NAME/VERSION`` (downloaded to a temporary folder)."""
        source = str(model)
        registered = source.startswith("models:/")
        workdir = Path(tempfile.mkdtemp(prefix="tunefleet-model-")) if registered else Path(source)
        loaded = load_exported(source, tracking_uri, workdir)
        card_file = _export_run_card(loaded, tracking_uri, workdir) if registered else Path(source) / rec.CARD_FILE
        return cls(
            source, tracking_uri, loaded.onnx_path, ExportCard.model_validate_json(card_file.read_bytes()), loaded
        )

    @property
    def class_names(self) -> list[str]:
        return list(self._model.class_names)

    def predict(self, images: ImageInput) -> pd.DataFrame:
        """One row per image: ``file`` (``<image N>`` for one in memory), ``class``, ``probability``
        of that class, then ``p_CLASS`` for every class. Unreadable files are left out."""
        return predict_images(self._model, _items(images)).frame

    def evaluate(self, folder: str | Path) -> dict[str, float]:
        """Scores on a labelled folder (``folder/<class>/<image>``): ``n`` images, ``acc``, macro
        ``precision`` / ``recall`` / ``f1``, ``roc_auc``, ``nll``, ``ece`` (as the export card's)."""
        files = image_files([Path(folder)])
        unknown = sorted({f.parent.name for f in files} - set(self.class_names))
        if unknown:
            raise SpecError("folder", f"classes the model does not know: {', '.join(unknown)}")
        frame = self.predict(files)
        probs = frame[[f"p_{c}" for c in self.class_names]].to_numpy()
        labels = frame["file"].map(lambda f: self.class_names.index(Path(f).parent.name)).to_numpy()
        scores = classifier_metrics(probs, labels, self.class_names)
        return {k: float(v) for k, v in scores.items() if isinstance(v, int | float | np.number)}

    def register(self, name: str) -> Registered:
        """Register this export in the MLflow Model Registry as ``name`` (a new version)."""
        check_model_name(name)
        if self.source.startswith("models:/"):
            raise SpecError("--register", f"{self.source} is a registered model already")
        size, channels = self.card.input.size, self.card.input.channels
        example = np.zeros((1, channels, size, size), dtype=np.float32)
        return register_model(self.tracking_uri, name, self.onnx_path, self.card, example)

    def __repr__(self) -> str:
        return f"Ensemble({self.source!r}, {self.card.method}, {len(self.class_names)} classes)"


def _export_run_card(loaded: ExportedModel, tracking_uri: str, workdir: Path) -> Path:
    """A registered model's ``card.json``: logged on the export run that registered it (the run
    its MLmodel names)."""
    from mlflow.models import Model
    from mlflow.tracking import MlflowClient

    run_id = Model.load(str(loaded.onnx_path.parent)).run_id
    client = MlflowClient(tracking_uri=tracking_uri)
    return Path(client.download_artifacts(run_id, rec.CARD_FILE, str(workdir)))


@dataclass
class Exported:
    """What ``export_model`` made: the model, the export's own record, and its registry entry if any."""

    ensemble: Ensemble
    result: Any  # ExportResult: the card and the registry's input example
    registered: Registered | None


def export_model(
    uri: str,
    experiment: str,
    out: Path,
    *,
    top_k: int = 3,
    method: str = "auto",
    search_run_id: str | None = None,
    stopped: bool = False,
    register_as: str | None = None,
    say: Any = print,
) -> Exported:
    """``tunefleet export`` and ``Search.export``: the options checked before anything loads, the
    ensemble of the ``top_k`` best trials written to ``out``, and registered as ``register_as``."""
    from ._combine import METHODS

    if top_k < 1:
        raise SpecError("--top-k", f"must be >= 1, got {top_k}")
    if method not in METHODS:
        raise SpecError("--method", f"unknown method {method!r}; one of: {', '.join(METHODS)}")
    if register_as is not None:
        check_model_name(register_as)
    from ._export import export_ensemble

    result = export_ensemble(uri, experiment, top_k, out, search_run_id, method, say=say, stopped=stopped)
    registered = None
    if register_as is not None:
        registered = register_model(uri, register_as, out / rec.ONNX_FILE, result.card, result.example)
    return Exported(Ensemble.open(out, uri), result, registered)
