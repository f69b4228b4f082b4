"""The Python API's room: ``tune`` / ``open_search`` and ``Search``, ``submit`` and ``Job``, ``fit``.
``import tunefleet`` re-exports them (with ``load`` and ``Ensemble`` from ``tunefleet.analysis``);
the CLI's commands call the same functions."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .._defaults import quiet_mlflow_output

if TYPE_CHECKING:
    from ._fit import fit
    from ._job import Job, submit
    from ._model import load
    from ._search import Search, SearchFailed, SearchInterrupted, open_search, tune

_EXPORTS = {
    "fit": "._fit",
    "Job": "._job",
    "submit": "._job",
    "load": "._model",
    "Search": "._search",
    "SearchFailed": "._search",
    "SearchInterrupted": "._search",
    "open_search": "._search",
    "tune": "._search",
}
__all__ = ["Job", "Search", "SearchFailed", "SearchInterrupted", "fit", "load", "open_search", "submit", "tune"]

quiet_mlflow_output()  # as the CLI: a notebook's cell or a fit's progress without MLflow's download bars


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
