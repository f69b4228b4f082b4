"""mypy sees across the four packages: a type error that only shows through another package's
annotations (``load_spec`` returns a ``SearchSpec``, not an int) fails the type check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["api", "search", "spaces", "trainables", "analysis"]


def _mypy(*extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mypy", *PACKAGES, *extra]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_a_cross_package_type_error_is_caught(tmp_path):
    target = ROOT / "search" / "run" / "_progress.py"
    shadow = tmp_path / "_progress.py"
    shadow.write_text(
        target.read_text() + '\n\nfrom tunefleet.spaces import load_spec\n\nx: int = load_spec("a.yaml")\n'
    )
    result = _mypy("--shadow-file", str(target), str(shadow))
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'expression has type "SearchSpec", variable has type "int"' in result.stdout, result.stdout
    assert "search/run/_progress.py" in result.stdout
