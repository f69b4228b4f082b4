"""fANOVA importance per scope, on made-up trials whose metric depends on known parameters."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tunefleet.analysis._importance import (
    GLOBAL_SCOPE,
    param_importances,
    parse_value,
    searched_knobs,
)
from tunefleet.spaces import Categorical, Constant, Float, choice, integer, loguniform, uniform
from tunefleet.spaces import records as rec

SPACE = {
    "model": Constant("test_resnet"),
    "lr": loguniform(1e-4, 1e-1),
    "batch_size": choice(32, 64),
    "epochs_hint": integer(1, 8),
    "optimizer": choice(sgd={"momentum": uniform(0.8, 0.99)}, adamw={}),
    "single": choice(7),
}


def _trial(i: int, rng: np.random.Generator, outcome: str = rec.COMPLETED) -> dict[str, object]:
    """One ``trials_frame`` row with random values, logged as MLflow would (strings)."""
    optimizer = "sgd" if i % 2 == 0 else "adamw"
    row: dict[str, object] = {
        "run_id": f"run{i:03d}",
        "name": f"t{i:03d}",
        "status": rec.OUTCOME_STATUS[outcome],
        "outcome": outcome,
        "params.model": "test_resnet",
        "params.lr": str(float(10 ** rng.uniform(-4, -1))),
        "params.batch_size": str(int(rng.choice([32, 64]))),
        "params.epochs_hint": str(int(rng.integers(1, 9))),
        "params.optimizer": optimizer,
        "params.single": "7",
    }
    if optimizer == "sgd":
        row["params.optimizer.momentum"] = str(float(rng.uniform(0.8, 0.99)))
    return row


def _frame(rows: list[dict[str, object]], score) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame[rec.best_key("val_acc")] = [score(row) for row in rows]
    return frame


def _lr_only(row) -> float:
    return 1.0 - (math.log10(float(row["params.lr"])) + 2.5) ** 2 / 4


def _scope(result, scope: str) -> pd.DataFrame:
    return result.frame[result.frame["scope"] == scope].reset_index(drop=True)


def test_knobs_map_spec_paths_to_logged_params_and_skip_what_is_not_searched():
    knobs = {k.path: k for k in searched_knobs(SPACE)}
    assert list(knobs) == ["lr", "batch_size", "epochs_hint", "optimizer", "optimizer.sgd.momentum"]
    assert knobs["optimizer.sgd.momentum"].param == "optimizer.momentum"
    assert knobs["optimizer.sgd.momentum"].option == ("optimizer", "sgd")
    assert knobs["lr"].option is None
    # a family with a single option: its knobs are in every trial, so they are global
    single = {k.path: k for k in searched_knobs({"optimizer": choice(sgd={"momentum": uniform(0.8, 0.9)})})}
    assert list(single) == ["optimizer.sgd.momentum"] and single["optimizer.sgd.momentum"].option is None


def test_logged_strings_read_back_as_domain_values():
    assert parse_value(Categorical((False, True)), "True") is True
    assert parse_value(Categorical((32, 64)), "64") == 64
    assert parse_value(Float(0.1, 1.0), "0.5") == 0.5
    assert parse_value(Float(0.1, 1.0), "5.0") is None  # outside the space
    assert parse_value(Float(0.1, 1.0), math.nan) is None  # not logged in this trial
    assert parse_value(Categorical((32, 64)), "48") is None


def test_metric_driven_by_lr_ranks_lr_first():
    rng = np.random.default_rng(0)
    trials = _frame([_trial(i, rng) for i in range(40)], _lr_only)
    result = param_importances(trials, SPACE, "val_acc", "max")
    overall = _scope(result, GLOBAL_SCOPE)
    assert overall["param"].iloc[0] == "lr" and overall["importance"].iloc[0] > 0.5
    assert overall["importance"].sum() == pytest.approx(1.0)
    assert set(overall["trials"]) == {40}
    # Constants and single-valued domains are not parameters of the search
    assert not {"model", "single"} & set(result.frame["param"])
    # seeded: the same numbers again
    pd.testing.assert_frame_equal(result.frame, param_importances(trials, SPACE, "val_acc", "max").frame)


def test_conditional_knob_matters_only_within_its_option():
    rng = np.random.default_rng(1)

    def score(row) -> float:
        if row["params.optimizer"] == "sgd":
            return 0.5 + 2 * (float(row["params.optimizer.momentum"]) - 0.8)
        return 0.6

    trials = _frame([_trial(i, rng) for i in range(40)], score)
    result = param_importances(trials, SPACE, "val_acc", "min")
    sgd = _scope(result, "optimizer=sgd")
    assert sgd["param"].iloc[0] == "optimizer.sgd.momentum" and sgd["importance"].iloc[0] > 0.5
    assert set(sgd["trials"]) == {20}
    assert "optimizer" not in set(sgd["param"])  # constant inside its own scope
    overall = _scope(result, GLOBAL_SCOPE)
    assert len(overall) and "optimizer.sgd.momentum" not in set(overall["param"])
    assert set(result.frame["scope"]) == {GLOBAL_SCOPE, "optimizer=sgd"}  # adamw has no knobs of its own


def test_option_with_too_few_trials_is_skipped_with_a_note():
    rng = np.random.default_rng(2)
    rows = [_trial(i, rng) for i in range(1, 12, 2)] + [_trial(0, rng), _trial(2, rng)]  # 6 adamw, 2 sgd
    result = param_importances(_frame(rows, _lr_only), SPACE, "val_acc", "max")
    assert set(result.frame["scope"]) == {GLOBAL_SCOPE}
    assert any("optimizer=sgd skipped: 2 finished trials" in note for note in result.notes)


def test_fewer_than_three_finished_trials_give_no_importance_and_say_why():
    rng = np.random.default_rng(3)
    rows = [_trial(0, rng), _trial(1, rng)] + [_trial(i, rng, rec.STOPPED) for i in range(2, 12)]
    rows += [_trial(12, rng, rec.FAILED)]
    result = param_importances(_frame(rows, _lr_only), SPACE, "val_acc", "max")
    assert result.frame.empty and list(result.frame.columns) == ["param", "importance", "scope", "trials"]
    assert result.notes == ("2 finished trials; parameter importance needs at least 3",)


def test_stopped_early_trials_are_left_out():
    rng = np.random.default_rng(4)
    done = [_trial(i, rng) for i in range(30)]
    stopped = [_trial(i, rng, rec.STOPPED) for i in range(30, 60)]

    def score(row) -> float:
        # stopped trials would make batch_size look decisive if they were counted
        return float(row["params.batch_size"]) if row["outcome"] == rec.STOPPED else _lr_only(row)

    result = param_importances(_frame(done + stopped, score), SPACE, "val_acc", "max")
    overall = _scope(result, GLOBAL_SCOPE)
    assert set(overall["trials"]) == {30} and overall["param"].iloc[0] == "lr"


def test_nothing_searched_or_nothing_varies():
    rng = np.random.default_rng(5)
    trials = _frame([_trial(i, rng) for i in range(6)], _lr_only)
    empty = param_importances(trials, {"model": Constant("test_resnet"), "single": choice(7)}, "val_acc", "max")
    assert empty.frame.empty and "varies no parameter" in empty.notes[0]
    flat = param_importances(_frame([_trial(i, rng) for i in range(6)], lambda row: 0.5), SPACE, "val_acc", "max")
    assert flat.frame.empty and any("scored the same val_acc" in note for note in flat.notes)


def test_many_trials_are_sampled_with_a_seed_and_the_note_says_so(monkeypatch):
    import tunefleet.analysis._importance as importance

    monkeypatch.setattr(importance, "MAX_TRIALS", 30)
    rng = np.random.default_rng(0)
    trials = _frame([_trial(i, rng) for i in range(80)], _lr_only)
    result = param_importances(trials, SPACE, "val_acc", "max")
    overall = _scope(result, GLOBAL_SCOPE)
    assert set(overall["trials"]) == {30} and overall["param"].iloc[0] == "lr"
    assert any(f"seeded sample of 30 of its {len(trials)} finished trials" in n for n in result.notes)
    pd.testing.assert_frame_equal(result.frame, param_importances(trials, SPACE, "val_acc", "max").frame)
