"""tunefleet: distributed hyperparameter search and AutoML for PyTorch image classifiers, from Python.

>>> import tunefleet                                                   # doctest: +SKIP
>>> search = tunefleet.tune("examples/digits.yaml", num_samples=4)    # doctest: +SKIP
>>> search.trials().head()          # one row per trial, best first    # doctest: +SKIP
>>> search.report()                 # figures, inline in Jupyter       # doctest: +SKIP
>>> model = search.export(top_k=3)  # one ONNX ensemble                # doctest: +SKIP
>>> model.predict("new-images/")                                       # doctest: +SKIP

- ``tune(spec, ...) -> Search``: run a search here (``tunefleet search``); ``spec`` is a YAML
  path, its document as a dict, or a ``SearchSpec`` (``read_spec``).
- ``submit(spec, ...) -> Job``: run it as a Ray Job on a cluster (``tunefleet submit``).
- ``open(experiment) -> Search``: a search run earlier or elsewhere.
- ``fit(data, time="30m") -> Ensemble``: AutoML: plan a search from the data and the time, run
  it, export the best trials (``tunefleet fit``).
- ``load(path | "models:/NAME/VERSION") -> Ensemble``: an exported model, to predict with.

Bad input raises ``SpecError`` (a ``ValueError``): one line naming the field, as the CLI prints
it, before anything starts (the CLI's exit code 2). A search that ran and gave nothing raises
``SearchFailed`` (exit code 1); Ctrl-C or a stop, ``SearchInterrupted`` (a ``KeyboardInterrupt``;
exit code 130). Every name loads on first use, so ``import tunefleet`` loads neither
torch, Ray nor MLflow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tunefleet.analysis import Ensemble
    from tunefleet.search.api import Job, Search, SearchFailed, SearchInterrupted, fit, load, submit, tune
    from tunefleet.search.api import open_search as open
    from tunefleet.spaces import SearchSpec, SpecError, read_spec

# name -> (module, attribute), imported on first use (as Ray Tune's lazy tables).
_EXPORTS = {
    "tune": ("tunefleet.search.api", "tune"),
    "fit": ("tunefleet.search.api", "fit"),
    "submit": ("tunefleet.search.api", "submit"),
    "open": ("tunefleet.search.api", "open_search"),
    "load": ("tunefleet.search.api", "load"),
    "Search": ("tunefleet.search.api", "Search"),
    "Job": ("tunefleet.search.api", "Job"),
    "SearchFailed": ("tunefleet.search.api", "SearchFailed"),
    "SearchInterrupted": ("tunefleet.search.api", "SearchInterrupted"),
    "Ensemble": ("tunefleet.analysis", "Ensemble"),
    "SearchSpec": ("tunefleet.spaces", "SearchSpec"),
    "SpecError": ("tunefleet.spaces", "SpecError"),
    "read_spec": ("tunefleet.spaces", "read_spec"),
}
__all__ = [
    "Ensemble",
    "Job",
    "Search",
    "SearchFailed",
    "SearchInterrupted",
    "SearchSpec",
    "SpecError",
    "fit",
    "load",
    "open",
    "read_spec",
    "submit",
    "tune",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
