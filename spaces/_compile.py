"""One validated space, four consumers: Optuna define-by-run, Ray Tune domains (random search),
grid points, and membership checks.

Flat names are what trials see: ``lr``, ``optimizer``, ``optimizer.sgd.momentum``,
``augmentation.hflip``. A conditional knob's name carries its option, so Optuna never sees one
name with two distributions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ._domains import Categorical, Conditional, Constant, Domain, Float, Int

Point = dict[str, Any]
# Grid search hands a trial its whole point under this key (see ``sampled_values``).
GRID_KEY = "grid_point"


def _suggest(trial: Any, path: str, domain: Domain, constants: Point) -> None:
    if isinstance(domain, Constant):
        constants[path] = domain.value
    elif isinstance(domain, Float):
        trial.suggest_float(path, domain.low, domain.high, log=domain.log, step=domain.step)
    elif isinstance(domain, Int):
        trial.suggest_int(path, domain.low, domain.high, step=domain.step, log=domain.log)
    elif isinstance(domain, Categorical):
        trial.suggest_categorical(path, list(domain.choices))
    else:
        names = list(domain.options)
        if len(names) == 1:
            name = names[0]
            constants[path] = name
        else:
            name = trial.suggest_categorical(path, names)
        for knob, sub in domain.options[name].items():
            _suggest(trial, f"{path}.{name}.{knob}", sub, constants)


class DefineByRun:
    """An Optuna define-by-run function for a space (as Ray Tune's ``OptunaSearch`` takes it).

    Calling it on a trial suggests every searched value and returns the constants, which Ray
    merges into the trial's config. A class rather than a closure: Tune pickles its searcher
    when it saves experiment state.
    """

    def __init__(self, space: dict[str, Domain]) -> None:
        self.space = space

    def __call__(self, trial: Any) -> Point | None:
        constants: Point = {}
        for path, domain in self.space.items():
            _suggest(trial, path, domain, constants)
        return constants or None


def define_by_run(space: dict[str, Domain]) -> Callable[[Any], Point | None]:
    """See ``DefineByRun``."""
    return DefineByRun(space)


def _expand(path: str, domain: Domain) -> list[Point]:
    if isinstance(domain, Conditional):
        points: list[Point] = []
        for name, knobs in domain.options.items():
            option_points: list[Point] = [{path: name}]
            for knob, sub in knobs.items():
                option_points = [{**p, **q} for p in option_points for q in _expand(f"{path}.{name}.{knob}", sub)]
            points += option_points
        return points
    return [{path: value} for value in domain.grid_values(path)]


def _count(path: str, domain: Domain) -> int:
    if isinstance(domain, Conditional):
        return sum(
            math.prod(_count(f"{path}.{name}.{k}", d) for k, d in knobs.items())
            for name, knobs in domain.options.items()
        )
    return len(domain.grid_values(path))


def grid_size(space: dict[str, Domain]) -> int:
    """How many points ``grid_points`` would make, computed without making them."""
    return math.prod(_count(f"space.{p}", d) for p, d in space.items())


def grid_points(space: dict[str, Domain]) -> list[Point]:
    """Every combination of grid values; conditional knobs only under their option."""
    points: list[Point] = [{}]
    for path, domain in space.items():
        points = [{**p, **q} for p in points for q in _expand(path, domain)]
    return points


def contains(space: dict[str, Domain], point: Point) -> bool:
    """Whether ``point`` could have come from ``space``: every value inside its domain, no knob
    of an option that was not chosen, and nothing the space does not declare."""
    expected: set[str] = set()
    for path, domain in space.items():
        if path not in point or not domain.contains(point[path]):
            return False
        expected.add(path)
        if isinstance(domain, Conditional):
            for knob, sub in domain.options[point[path]].items():
                knob_path = f"{path}.{point[path]}.{knob}"
                if knob_path not in point or not sub.contains(point[knob_path]):
                    return False
                expected.add(knob_path)
    return expected == set(point)


def sampled_values(config: dict[str, Any]) -> Point:
    """A trial's flat sampled values, whether the searcher gave them flat or as one grid point."""
    point = config.get(GRID_KEY)
    return dict(point) if isinstance(point, dict) else dict(config)


def _tune_domain(domain: Domain) -> Any:
    from ray import tune

    if isinstance(domain, Constant):
        return domain.value
    if isinstance(domain, Float):
        if domain.step is not None:  # Optuna's meaning: low + k * step (Ray's q-domains round to k * q)
            count = math.floor((domain.high - domain.low) / domain.step + 1e-9)
            return tune.choice([domain.low + k * domain.step for k in range(count + 1)])
        return tune.loguniform(domain.low, domain.high) if domain.log else tune.uniform(domain.low, domain.high)
    if isinstance(domain, Int):
        if domain.log:
            return tune.lograndint(domain.low, domain.high + 1)
        if domain.step != 1:
            return tune.choice(list(range(domain.low, domain.high + 1, domain.step)))
        return tune.randint(domain.low, domain.high + 1)
    if isinstance(domain, Categorical):
        return tune.choice(list(domain.choices))
    names = list(domain.options)
    return tune.choice(names) if len(names) > 1 else names[0]


def tune_domains(space: dict[str, Domain]) -> dict[str, Any]:
    """Ray Tune's own domains for ``space`` (for its random search, ``BasicVariantGenerator``).

    Tune samples every key independently, so each option's knobs are sampled flat
    (``optimizer.sgd.momentum`` even in a trial that picked ``adamw``); ``resolve`` and
    ``active_values`` keep only the chosen option's knobs, so only those are ever used or logged.
    Imports Ray lazily: ``spaces`` itself never needs it.
    """
    out: dict[str, Any] = {}
    for path, domain in space.items():
        out[path] = _tune_domain(domain)
        if isinstance(domain, Conditional):
            for name, knobs in domain.options.items():
                for knob, sub in knobs.items():
                    out[f"{path}.{name}.{knob}"] = _tune_domain(sub)
    return out


def active_values(space: dict[str, Domain], config: dict[str, Any]) -> Point:
    """The part of a sampled ``config`` that applies: declared keys, and knobs of chosen options only."""
    config = sampled_values(config)
    point: Point = {}
    for path, domain in space.items():
        if path not in config:
            continue
        point[path] = config[path]
        if isinstance(domain, Conditional) and config[path] in domain.options:
            for knob in domain.options[config[path]]:
                knob_path = f"{path}.{config[path]}.{knob}"
                if knob_path in config:
                    point[knob_path] = config[knob_path]
    return point
