"""Quality against cost, per model: what each architecture reached for the epochs and seconds
spent on it. The question a user of ``tunefleet fit`` (or any search over ``model``) asks next:
was the bigger model worth its time?"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from tunefleet.spaces import records as rec

if TYPE_CHECKING:
    from matplotlib.figure import Figure

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


def cost_figure(trials: pd.DataFrame, metric: str, model: str = "") -> Figure | None:
    """Each trial's best ``metric`` against the seconds it ran, one colour per model; hollow: a
    trial stopped early. None when no trial reported ``metric``."""
    column = rec.best_key(metric)
    if not len(trials) or column not in trials or trials[column].isna().all():
        return None
    from matplotlib.figure import Figure  # here, not at import: the package stays cheap to import

    trials = trials[trials[column].notna()]

    names = trials["params.model"].fillna(model) if "params.model" in trials else pd.Series(model, index=trials.index)
    stopped = trials.get("outcome", pd.Series("", index=trials.index)) == rec.STOPPED
    fig = Figure(figsize=(6.5, 3.8), layout="constrained")
    ax = fig.subplots()
    for i, name in enumerate(dict.fromkeys(names)):
        colour = f"C{i % 10}"
        for hollow in (False, True):
            rows = (names == name) & (stopped == hollow)
            if rows.any():
                face, label = ("none", None) if hollow else (colour, name or "trials")
                x, y = trials.loc[rows, "duration_s"], trials.loc[rows, column]
                ax.scatter(x, y, s=28, edgecolors=colour, facecolors=face, label=label)
    ax.set_xlabel("trial wall-clock seconds")
    ax.set_ylabel(f"best {metric}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, title="model (hollow: stopped early)", title_fontsize=7)
    return fig
