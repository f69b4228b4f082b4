"""Quality against cost, per model: what each architecture reached for the epochs and seconds
spent on it. The question a user of ``tunefleet fit`` (or any search over ``model``) asks next:
was the bigger model worth its time?"""

from __future__ import annotations

import pandas as pd

from tunefleet.spaces import records as rec

COST_COLUMNS = ("model", "trials", "best", "median", "epochs", "seconds", "seconds_per_epoch")


def cost_by_model(trials: pd.DataFrame, metric: str, mode: str, model: str = "") -> pd.DataFrame:
    """One row per model in ``trials`` (a ``trials_frame``), best model first: trials run, the best
    and median of their best ``metric``, epochs trained and trial seconds summed, seconds per
    epoch. ``model``: the name for trials that logged none (a spec with one model)."""
    column = rec.best_key(metric)
    if not len(trials) or column not in trials:
        return pd.DataFrame(columns=list(COST_COLUMNS))
    names = trials["params.model"] if "params.model" in trials else pd.Series(model, index=trials.index)
    frame = pd.DataFrame(
        {
            "model": names.fillna(model),
            "value": trials[column],
            "epochs": trials.get(rec.EPOCHS_TRAINED, pd.Series(0.0, index=trials.index)).fillna(0),
            "seconds": trials["duration_s"].fillna(0),
        }
    )
    grouped = frame.groupby("model", sort=False)
    table = pd.DataFrame(
        {
            "trials": grouped.size(),
            "best": grouped["value"].max() if mode == "max" else grouped["value"].min(),
            "median": grouped["value"].median(),
            "epochs": grouped["epochs"].sum(),
            "seconds": grouped["seconds"].sum(),
        }
    ).reset_index()
    table["seconds_per_epoch"] = table["seconds"] / table["epochs"].where(table["epochs"] > 0)
    return table.sort_values("best", ascending=mode == "min", kind="stable", na_position="last")[list(COST_COLUMNS)]
