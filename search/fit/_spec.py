"""The plan as a search spec: the document ``tunefleet fit`` runs, writes and logs, which
``tunefleet search`` runs again unchanged (a user may edit it first)."""

from __future__ import annotations

from typing import Any

from tunefleet.spaces import (
    PRESETS,
    START_BATCH,
    START_RECIPES,
    SearchSpec,
    spec_from_dict,
    start_point_problem,
    validate_space,
)

from ._budget import REDUCTION
from ._plan import FitPlan, slots
from ._scan import TEST_FRACTION, VAL_FRACTION
from ._strategy import portfolio_models


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
    data: dict[str, Any] = {"kind": plan.scan.kind, "image_size": plan.image_size}
    data |= {"val_fraction": VAL_FRACTION, "test_fraction": TEST_FRACTION}
    if plan.scan.root:
        data["root"] = plan.scan.root
    search: dict[str, Any] = {
        "searcher": "optuna",
        "scheduler": "asha",
        "num_samples": int(PRESETS[plan.preset]["max_trials"]),  # the time budget ends it (rule 8)
        "metric": plan.metric,
        "max_epochs": plan.max_epochs,
        "grace_period": plan.grace_period,
        "reduction_factor": REDUCTION,
        "time_budget": plan.budget.search_s,
        "seed": plan.seed,
    }
    if plan.portfolio:  # rule 11: the start configs alone, trained to the end
        search |= {"scheduler": "fifo", "num_samples": plan.num_samples}
        del search["grace_period"], search["reduction_factor"]
    model: Any = names[0] if len(names) == 1 else {"choice": names}
    search["start_with"] = start_configs(plan, {"model": model, **space})
    _, cpus_per_trial = slots(plan.cpus, plan.gpus)
    resources = {"workers_per_trial": 1, "cpus_per_worker": cpus_per_trial, "gpus_per_worker": 1 if plan.gpus else 0}
    return {
        "name": plan.name,
        "data": data,
        "model": model,
        "space": space,
        "search": search,
        "resources": resources,
        "tracking": {"experiment": plan.name},
    }


def start_configs(plan: FitPlan, space_doc: dict[str, Any]) -> list[dict[str, Any]]:
    """``search.start_with``: the preset's start recipe (``spaces.START_RECIPES``) on the first
    kept models in ``spaces.START_MODELS`` order, one per trial slot; a knob the space lacks or
    bounds elsewhere is left to the sampler."""
    space = validate_space(space_doc)
    recipe = START_RECIPES["finetune" if plan.finetune else "scratch"]
    batch = START_BATCH if START_BATCH in plan.batch_sizes else min(plan.batch_sizes)
    configs = []
    for name in portfolio_models(plan):
        point: dict[str, Any] = {"model": name, "batch_size": batch, **recipe}
        while (problem := start_point_problem(space, point)) is not None:
            point.pop(problem[0])
        configs.append(point)
    return configs


def fit_search_spec(plan: FitPlan) -> SearchSpec:
    """``fit_spec`` validated, as ``tunefleet search`` would load it."""
    return spec_from_dict(fit_spec(plan))
