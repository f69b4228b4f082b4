"""The plan as a search spec: the document ``tunefleet fit`` runs, writes and logs, which
``tunefleet search`` runs again unchanged (a user may edit it first)."""

from __future__ import annotations

from typing import Any

from tunefleet.spaces import PRESETS, SearchSpec, spec_from_dict

from ._plan import REDUCTION, FitPlan, slots
from ._scan import HOLDOUT


def space_base(plan: FitPlan) -> str:
    """The built-in space the plan starts from: the preset's fine-tuning or from-scratch one."""
    row = PRESETS[plan.preset]
    return str(row["finetune_space"] if plan.finetune else row["space"])


def fit_spec(plan: FitPlan) -> dict[str, Any]:
    """The plan as a search spec document: what ``tunefleet search`` would run the same way."""
    names = [m.row.name for m in plan.kept]
    space: dict[str, Any] = {
        "base": space_base(plan),
        "batch_size": {"choice": list(plan.batch_sizes)},
    }
    if plan.finetune:
        space["finetune"] = {"pretrained": True}
    data: dict[str, Any] = {"kind": plan.scan.kind, "image_size": plan.image_size, **HOLDOUT}
    if plan.scan.root:
        data["root"] = plan.scan.root
    search = {
        "searcher": "optuna",
        "scheduler": "asha",
        "num_samples": plan.num_samples,
        "metric": plan.metric,
        "max_epochs": plan.max_epochs,
        "grace_period": plan.grace_period,
        "reduction_factor": REDUCTION,
        "time_budget": plan.budget.search_s,
        "seed": plan.seed,
    }
    _, cpus_per_trial = slots(plan.cpus, plan.gpus)
    resources = {"workers_per_trial": 1, "cpus_per_worker": cpus_per_trial, "gpus_per_worker": 1 if plan.gpus else 0}
    return {
        "name": plan.name,
        "data": data,
        "model": names[0] if len(names) == 1 else {"choice": names},
        "space": space,
        "search": search,
        "resources": resources,
        "tracking": {"experiment": plan.name},
    }


def fit_search_spec(plan: FitPlan) -> SearchSpec:
    """``fit_spec`` validated, as ``tunefleet search`` would load it."""
    return spec_from_dict(fit_spec(plan))
