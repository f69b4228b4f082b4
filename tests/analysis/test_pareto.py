"""The Pareto front over a trials frame, ``--pick``'s budget, and its bad input through the CLI."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from tunefleet.analysis import Pick, pareto_front, picked
from tunefleet.spaces import SpecError

OBJECTIVES = ["val_acc", "latency_ms"]


def _frame(rows: list[tuple[str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["name", "best_val_acc", "latency_ms"])


def test_the_front_is_every_trial_no_other_beats_on_both():
    frame = _frame([("a", 0.9, 5.0), ("b", 0.8, 2.0), ("c", 0.85, 6.0), ("d", 0.7, 1.0), ("e", 0.7, 3.0)])
    assert list(pareto_front(frame, OBJECTIVES)["name"]) == ["a", "b", "d"]  # c: a beats it; e: b does
    assert list(pareto_front(frame, ["val_acc"])["name"]) == ["a"]


def test_ties_stay_on_the_front_and_missing_values_leave_it():
    frame = _frame([("a", 0.9, 5.0), ("twin", 0.9, 5.0), ("failed", np.nan, 1.0)])
    assert list(pareto_front(frame, OBJECTIVES)["name"]) == ["a", "twin"]


@pytest.mark.parametrize("seed", range(5))
def test_front_agrees_with_its_definition_on_random_trials(seed):
    rng = np.random.default_rng(seed)
    frame = _frame([(str(i), *rng.integers(0, 6, 2) / [5, 1]) for i in range(30)])
    front = set(pareto_front(frame, OBJECTIVES)["name"])
    for a, b in itertools.permutations(frame.itertuples(), 2):
        beats = a.best_val_acc >= b.best_val_acc and a.latency_ms <= b.latency_ms
        if beats and (a.best_val_acc > b.best_val_acc or a.latency_ms < b.latency_ms):
            assert b.name not in front
    assert front and all(
        not any(o.best_val_acc > r.best_val_acc and o.latency_ms <= r.latency_ms for o in frame.itertuples())
        for r in frame.itertuples()
        if r.name in front
    )


def test_pick_ships_the_best_pareto_trials_while_their_summed_cost_fits():
    ranked = _frame([("a", 0.9, 5.0), ("b", 0.8, 2.0), ("c", 0.85, 6.0), ("d", 0.7, 1.0)])  # best first
    assert list(picked(ranked, Pick("latency_ms", 3.0), OBJECTIVES, 3)["name"]) == ["b", "d"]
    assert list(picked(ranked, Pick("latency_ms", 8.0), OBJECTIVES, 3)["name"]) == ["a", "b", "d"]
    assert list(picked(ranked, Pick("latency_ms", 8.0), OBJECTIVES, 1)["name"]) == ["a"]
    with pytest.raises(
        SpecError, match=r"^--pick: no Pareto trial has latency_ms <= 0.5; the fastest there is: latency_ms=1 \(d\)$"
    ):
        picked(ranked, Pick("latency_ms", 0.5), OBJECTIVES, 3)


@pytest.mark.parametrize(
    "text, needle",
    [
        ("latency<=5", "unknown serving cost 'latency'"),
        ("latency_ms<5", "expected NAME<=LIMIT"),
        ("latency_ms<=0", "the limit must be > 0"),
        ("latency_ms<=fast", "expected NAME<=LIMIT"),
    ],
)
def test_a_bad_pick_is_one_line_before_anything_loads(run_cli, tmp_path, text, needle):
    result = run_cli("export", "nothing-here", "--pick", text)
    assert result.returncode == 2 and result.stderr.startswith("error: --pick: ") and needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not list(tmp_path.iterdir())


def test_pareto_on_a_search_that_measured_no_cost_names_what_to_set(run_cli, tmp_path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(
        f"sqlite:///{tmp_path / 'mlflow.db'}"
    )  # no global MLflow state: other tests share the process
    search = client.create_run(client.create_experiment("one"), tags={"tunefleet.role": "search"}).info.run_id
    client.log_param(search, "search.metric", "val_acc")
    client.log_param(search, "search.mode", "max")
    client.set_terminated(search)
    result = run_cli("trials", "one", "--pareto")
    assert result.returncode == 2, result.stderr
    assert (
        result.stderr.startswith("error: --pareto: the trials measured no latency_ms; ")
        and "measure_serving" in result.stderr
    )
