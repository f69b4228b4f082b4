"""The final phase of ``tunefleet fit``: the best configs of its search, trained again for longer.

Why: a search under a time limit spends it on many short trials (ASHA stops most after an epoch
or two, and a trial must fit in the search's tail), while one longer training of a good config
beats them (issue 21 measured a 20-trial search losing to one resnet18 trained 3x as long).
So ``fit`` searches for part of ``--time`` (``FINAL_SHARE`` is left over) and then runs the
``slots`` best completed configs again, side by side, from scratch, for as many epochs as the
time left allows, with no early stopping. The ensemble is exported from that phase.

The final phase is planned twice: roughly with the zoo's costs before anything runs (the plan
``--dry-run`` prints, and whether a final phase is worth it at all), and exactly once the search
has run, from the time actually left and the epoch times its trials measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from tunefleet.spaces import records as rec

from ._budget import FINAL_START_S, final_epochs
from ._plan import FitPlan


@dataclass(frozen=True)
class FinalPhase:
    configs: int  # trials at once: the best completed configs of the search, trained again
    models: tuple[str, ...]  # their models, best config first
    epoch_s: float  # seconds an epoch of the slowest of them, as measured by the search
    epochs: int  # max_epochs of the final trials
    time_budget: int  # the final search's search.time_budget, seconds


def measured_epoch_s(trials: pd.DataFrame, model: str = "") -> pd.Series:
    """Seconds an epoch per model, from the search's trials: their wall time less the set-up they
    measured (``final_epochs`` budgets a set-up of its own) over the epochs they trained, the
    median over a model's trials. Still an upper bound (it counts reports and checkpoints), so a
    final trial planned from it ends within its budget; the set-up is left out because it would
    dominate the two-epoch trials ASHA stops, and more so on a loaded machine.
    ``model``: the name for trials that logged none (a spec with one model)."""
    epochs = trials.get(rec.EPOCHS_TRAINED, pd.Series(0.0, index=trials.index)).astype(float)
    setup = trials.get(rec.SETUP_TIME, pd.Series(0.0, index=trials.index)).astype(float).fillna(0.0)
    seconds = trials["duration_s"].astype(float) - setup
    rate = (seconds / epochs.where(epochs > 0)).dropna()
    names = trials.loc[rate.index, "params.model"] if "params.model" in trials else pd.Series(model, index=rate.index)
    return rate.groupby(names.fillna(model)).median()


def final_phase(plan: FitPlan, ranked: pd.DataFrame, trials: pd.DataFrame, seconds_left: float) -> FinalPhase | None:
    """The final phase after the search: its best ``ranked`` trials (completed ones, best first,
    as ``analysis.finished_trials`` ranks them), epoch times measured over all its ``trials``, and
    ``seconds_left`` until the report and export must start. None when a final trial would not
    train longer than the search's own (the plan kept the final phase only where it expected
    ``WORTH`` x as long; once the time is set aside, any longer training is worth it)."""
    best = ranked.head(plan.slots)
    if best.empty:
        return None
    one_model = plan.kept[0].row.name
    names = best["params.model"] if "params.model" in best else pd.Series(one_model, index=best.index)
    models = tuple(str(m) for m in names.fillna(one_model))
    rates = measured_epoch_s(trials, one_model)
    zoo = {m.row.name: m.epoch_s for m in plan.models}
    epoch_s = max(float(rates.get(m, zoo.get(m) or 0.0)) for m in models)
    budget = int(seconds_left - FINAL_START_S)
    epochs = final_epochs(budget, epoch_s, plan.preset)
    if epochs <= plan.max_epochs:
        return None
    return FinalPhase(configs=len(best), models=models, epoch_s=epoch_s, epochs=epochs, time_budget=budget)


def final_search(plan: FitPlan, final: FinalPhase, spec_doc: dict[str, Any]) -> dict[str, Any]:
    """The final phase as a spec document: the search's spec, warm-started from its own experiment
    (so its best configs run first), one trial per config, no early stopping."""
    doc = {**spec_doc, "name": f"{plan.name}-final"}
    doc["tracking"] = {**spec_doc["tracking"], "experiment": plan.name}  # the same experiment: one study
    doc["search"] = {
        "searcher": "optuna",
        "scheduler": "fifo",
        "num_samples": final.configs,
        "metric": plan.metric,
        "max_epochs": final.epochs,
        "time_budget": final.time_budget,
        "seed": plan.seed,
        "warm_start": [plan.name],
    }
    return doc
