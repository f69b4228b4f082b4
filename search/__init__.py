"""Running searches: the ``tunefleet`` CLI, the Ray Tune experiment built from a spec, and the
MLflow records the driver writes.

The public names load lazily (a name -> module table, as Ray Tune's searcher table does), so
``tunefleet search bad.yaml`` answers before Ray, MLflow or torch are imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._cluster import check_trial_fits, workers_that_fit
    from ._experiment import Plan, optuna_sampler, planned_trials, preflight, run_experiment
    from ._ledger import TrialLedger, TrialRecord
    from ._options import tracking_uri
    from ._ray import start_ray
    from ._search_run import finish_search_run, start_search_run
    from ._tracking import MlflowTrialCallback

_EXPORTS = {
    "check_trial_fits": "._cluster",
    "workers_that_fit": "._cluster",
    "Plan": "._experiment",
    "optuna_sampler": "._experiment",
    "planned_trials": "._experiment",
    "preflight": "._experiment",
    "run_experiment": "._experiment",
    "start_ray": "._ray",
    "TrialLedger": "._ledger",
    "TrialRecord": "._ledger",
    "MlflowTrialCallback": "._tracking",
    "finish_search_run": "._search_run",
    "start_search_run": "._search_run",
    "tracking_uri": "._options",
}
__all__ = [
    "MlflowTrialCallback",
    "Plan",
    "TrialLedger",
    "TrialRecord",
    "check_trial_fits",
    "finish_search_run",
    "optuna_sampler",
    "planned_trials",
    "preflight",
    "run_experiment",
    "start_ray",
    "start_search_run",
    "tracking_uri",
    "workers_that_fit",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
