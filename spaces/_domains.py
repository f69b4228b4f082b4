"""Search domains: what one parameter may take, in a form both YAML and Python can state.

A domain is an immutable value. ``parse_domain`` turns the YAML form into one; every domain can
say whether a value lies inside it (``contains``), list its values for grid search (``grid_values``)
and turn itself back into YAML (``to_yaml``), so a spec round-trips.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ._errors import SpecError

Scalar = bool | int | float | str


@dataclass(frozen=True)
class Constant:
    """A fixed value: not searched, but logged with every trial."""

    value: Scalar

    def contains(self, value: Any) -> bool:
        return bool(value == self.value)

    def grid_values(self, path: str) -> list[Scalar]:
        return [self.value]

    def to_yaml(self) -> Any:
        return self.value


@dataclass(frozen=True)
class Float:
    """A real number in ``[low, high]``, sampled on a log scale when ``log`` is set."""

    low: float
    high: float
    log: bool = False
    step: float | None = None
    grid: tuple[float, ...] = ()

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not self.low <= value <= self.high:
            return False
        if self.step is None:
            return True
        steps = (value - self.low) / self.step
        return abs(steps - round(steps)) < 1e-6 * max(1.0, steps)

    def grid_values(self, path: str) -> list[Scalar]:
        if not self.grid:
            raise SpecError(path, "grid search needs explicit `grid: [...]` values for a continuous domain")
        return list(self.grid)

    def to_yaml(self) -> Any:
        out: dict[str, Any] = {("loguniform" if self.log else "uniform"): [self.low, self.high]}
        if self.step is not None:
            out["step"] = self.step
        if self.grid:
            out["grid"] = list(self.grid)
        return out


@dataclass(frozen=True)
class Int:
    """An integer in ``[low, high]`` (both included) on a grid of ``step``."""

    low: int
    high: int
    step: int = 1
    log: bool = False
    grid: tuple[int, ...] = ()

    # Beyond this many values an int range is treated as continuous for grid search.
    MAX_ENUMERATED = 32

    def contains(self, value: Any) -> bool:
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and self.low <= value <= self.high
            and (value - self.low) % self.step == 0
        )

    def grid_values(self, path: str) -> list[Scalar]:
        if self.grid:
            return list(self.grid)
        values = list(range(self.low, self.high + 1, self.step))
        if len(values) > self.MAX_ENUMERATED:
            raise SpecError(path, f"grid search over {len(values)} integers; give `grid: [...]` values")
        return list(values)

    def to_yaml(self) -> Any:
        out: dict[str, Any] = {"int": [self.low, self.high]}
        if self.step != 1:
            out["step"] = self.step
        if self.log:
            out["log"] = True
        if self.grid:
            out["grid"] = list(self.grid)
        return out


@dataclass(frozen=True)
class Categorical:
    """One of a list of plain values."""

    choices: tuple[Scalar, ...]

    def contains(self, value: Any) -> bool:
        return value in self.choices

    def grid_values(self, path: str) -> list[Scalar]:
        return list(self.choices)

    def to_yaml(self) -> Any:
        return {"choice": list(self.choices)}


@dataclass(frozen=True)
class Conditional:
    """One of several named options, each with its own sub-space (knob -> domain).

    ``optimizer: {choice: {sgd: {momentum: {uniform: [0.8, 0.99]}}, adamw: {}}}`` makes
    ``momentum`` exist only in trials that chose ``sgd``.
    """

    options: dict[str, dict[str, Domain]] = field(default_factory=dict)

    def contains(self, value: Any) -> bool:
        return value in self.options

    def grid_values(self, path: str) -> list[Scalar]:
        return list(self.options)

    def to_yaml(self) -> Any:
        if len(self.options) == 1:
            ((name, knobs),) = self.options.items()
            if not knobs:
                return name
        return {"choice": {name: {k: d.to_yaml() for k, d in knobs.items()} for name, knobs in self.options.items()}}


Domain = Constant | Float | Int | Categorical | Conditional

_RANGE_KEYS = ("loguniform", "uniform", "int")
_MODIFIERS = ("step", "log", "grid")


def _pair(path: str, key: str, raw: Any) -> tuple[Any, Any]:
    if not isinstance(raw, (list, tuple)) or len(raw) != 2:
        raise SpecError(path, f"{key} needs [low, high], got {raw!r}")
    low, high = raw
    for v in (low, high):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise SpecError(path, f"{key} bounds must be numbers, got {raw!r}")
    return low, high


def _parse_range(path: str, key: str, body: dict[str, Any]) -> Domain:
    low, high = _pair(path, key, body[key])
    if not low < high:
        raise SpecError(path, f"{key} needs low < high, got [{low}, {high}]")
    log = key == "loguniform" or bool(body.get("log", False))
    if log and low <= 0:
        raise SpecError(path, f"a log range must lie above 0, got [{low}, {high}]")
    if log and body.get("step") not in ((None, 1) if key == "int" else (None,)):
        raise SpecError(path, "a log range takes no step")
    grid = body.get("grid", ())
    if not isinstance(grid, (list, tuple)):
        raise SpecError(path, f"grid needs a list of values, got {grid!r}")
    if key == "int":
        if not (isinstance(low, int) and isinstance(high, int)):
            raise SpecError(path, f"int needs integer bounds, got [{low}, {high}]")
        step = body.get("step", 1)
        if not isinstance(step, int) or isinstance(step, bool) or step < 1:
            raise SpecError(path, f"int step must be a positive integer, got {step!r}")
        domain: Domain = Int(low, high, step=step, log=log, grid=tuple(grid))
    else:
        step = body.get("step")
        if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0):
            raise SpecError(path, f"step must be a positive number, got {step!r}")
        if step is not None:
            steps = (high - low) / step
            if abs(steps - round(steps)) > 1e-6 * max(1.0, steps):
                raise SpecError(path, f"the range [{low}, {high}] is not a whole number of steps of {step}")
        domain = Float(float(low), float(high), log=log, step=step, grid=tuple(float(g) for g in grid))
    for g in grid:
        if not domain.contains(g):
            raise SpecError(path, f"grid value {g!r} lies outside [{low}, {high}]")
    return domain


def _parse_choice(path: str, raw: Any) -> Domain:
    if isinstance(raw, dict):
        if not raw:
            raise SpecError(path, "choice needs at least one option")
        options: dict[str, dict[str, Domain]] = {}
        for name, knobs in raw.items():
            if knobs is None:
                knobs = {}
            if not isinstance(knobs, dict):
                raise SpecError(f"{path}.{name}", f"an option's knobs must be a mapping, got {knobs!r}")
            options[str(name)] = {str(k): parse_domain(f"{path}.{name}.{k}", v) for k, v in knobs.items()}
        return Conditional(options)
    if isinstance(raw, (list, tuple)):
        if not raw:
            raise SpecError(path, "choice needs at least one option")
        for v in raw:
            if not isinstance(v, (bool, int, float, str)):
                raise SpecError(path, f"choice values must be plain values, got {v!r}")
        if len(set(map(repr, raw))) != len(raw):
            raise SpecError(path, f"choice lists a value twice: {list(raw)!r}")
        return Categorical(tuple(raw))
    raise SpecError(path, f"choice needs a list or a mapping of options, got {raw!r}")


def parse_domain(path: str, raw: Any) -> Domain:
    """Parse the YAML form of one parameter's domain.

    Args:
        path: Where the value sits in the spec (``space.lr``), used in every error message.
        raw: A plain value (constant), or a one-key mapping: ``loguniform``/``uniform``/``int``
            with ``[low, high]`` (plus optional ``step``, ``log``, ``grid``), ``choice`` with a
            list or a mapping of conditional options, or ``grid`` with a list.

    Raises:
        SpecError: naming ``path`` when the form or the numbers are impossible.
    """
    if isinstance(raw, (Constant, Float, Int, Categorical, Conditional)):
        return parse_domain(path, raw.to_yaml())  # a Python-built domain gets the same checks
    if isinstance(raw, (bool, int, float, str)):
        if isinstance(raw, float) and not math.isfinite(raw):
            raise SpecError(path, f"value must be finite, got {raw!r}")
        return Constant(raw)
    if not isinstance(raw, dict) or not raw:
        raise SpecError(path, f"expected a value or a domain like {{uniform: [low, high]}}, got {raw!r}")
    kinds = [k for k in raw if k in (*_RANGE_KEYS, "choice")]
    unknown = [k for k in raw if k not in (*_RANGE_KEYS, "choice", *_MODIFIERS)]
    if unknown:
        raise SpecError(path, f"unknown domain key {unknown[0]!r}; use one of loguniform, uniform, int, choice, grid")
    if len(kinds) > 1:
        raise SpecError(path, f"a domain takes one kind, got {kinds}")
    if not kinds:
        if set(raw) == {"grid"}:
            return _parse_choice(path, raw["grid"])
        raise SpecError(path, f"a domain needs one of loguniform, uniform, int, choice, got {sorted(raw)}")
    kind = kinds[0]
    if kind == "choice":
        if len(raw) != 1:
            raise SpecError(path, "choice takes no modifiers")
        return _parse_choice(path, raw["choice"])
    return _parse_range(path, kind, raw)


# The Python API: the same objects the YAML form parses to, checked the same way.


def loguniform(low: float, high: float, *, grid: tuple[float, ...] = ()) -> Domain:
    """``{loguniform: [low, high]}``: a real number sampled on a log scale."""
    return parse_domain("loguniform", {"loguniform": [low, high], **({"grid": list(grid)} if grid else {})})


def uniform(low: float, high: float, *, step: float | None = None, grid: tuple[float, ...] = ()) -> Domain:
    """``{uniform: [low, high]}``, quantized to multiples of ``step`` above ``low`` when given."""
    body: dict[str, Any] = {"uniform": [low, high]}
    if step is not None:
        body["step"] = step
    if grid:
        body["grid"] = list(grid)
    return parse_domain("uniform", body)


def integer(low: int, high: int, *, step: int = 1, log: bool = False) -> Domain:
    """``{int: [low, high], step: s}``: both bounds included."""
    return parse_domain("int", {"int": [low, high], "step": step, **({"log": True} if log else {})})


def choice(*values: Scalar, **options: dict[str, Any] | None) -> Domain:
    """``choice(32, 64)`` for plain values, ``choice(sgd={"momentum": uniform(0.8, 0.99)}, adamw={})``
    for named options with their own knobs (a conditional space)."""
    if values and options:
        raise SpecError("choice", "give plain values or named options, not both")
    if options:
        return parse_domain(
            "choice",
            {"choice": {k: {n: _yaml_of(d) for n, d in (v or {}).items()} for k, v in options.items()}},
        )
    return parse_domain("choice", {"choice": list(values)})


def _yaml_of(value: Any) -> Any:
    return value.to_yaml() if isinstance(value, (Constant, Float, Int, Categorical, Conditional)) else value
