"""``cost_by_model``: per model, what its trials reached for the epochs and seconds they took."""

from __future__ import annotations

import math

import pandas as pd

from tunefleet.analysis._cost import COST_COLUMNS, cost_by_model, cost_figure
from tunefleet.spaces import records as rec


def _trials() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "params.model": ["resnet18", "lcnet_050", "resnet18", "lcnet_050", None],
            "best_val_loss": [0.30, 0.50, 0.20, 0.40, float("nan")],
            "epochs_trained": [10, 4, 6, 2, float("nan")],
            "duration_s": [100.0, 8.0, 60.0, 4.0, float("nan")],
        }
    )


def test_one_row_per_model_best_first_with_its_cost():
    table = cost_by_model(_trials(), "val_loss", "min", model="unknown")
    assert tuple(table.columns) == COST_COLUMNS
    rows = {r.model: r for r in table.itertuples()}
    assert list(table["model"]) == ["resnet18", "lcnet_050", "unknown"]  # lowest loss first, no score last
    assert (rows["resnet18"].trials, rows["resnet18"].best, rows["resnet18"].median) == (2, 0.20, 0.25)
    assert (rows["lcnet_050"].epochs, rows["lcnet_050"].seconds, rows["lcnet_050"].seconds_per_epoch) == (6, 12.0, 2.0)
    assert math.isnan(rows["unknown"].seconds_per_epoch)  # no epoch trained: no rate


def test_a_search_without_the_metric_has_an_empty_table():
    assert cost_by_model(_trials(), "val_acc", "max").empty
    assert cost_by_model(pd.DataFrame(), "val_acc", "max").empty


def test_cost_figure_has_a_point_per_scored_trial_and_a_legend_entry_per_model():
    trials = _trials().assign(outcome=[rec.COMPLETED, rec.STOPPED, rec.STOPPED, rec.COMPLETED, rec.FAILED])
    figure = cost_figure(trials, "val_loss", model="unknown")
    assert figure is not None
    (ax,) = figure.axes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["resnet18", "lcnet_050"]  # unscored: no entry
    points = {tuple(map(tuple, c.get_offsets())): c for c in ax.collections}
    assert len(points) == 4 and sum(len(k) for k in points) == 4  # one marker per scored trial
    hollow = [c for c in ax.collections if len(c.get_facecolors()) == 0 or c.get_facecolors()[0][3] == 0]
    assert sorted(tuple(c.get_offsets()[0]) for c in hollow) == [(8.0, 0.5), (60.0, 0.2)]  # the stopped ones
    assert ax.get_xlabel() == "trial wall-clock seconds" and ax.get_ylabel() == "best val_loss"


def test_no_cost_figure_without_the_metric():
    assert cost_figure(_trials(), "val_acc") is None
    assert cost_figure(pd.DataFrame(), "val_loss") is None


def test_trials_stopped_early_are_candidates_only_when_asked():
    from tunefleet.analysis import finished_trials

    frame = pd.DataFrame(
        {
            "name": ["t01", "t02", "t03", "t04"],
            "status": ["FINISHED", "KILLED", "KILLED", "FAILED"],
            "outcome": [rec.COMPLETED, rec.STOPPED, rec.INTERRUPTED, rec.FAILED],
            "best_val_acc": [0.8, 0.9, 0.95, 0.99],
        }
    )
    assert list(finished_trials(frame, "val_acc", "max")["name"]) == ["t01"]
    assert list(finished_trials(frame, "val_acc", "max", stopped=True)["name"]) == ["t02", "t01"]  # not interrupted
