"""The named, ready-made spaces validated and described: ``builtin_space`` and ``space_rows``.

The tables themselves (``BUILTIN_SPACES``, ``DESCRIPTIONS``) are plain data in ``_builtin_data``,
re-exported here; they live apart so ``_catalog`` can merge a ``base:`` without importing this
module, which imports ``_catalog`` to validate.
"""

from __future__ import annotations

from ._builtin_data import BUILTIN_SPACES, DESCRIPTIONS
from ._catalog import validate_space
from ._domains import Categorical, Conditional, Constant, Domain, Float, Int
from ._knobs import FAMILIES, FAMILY_HELP, GROUPS, TOP_KNOBS

# The tables are re-exported: callers import them from here, beside the functions that use them.
__all__ = ["BUILTIN_SPACES", "DESCRIPTIONS", "builtin_space", "space_rows"]


def builtin_space(name: str) -> dict[str, Domain]:
    """A built-in space, validated (``KeyError`` for an unknown name)."""
    return validate_space(BUILTIN_SPACES[name], prefix=f"builtin:{name}")


def _help(path: str) -> str:
    parts = path.split(".")
    if parts[0] in TOP_KNOBS:
        return TOP_KNOBS[parts[0]].help
    if parts[0] in GROUPS:
        return GROUPS[parts[0]][parts[1]].help
    if parts[0] in FAMILIES and len(parts) == 3:
        return FAMILIES[parts[0]][parts[1]][parts[2]].help
    return ""


def _short(domain: Domain) -> str:
    if isinstance(domain, Constant):
        return repr(domain.value)
    if isinstance(domain, Float):
        kind = "loguniform" if domain.log else "uniform"
        extra = f" step {domain.step:g}" if domain.step else ""
        return f"{kind} [{domain.low:g}, {domain.high:g}]{extra}"
    if isinstance(domain, Int):
        extra = f" step {domain.step}" if domain.step != 1 else ""
        return f"int [{domain.low}, {domain.high}]{extra}{' log' if domain.log else ''}"
    if isinstance(domain, Categorical):
        return "one of " + ", ".join(map(repr, domain.choices))
    return "one of " + ", ".join(domain.options)


def space_rows(space: dict[str, Domain]) -> list[tuple[str, str, str]]:
    """(path, domain, meaning) rows for printing a space; an option's knobs follow their option."""
    rows: list[tuple[str, str, str]] = []
    for path, domain in space.items():
        rows.append((path, _short(domain), FAMILY_HELP[path] if path in FAMILIES else _help(path)))
        if isinstance(domain, Conditional):
            for option, knobs in domain.options.items():
                for knob, sub in knobs.items():
                    rows.append((f"  {path}.{option}.{knob}", _short(sub), _help(f"{path}.{option}.{knob}")))
    return rows
