"""``cost_by_model``: per model, what its trials reached for the epochs and seconds they took."""

from __future__ import annotations

import math

import pandas as pd

from tunefleet.analysis._cost import COST_COLUMNS, cost_by_model


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
