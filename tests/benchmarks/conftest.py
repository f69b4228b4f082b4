"""The benchmark scripts' smoke tests run each script as ``make bench`` runs it: a subprocess from
the repository root, with ``--no-write`` so RESULTS.md is left alone (``bench_script``)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"


def run_script(name: str, *args: str, timeout: float = 240) -> tuple[list[dict[str, Any]], str]:
    """Run ``benchmarks/NAME`` and return its JSON lines and its whole stdout."""
    results = BENCH / "RESULTS.md"
    before = results.read_bytes()
    proc = subprocess.run(
        [sys.executable, str(BENCH / name), *args, "--no-write"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert results.read_bytes() == before, "--no-write must leave RESULTS.md alone"
    rows = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    return rows, proc.stdout


@pytest.fixture
def bench_script() -> Callable[..., tuple[list[dict[str, Any]], str]]:
    """``bench_script(NAME, *ARGS)``: ``run_script``."""
    return run_script
