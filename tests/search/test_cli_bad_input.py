"""Bad input: one line naming the field, exit code 2, nothing started and nothing written.

The commands run in this process (``run_cli``); ``test_cli_imports.py`` proves, one subprocess per
command, that they answer before Ray or torch is imported.
"""

from __future__ import annotations

import sys

import pytest

CASES = {
    "unknown searcher": (("search", "searcher", "bayes"), "search.searcher"),
    "unknown scheduler": (("search", "scheduler", "bohb"), "search.scheduler"),
    "unknown optimizer": (("space", "optimizer", {"choice": ["sgd", "adamx"]}), "space.optimizer"),
    "unknown loss": (("space", "loss", "hinge"), "space.loss"),
    "low >= high": (("space", "lr", {"loguniform": [0.1, 0.01]}), "space.lr"),
    "non-positive batch": (("space", "batch_size", {"choice": [0, 32]}), "space.batch_size"),
    "unknown model": ((None, "model", "resnet_does_not_exist"), "space.model"),
    "grid without values": (("search", "searcher", "grid"), "space.lr"),
    # Scenario 15: limits that would use resources without end, refused before any is used.
    "huge num_samples": (("search", "num_samples", 10_000_000), "search.num_samples"),
    "negative time budget": (("search", "time_budget", -60), "search.time_budget"),
    "negative max_failures": (("search", "max_failures", -1), "search.max_failures"),
    "zero trial_timeout": (("search", "trial_timeout", "0s"), "search.trial_timeout"),
    "streaming bundled digits": (("data", "cache", "stream"), "data.cache"),
    "unknown data path": (("data", "cache", "disk"), "data.cache"),
}


def _assert_refused(result, field: str, tmp_path) -> None:
    assert result.returncode == 2, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and field in lines[0]
    # nothing started, nothing written
    assert not (tmp_path / "mlflow.db").exists()
    assert not (tmp_path / "tunefleet-runs").exists()
    assert not (tmp_path / "mlruns").exists()
    assert "Started a local Ray instance" not in result.stderr + result.stdout
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()


@pytest.mark.parametrize("case", sorted(CASES))
def test_search_refuses_bad_spec(case, run_cli, write_spec, small_spec, tmp_path):
    (section, key, value), field = CASES[case]
    (small_spec[section] if section else small_spec)[key] = value
    _assert_refused(run_cli("search", str(write_spec(small_spec))), field, tmp_path)


def test_search_refuses_a_folder_too_large_for_memory(run_cli, write_spec, small_spec, tmp_path, image_folder):
    root = image_folder(tmp_path / "images", {"cat": 20, "dog": 20})
    data = {"kind": "imagefolder", "root": str(root), "image_size": 64, "cache": "memory", "cache_budget_gb": 0.0001}
    result = run_cli("search", str(write_spec({**small_spec, "data": data})))
    _assert_refused(result, "data.cache", tmp_path)
    # the estimate (40 RGB images at 64x64: 480 KiB) and the budget, in the one line
    assert "about 0.5 MiB for 40 images at 64x64x3, over data.cache_budget_gb=0.0001" in result.stderr
    data["cache"] = "auto"  # the same folder streams instead
    assert (
        "streamed from disk (0.5 MiB decoded, budget 0.0001 GiB; data.cache: auto)"
        in run_cli("search", str(write_spec({**small_spec, "data": data})), "--dry-run").stdout
    )


def test_search_refuses_missing_and_malformed_files(run_cli, write_spec, tmp_path):
    _assert_refused(run_cli("search", "nope.yaml"), "no such file", tmp_path)
    bad = write_spec("name: x\nspace: {lr: [1, 2\n")
    _assert_refused(run_cli("search", str(bad)), "not valid YAML", tmp_path)


def test_search_refuses_bad_cli_values(run_cli, write_spec, small_spec, tmp_path):
    spec = str(write_spec(small_spec))
    _assert_refused(run_cli("search", spec, "--searcher", "hyperband"), "search.searcher", tmp_path)
    _assert_refused(run_cli("search", spec, "--num-samples", "0"), "search.num_samples", tmp_path)
    _assert_refused(run_cli("search", spec, "--num-samples", "many"), "--num-samples", tmp_path)


def test_export_refuses_missing_experiment_without_creating_a_store(run_cli, tmp_path):
    _assert_refused(run_cli("export", "nothing-here", "--top-k", "2"), "no experiment 'nothing-here'", tmp_path)
    _assert_refused(run_cli("export", "x", "--top-k", "0"), "--top-k", tmp_path)


def test_resume_refuses_what_it_cannot_find_without_creating_a_store(run_cli, tmp_path):
    _assert_refused(run_cli("resume", "nothing-here"), "no experiment 'nothing-here'", tmp_path)
