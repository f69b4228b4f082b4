"""A two-objective search (accuracy against latency) through the CLI, with the median stopping
rule ranking trials on the first objective: every trial measures its serving cost, ``trials
--pareto`` lists the front, the report draws it, ``export --pick`` ships from it within a latency
budget, and a budget no trial meets is one line naming the fastest."""

from __future__ import annotations

import json

import pytest

from tunefleet.spaces import records as rec

OBJECTIVES = ["val_acc", "latency_ms"]


def _dominated(row: dict, others: list[dict]) -> bool:
    acc, ms = row["best_val_acc"], row["latency_ms"]
    return any(
        o["best_val_acc"] >= acc and o["latency_ms"] <= ms and (o["best_val_acc"] > acc or o["latency_ms"] < ms)
        for o in others
    )


@pytest.mark.slow
def test_two_objective_search_pareto_report_and_pick(cli, run_cli, write_spec, small_spec, tmp_path):
    small_spec["name"] = "mo"
    del small_spec["model"]
    small_spec["space"]["model"] = {"choice": ["test_efficientnet", "test_resnet", "test_byobnet"]}
    small_spec["search"] = {
        "searcher": "optuna", "scheduler": "median", "grace_period": 1, "num_samples": 4, "max_epochs": 2,
        "max_concurrent": 2,
        "objectives": OBJECTIVES, "serving_batch": 8, "seed": 1,
    }  # fmt: skip
    result = cli("search", str(write_spec(small_spec)), timeout=900)  # the read-backs run in this process
    assert result.returncode == 0, result.stderr[-3000:]
    assert "median scheduler" in result.stdout

    listed = run_cli("trials", "mo", "--format", "json")
    trials = json.loads(listed.stdout)
    assert {t["outcome"] for t in trials} <= {rec.COMPLETED, rec.STOPPED} and rec.COMPLETED in {
        t["outcome"] for t in trials
    }
    assert len(trials) == 4 and all(t["latency_ms"] > 0 and t["model_mb"] > 0 for t in trials)
    assert all(t[rec.LATENCY_BATCH_MS] > t["latency_ms"] for t in trials)  # a batch of 8 costs more than one
    front = json.loads(run_cli("trials", "mo", "--pareto", "--format", "json").stdout)
    ids = {t["run_id"] for t in front}
    assert front and ids <= {t["run_id"] for t in trials}
    assert not any(_dominated(t, trials) for t in front)  # nobody beats a front trial on both
    assert all(_dominated(t, front) for t in trials if t["run_id"] not in ids)  # and the front beats the rest
    table = run_cli("trials", "mo", "--pareto")
    assert f"{len(front)} Pareto trials" in table.stdout and "latency_ms" in table.stdout

    report = run_cli("report", "mo")
    assert report.returncode == 0 and (tmp_path / "reports" / "mo" / "pareto_front.png").is_file(), report.stderr

    fastest = min(t["latency_ms"] for t in front)
    budget = 1.5 * fastest
    shipped = run_cli("export", "mo", "--pick", f"latency_ms<={budget:.4f}", "--top-k", "3", "--out", "out")
    assert shipped.returncode == 0, shipped.stderr[-3000:]
    card = json.loads((tmp_path / "out" / rec.CARD_FILE).read_text())
    members = {m["run_id"] for m in card["members"]}
    assert members <= ids
    assert sum(t["latency_ms"] for t in front if t["run_id"] in members) <= budget

    too_tight = run_cli("export", "mo", "--pick", "latency_ms<=0.0001", "--out", "never")
    lines = too_tight.stderr.strip().splitlines()
    assert too_tight.returncode == 2 and len(lines) == 1, too_tight.stderr
    assert lines[0].startswith("error: --pick: no Pareto trial has latency_ms <= 0.0001; the fastest there is: ")
    assert f"latency_ms={fastest:.4g}" in lines[0] and not (tmp_path / "never").exists()

    # the same from Python: the front as a DataFrame, and the budget refused with the CLI's line
    import tunefleet

    found = tunefleet.open("mo", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert set(found.pareto()["run_id"]) == ids
    with pytest.raises(tunefleet.SpecError, match=r"^--pick: no Pareto trial has latency_ms <= 0.0001; the fastest"):
        found.export(pick="latency_ms<=0.0001", out=tmp_path / "never")
    assert not (tmp_path / "never").exists()
