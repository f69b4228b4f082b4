"""How ``tunefleet fit`` spends its searching time (rules 10 and 11 of ``_plan``), chosen in this
order:

- **portfolio**: no search; the start recipes, one per slot, train for all of the time, where
  that trains them longer than the plans below would train what they ship, and short of the
  preset's epoch cap (past it, the time left over is worth a search);
- **search, then a final phase**: where the search phase still ranks configs (its trials train
  ``MIN_SEARCH_EPOCHS``, ``MIN_SEARCH_TRIALS`` a slot) and the final trials train ``WORTH`` x
  the search's epochs;
- **search alone**: otherwise (its trials already run their full length, or a portfolio trial
  could not train much longer).

Why a portfolio at all: on a small budget a search's trials are a few epochs each, and the
best of them loses to one longer training of a careful recipe (issue 21: a 3-minute search on
digits at 0.972 against one resnet18 trained 50 epochs at 0.989; on MNIST at 10 minutes a search
and a 20-epoch final phase at 0.9825 against resnet18 trained 70 epochs at 0.983). AutoGluon
makes the same call: at small time limits it trains its default portfolio and tunes nothing.
"""

from __future__ import annotations

from dataclasses import replace

from tunefleet.spaces import PRESETS, preset_models, start_models

from ._budget import FINAL_SHARE, MIN_SEARCH_EPOCHS, MIN_SEARCH_TRIALS, SETUP_S, WORTH, budget, final_epochs
from ._plan import FitPlan, check_options, choose_models, data_epochs, image_size, plan_within, too_short
from ._scan import DataScan


def plan_fit(
    scan: DataScan,
    preset: str,
    total_s: float,
    gpus: int,
    metric: str,
    cpus: int,
    seed: int = 0,
    loadable: frozenset[str] | None = None,
) -> FitPlan:
    """The whole plan; ``SpecError`` for an unknown preset, negative GPUs or too little time.
    ``loadable``: the models whose pretrained weights load here (None: every one timm lists)."""
    check_options(preset, gpus)
    one_phase = plan_within(budget(total_s), scan, preset, gpus, metric, cpus, seed, loadable)
    if one_phase is None:
        choices, _ = choose_models(preset_models(preset), scan, image_size(scan.typical_px, preset), gpus,
                                   budget(total_s), preset)  # fmt: skip
        raise too_short(choices, total_s, preset)
    two = plan_within(budget(total_s, FINAL_SHARE), scan, preset, gpus, metric, cpus, seed, loadable)
    two = two if two is not None and final_pays(two) else None
    return portfolio(one_phase, two) or two or one_phase


def final_pays(plan: FitPlan) -> bool:
    """Rule 10's test: the final trials train ``WORTH`` x longer, after a search long enough to rank."""
    searched = plan.max_epochs >= MIN_SEARCH_EPOCHS and plan.num_samples >= MIN_SEARCH_TRIALS * plan.slots
    return searched and plan.final_epochs >= WORTH * plan.max_epochs


def portfolio_models(plan: FitPlan) -> list[str]:
    """The models of the start configs, one per slot (fewer where fewer models are kept)."""
    return start_models([m.row.name for m in plan.kept], plan.finetune)[: plan.slots]


def portfolio(plan: FitPlan, two: FitPlan | None = None) -> FitPlan | None:
    """Rule 11: ``plan`` (a search alone) as a portfolio, or None where searching pays. Searching
    pays where the start recipes, given all of the searching time, would train no longer than the
    trials that ship otherwise (the final phase's of ``two``; without one, ``WORTH`` x the search's
    ``max_epochs``, and only while the search cuts its trials short of rule 7's epochs), where
    they would reach the preset's epoch cap while a final phase pays (the time left over is
    worth a search), or where an epoch time is unknown (GPUs)."""
    seconds = {m.row.name: m.epoch_s for m in plan.kept}
    names = portfolio_models(plan)
    timed = [seconds[name] for name in names]
    if not names or any(t is None for t in timed):
        return None
    epoch_s = max(t for t in timed if t is not None)
    epochs = final_epochs(plan.budget.search_s, epoch_s, plan.preset)
    if two is not None and (epochs <= two.final_epochs or epochs >= int(PRESETS[plan.preset]["final_epochs"])):
        return None
    if two is None and (plan.max_epochs >= data_epochs(plan.scan.train_images, plan.preset)
                        or epochs < WORTH * plan.max_epochs):  # fmt: skip
        return None
    trial_s = SETUP_S + epochs * epoch_s
    return replace(plan, portfolio=True, max_epochs=epochs, num_samples=len(names), trial_s=trial_s)
