"""The module ``__getattr__`` (PEP 562) of a package whose names load on first use, as Ray Tune's
lazy tables do: importing the package stays cheap, and each name pays for its own imports.

    _LAZY = {"build_report": "._report"}          # name -> module, relative to the package
    __getattr__ = lazy_getattr(__name__, _LAZY)
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """``package``'s ``__getattr__``: a name in ``table`` is imported from its module on first use
    and kept on the package; any other name is an AttributeError, as for a plain module."""

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
