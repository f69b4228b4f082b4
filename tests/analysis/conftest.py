"""One real, short search for every test of reading a search back (trials, report, export,
registry, predict): they only read it, or add export runs and files of their own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

# Four trials that all run to the end (fifo), with a conditional knob (sgd's momentum), so that
# every figure and every ensemble method has something to work on.
SEARCH_SPEC = {
    "name": "small",
    "data": {"kind": "digits", "image_size": 16},
    "model": "test_resnet",
    "space": {
        "lr": {"loguniform": [0.01, 0.08]},
        "batch_size": {"choice": [32, 64]},
        "optimizer": {"choice": {"sgd": {"momentum": {"uniform": [0.85, 0.95]}}, "adamw": {}}},
    },
    "search": {"searcher": "optuna", "scheduler": "fifo", "num_samples": 4, "max_epochs": 3, "seed": 0},
}


@dataclass(frozen=True)
class Searched:
    folder: Path  # the search's working directory (mlflow.db, reports/ are here)
    uri: str
    output: str  # what the search printed
    cli: Callable[..., subprocess.CompletedProcess[str]]  # ``tunefleet ARGS`` in ``folder``


def _cli(folder: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        env["COLUMNS"] = "160"
        command = [sys.executable, "-m", "tunefleet.search.cli", *args]
        return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=timeout)

    return run


@pytest.fixture(scope="session")
def searched(tmp_path_factory) -> Searched:
    folder = tmp_path_factory.mktemp("searched")
    (folder / "spec.yaml").write_text(yaml.safe_dump(SEARCH_SPEC))
    run = _cli(folder)
    result = run("search", "spec.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    return Searched(folder, f"sqlite:///{folder / 'mlflow.db'}", result.stdout, run)
