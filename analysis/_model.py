"""An exported ensemble as a Python object: predict with it, score it on a labelled folder,
register it. ``tunefleet.load`` and ``Search.export`` hand one back; ``tunefleet predict`` runs
the same ``predict_images``, ``tunefleet export`` the same ``export_model``.

The model runs in onnxruntime exactly as it ships (``ensemble.onnx``), prepared as its card
says, so what a notebook sees is what a server running the export would answer. MLflow loads
only for what needs the registry (``register``, a ``models:/`` model).
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tunefleet.spaces import ExportCard, SpecError
from tunefleet.spaces import records as rec

from ._checks import check_export, check_model_name
from ._inputs import ImageInput, image_items
from ._predict import ExportedModel, image_files, load_exported, predict_images

if TYPE_CHECKING:
    from ._export import ExportResult
    from ._register import Registered

REGISTERED = "models:/"


@dataclass
class Ensemble:
    """An exported model: ``onnx_path`` (one graph: the members and their combination) and its
    ``card`` (members, scores, preprocessing: ``card.json``, also kept on a registered model's
    export run).

    >>> model = tunefleet.load("exports/digits-demo")          # doctest: +SKIP
    >>> model.predict("new-images/").head()                    # doctest: +SKIP
    """

    source: str  # the export folder, or models:/NAME/VERSION
    tracking_uri: str
    onnx_path: Path
    card: ExportCard
    _model: ExportedModel = field(repr=False)
    _example: np.ndarray | None = field(default=None, repr=False)  # the registry's input example

    @classmethod
    def open(cls, model: str | Path, tracking_uri: str) -> Ensemble:
        """An export folder, or a registered ``models:/NAME/VERSION`` (downloaded to a temporary
        folder that goes when the ``Ensemble`` does)."""
        source = str(model)
        if not source.startswith(REGISTERED):
            loaded = load_exported(source, tracking_uri, Path(source))
            card = ExportCard.model_validate_json((Path(source) / rec.CARD_FILE).read_bytes())
            return cls(source, tracking_uri, loaded.onnx_path, card, loaded)
        workdir = Path(tempfile.mkdtemp(prefix="tunefleet-model-"))
        from ._runs import tracking_uri_set

        try:
            with tracking_uri_set(tracking_uri):  # the registry is the tracking store's, whatever was set before
                loaded = load_exported(source, tracking_uri, workdir)
            card = ExportCard.model_validate_json(_export_run_card(loaded, source, tracking_uri, workdir).read_bytes())
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        made = cls(source, tracking_uri, loaded.onnx_path, card, loaded)
        weakref.finalize(made, shutil.rmtree, workdir, True)
        return made

    @property
    def class_names(self) -> list[str]:
        return list(self._model.class_names)

    def predict(self, images: ImageInput) -> pd.DataFrame:
        """One row per image, in the order given: ``file`` (``<image N>`` for one in memory, N its
        position among the images predicted), ``class``, ``probability`` of that class, then
        ``p_CLASS`` for every class. Files, folders (their images, sorted), PIL images, and numpy
        arrays: [H, W] or [H, W, C] one image, [N, H, W] or [N, H, W, C] a batch (uint8 0-255 or
        float 0-1). An unreadable file is left out, with a warning naming it."""
        done = predict_images(self._model, image_items(images))
        if done.skipped:
            named = "; ".join(f"{path}: {why}" for path, why in done.skipped)
            warnings.warn(f"skipped {len(done.skipped)} unreadable image(s): {named}", stacklevel=2)
        return done.frame

    def evaluate(self, folder: str | Path) -> dict[str, float]:
        """Scores on a labelled folder (``folder/<class>/<image>``): ``n`` images, ``acc``, macro
        ``precision`` / ``recall`` / ``f1``, ``roc_auc``, ``nll``, ``ece`` (as the export card's)."""
        from ._metrics import classifier_metrics

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
        from ._register import register_model

        check_model_name(name)
        if self.source.startswith(REGISTERED):
            raise SpecError("--register", f"{self.source} is a registered model already")
        size, channels = self.card.input.size, self.card.input.channels
        example = self._example if self._example is not None else np.zeros((1, channels, size, size), np.float32)
        return register_model(self.tracking_uri, name, self.onnx_path, self.card, example)

    def __repr__(self) -> str:
        return f"Ensemble({self.source!r}, {self.card.method}, {len(self.class_names)} classes)"


def _export_run_card(loaded: ExportedModel, source: str, tracking_uri: str, workdir: Path) -> Path:
    """A registered model's ``card.json``: logged on the export run that registered it (the run
    its MLmodel names)."""
    from mlflow.models import Model
    from mlflow.tracking import MlflowClient

    run_id = Model.load(str(loaded.onnx_path.parent)).run_id
    try:
        return Path(MlflowClient(tracking_uri=tracking_uri).download_artifacts(run_id, rec.CARD_FILE, str(workdir)))
    except Exception as err:  # MLflow raises its own exception types per store
        raise SpecError("MODEL", f"{source}: no {rec.CARD_FILE} on its export run {run_id}: {err}") from None


@dataclass
class Exported:
    """What ``export_model`` made: the model, and the export's own record (its card, its input example)."""

    ensemble: Ensemble
    result: ExportResult


def export_model(
    uri: str,
    experiment: str,
    out: Path,
    *,
    top_k: int = 3,
    method: str = "auto",
    search_run_id: str | None = None,
    stopped: bool = True,
    precision: str = "fp32",
    batch: int = 32,
    pick: str | None = None,
    distill: str | None = None,
    distill_epochs: int | None = None,
    say: Any = print,
) -> Exported:
    """``tunefleet export`` and ``Search.export``: the ensemble of the ``top_k`` best trials,
    written to ``out`` (``check_export`` first); ``stopped=False`` keeps the pool to trials that
    ran all their epochs; ``precision`` (fp32, fp16, int8) is the graph shipped, its latency
    measured at batch 1 and ``batch``; ``pick`` (``latency_ms<=5``) keeps the pool to Pareto
    trials within that serving budget (``_pareto``); ``distill`` ships one student trained on the
    ensemble's soft targets instead (a timm name; "" for the fastest member's architecture).
    Registering is the caller's next step (``Ensemble.register``), once the export is shown: a
    registry that fails loses no export."""
    check_export(top_k, method, None, precision, batch, pick, distill, distill_epochs)
    from ._export import export_ensemble

    result = export_ensemble(
        uri,
        experiment,
        top_k,
        out,
        search_run_id,
        method,
        say=say,
        stopped=stopped,
        precision=precision,
        batch=batch,
        pick=pick,
        distill=distill,
        distill_epochs=distill_epochs,
    )
    ensemble = Ensemble.open(out, uri)
    ensemble._example = result.example
    return Exported(ensemble, result)
