"""Earlier trials as points of a space: the way back from a trial run's params to what a searcher samples.

A trial run's params are its whole recipe flattened (``flatten_recipe``): a family's option under
the family's name (``optimizer: sgd``) and the option's knobs without it (``optimizer.momentum``).
A space names a conditional knob with its option (``optimizer.sgd.momentum``), so that one name
never has two distributions. ``point_from_params`` maps the one onto the other and keeps only
points the space could have sampled itself (``contains``): a warm start never hands a searcher a
value outside its domains.
"""

from __future__ import annotations

from typing import Any

from ._compile import Point, contains
from ._domains import Categorical, Conditional, Constant, Domain, Float, Int


def _value(domain: Domain, text: str) -> Any:
    """The value ``text`` (an MLflow param, always a string) stands for in ``domain``; None if none."""
    try:
        if isinstance(domain, Float):
            return float(text)
        if isinstance(domain, Int):
            return int(float(text))
    except ValueError:
        return None
    choices: tuple[Any, ...] = ()
    if isinstance(domain, Categorical):
        choices = tuple(domain.choices)
    elif isinstance(domain, Conditional):
        choices = tuple(domain.options)
    elif isinstance(domain, Constant):
        choices = (domain.value,)
    return next((c for c in choices if str(c) == text), None)


def point_from_params(space: dict[str, Domain], params: dict[str, str]) -> Point | None:
    """The point of ``space`` a trial with these params stands for, or None when the space could
    not have sampled it (a knob missing from the params, or a value outside its domain)."""
    point: Point = {}
    for path, domain in space.items():
        if path not in params:
            return None
        point[path] = _value(domain, params[path])
        if isinstance(domain, Conditional) and point[path] in domain.options:
            option = point[path]
            for knob, sub in domain.options[option].items():
                text = params.get(f"{path}.{knob}")  # logged without the option's name
                if text is None:
                    return None
                point[f"{path}.{option}.{knob}"] = _value(sub, text)
    return point if contains(space, point) else None


def shared_knobs(space: dict[str, Domain], params: dict[str, str]) -> set[str]:
    """The space's top-level knobs that ``params`` also has: what an earlier search and this one share."""
    return {path for path in space if path in params}


def start_point_problem(space: dict[str, Domain], point: dict[str, Any]) -> tuple[str, str] | None:
    """Why ``point`` (one of ``search.start_with``) cannot start a search of ``space``: (the knob,
    the reason), or None when every value lies inside its domain. A conditional knob's own knobs
    (``optimizer.sgd.momentum``) need their option chosen in the point too."""
    for key, value in point.items():
        if key in space:
            domain = space[key]
        else:
            parent = next((p for p in space if key.startswith(p + ".") and isinstance(space[p], Conditional)), None)
            if parent is None:
                return key, "not a knob of this space"
            option, _, knob = key[len(parent) + 1 :].partition(".")
            conditional = space[parent]
            assert isinstance(conditional, Conditional)
            if knob not in conditional.options.get(option, {}):
                return key, f"{parent} has no option {option!r} with a knob {knob!r}"
            if point.get(parent) != option:
                return key, f"a knob of {parent}={option}: set {parent}: {option} in the same config"
            domain = conditional.options[option][knob]
        if not domain.contains(value):
            return key, f"{value!r} is outside its domain"
    return None
