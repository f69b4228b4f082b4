"""``tunefleet.load``: an exported ensemble, from its folder or the Model Registry."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .._defaults import tracking_uri as resolve_uri

if TYPE_CHECKING:
    from tunefleet.analysis import Ensemble


def load(model: str | Path, *, tracking_uri: str | None = None) -> Ensemble:
    """An export folder (``ensemble.onnx`` + ``card.json``) or a registered ``models:/NAME/VERSION``
    (read from ``tracking_uri``, default ``MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db``).

    >>> model = tunefleet.load("models:/digits-demo/1")   # doctest: +SKIP
    >>> model.predict(["a.png", "b.png"])                  # doctest: +SKIP
    """
    from tunefleet.analysis import Ensemble

    return Ensemble.open(model, resolve_uri(tracking_uri))
