"""Running searches: the ``tunefleet`` CLI, the Ray Tune experiment built from a spec, and the
MLflow records the driver writes.

The public names load lazily (a name -> module table, as Ray Tune's searcher table does), so
``tunefleet search bad.yaml`` answers before Ray, MLflow or torch are imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._defaults import tracking_uri
    from ._preflight import Plan, planned_trials, preflight
    from .run._experiment import optuna_sampler, run_experiment
    from .run._ray import start_ray
    from .service._cluster import check_trial_fits, workers_that_fit
    from .tracking._callback import MlflowTrialCallback
    from .tracking._ledger import TrialLedger, TrialRecord
    from .tracking._search_run import finish_search_run, start_search_run

_EXPORTS = {
    "check_trial_fits": ".service._cluster",
    "workers_that_fit": ".service._cluster",
    "Plan": "._preflight",
    "optuna_sampler": ".run._experiment",
    "planned_trials": "._preflight",
    "preflight": "._preflight",
    "run_experiment": ".run._experiment",
    "start_ray": ".run._ray",
    "TrialLedger": ".tracking._ledger",
    "TrialRecord": ".tracking._ledger",
    "MlflowTrialCallback": ".tracking._callback",
    "finish_search_run": ".tracking._search_run",
    "start_search_run": ".tracking._search_run",
    "tracking_uri": "._defaults",
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
