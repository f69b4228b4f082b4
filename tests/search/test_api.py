"""``tunefleet.search`` exports its public API lazily: names resolve, bad names fail, nothing heavy at import."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tunefleet.search as search


@pytest.mark.parametrize("name", search.__all__)
def test_every_public_name_resolves(name):
    assert getattr(search, name) is not None


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        search.nope  # noqa: B018


def test_importing_the_package_loads_neither_ray_nor_mlflow():
    code = "import sys, tunefleet.search; print(any(m in sys.modules for m in ('ray', 'mlflow', 'torch')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
