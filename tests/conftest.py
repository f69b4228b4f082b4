"""Shared helpers: run the real ``tunefleet`` CLI in a scratch directory, write specs there."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

# A small, fast spec: digits at 16x16, the tiny timm ResNet, a few epochs.
SMALL_SPEC: dict[str, Any] = {
    "name": "small",
    "data": {"kind": "digits", "image_size": 16},
    "model": "test_resnet",
    "space": {
        "lr": {"loguniform": [0.01, 0.08]},
        "batch_size": {"choice": [32, 64]},
        "optimizer": {"choice": {"sgd": {"momentum": {"uniform": [0.85, 0.95]}}, "adamw": {}}},
    },
    "search": {"searcher": "optuna", "scheduler": "fifo", "num_samples": 4, "max_epochs": 4, "seed": 0},
}


@pytest.fixture
def small_spec() -> dict[str, Any]:
    return copy.deepcopy(SMALL_SPEC)


@pytest.fixture
def write_spec(tmp_path: Path):
    def write(doc: dict[str, Any] | str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
        return path

    return write


@pytest.fixture
def cli(tmp_path: Path):
    """Run ``tunefleet ARGS`` as a user would, with ``tmp_path`` as the working directory."""

    def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        env["COLUMNS"] = "160"
        return subprocess.run(
            [sys.executable, "-m", "tunefleet.search.cli", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
