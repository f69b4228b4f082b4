"""What a search may vary: every knob's type, legal range and default, named like timm's knobs.

Three shapes of entry:
- a *knob* at the top (``lr``, ``batch_size``): one value per trial;
- a *family* (``optimizer``, ``loss``): a named option, each option with knobs of its own, so that
  ``momentum`` exists only for ``sgd``;
- a *group* (``augmentation``): a bag of knobs under one heading.

``trainables/`` implements each option name; its tests run every name registered here.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Literal

from ._domains import Categorical, Conditional, Constant, Domain, Float, Int
from ._errors import SpecError

Kind = Literal["float", "int", "bool", "str"]


@dataclass(frozen=True)
class Knob:
    """One parameter's contract: type, open/closed bounds and the value used when not searched."""

    kind: Kind
    default: Any
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    help: str = ""

    def check_value(self, path: str, value: Any) -> None:
        """Raise SpecError naming ``path`` unless ``value`` fits this knob."""
        ok_type = {
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "int": isinstance(value, int) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
            "str": isinstance(value, str),
        }[self.kind]
        if not ok_type:
            raise SpecError(path, f"expected a {self.kind}, got {value!r}")
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            raise SpecError(path, f"must be {'>' if self.low_open else '>='} {self.low}, got {value!r}")
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            raise SpecError(path, f"must be {'<' if self.high_open else '<='} {self.high}, got {value!r}")

    def check_domain(self, path: str, domain: Domain) -> None:
        """Raise SpecError unless every value ``domain`` can produce fits this knob."""
        if isinstance(domain, Conditional):
            raise SpecError(path, "takes plain values; a mapping of options is only for optimizer/loss")
        if isinstance(domain, (Float, Int)):
            if self.kind not in ("float", "int"):
                raise SpecError(path, f"expected a {self.kind}, got a numeric range")
            if self.kind == "int" and isinstance(domain, Float):
                raise SpecError(path, "expected integers; use {int: [low, high]}")
            for bound in (domain.low, domain.high, *domain.grid):
                self.check_value(path, bound)
        elif isinstance(domain, Categorical):
            for value in domain.choices:
                self.check_value(path, value)
        else:
            self.check_value(path, domain.value)


def _unit(default: float) -> Knob:
    """A fraction in [0, 1)."""
    return Knob("float", default, low=0.0, high=1.0, high_open=True)


TOP_KNOBS: dict[str, Knob] = {
    "model": Knob("str", "test_resnet", help="timm model name"),
    "lr": Knob("float", 1e-2, low=0.0, low_open=True, help="base LR for one worker's batch"),
    "batch_size": Knob("int", 64, low=1, help="batch size per worker"),
    "weight_decay": Knob("float", 0.0, low=0.0, help="decoupled for adamw, L2 otherwise"),
    "warmup_epochs": Knob("int", 0, low=0, help="linear LR warmup before cosine decay"),
}

FAMILIES: dict[str, dict[str, dict[str, Knob]]] = {
    "optimizer": {
        "sgd": {
            "momentum": _unit(0.9),
            "nesterov": Knob("bool", False),
        },
        "adam": {"beta1": _unit(0.9), "beta2": _unit(0.999)},
        "adamw": {"beta1": _unit(0.9), "beta2": _unit(0.999)},
    },
    "loss": {
        "ce": {},
        "label_smoothing": {"smoothing": _unit(0.1)},
    },
}

FAMILY_DEFAULTS: dict[str, str] = {"optimizer": "sgd", "loss": "ce"}

GROUPS: dict[str, dict[str, Knob]] = {
    "augmentation": {
        "hflip": Knob("bool", False, help="random horizontal flip"),
        "scale_min": Knob("float", 1.0, low=0.0, high=1.0, low_open=True, help="random-resized-crop area"),
    },
}


def suggest(word: str, known: list[str] | tuple[str, ...]) -> str:
    """A ``; did you mean 'x'?`` suffix when ``word`` is a near miss of a known name."""
    close = difflib.get_close_matches(word, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(known))}"


def _family_domain(path: str, family: str, domain: Domain) -> Conditional:
    """Normalize ``optimizer: sgd`` / ``{choice: [sgd, adamw]}`` / a choice map into a Conditional."""
    options = FAMILIES[family]
    if isinstance(domain, Constant):
        domain = Conditional({str(domain.value): {}})
    elif isinstance(domain, Categorical):
        domain = Conditional({str(v): {} for v in domain.choices})
    elif not isinstance(domain, Conditional):
        raise SpecError(path, f"expected an option name or a choice of {', '.join(options)}")
    for name, knobs in domain.options.items():
        if name not in options:
            raise SpecError(path, f"unknown {family} {name!r}" + suggest(name, tuple(options)))
        for knob_name, knob_domain in knobs.items():
            knob_path = f"{path}.{name}.{knob_name}"
            if knob_name not in options[name]:
                known = tuple(options[name]) or ("(none)",)
                raise SpecError(knob_path, f"{name} has no knob {knob_name!r}" + suggest(knob_name, known))
            options[name][knob_name].check_domain(knob_path, knob_domain)
    return domain


def validate_space(raw: Any, prefix: str = "space") -> dict[str, Domain]:
    """Check a parsed ``space`` mapping against the catalog; return it flat (path -> domain).

    Keys of the result are the flat names trials see: ``lr``, ``optimizer`` and
    ``augmentation.hflip``; conditional knobs stay inside their ``Conditional``.
    """
    from ._domains import parse_domain

    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SpecError(prefix, f"expected a mapping of parameters, got {raw!r}")
    known = (*TOP_KNOBS, *FAMILIES, *GROUPS)
    flat: dict[str, Domain] = {}
    for key, value in raw.items():
        path = f"{prefix}.{key}"
        if key in TOP_KNOBS:
            domain = parse_domain(path, value)
            TOP_KNOBS[key].check_domain(path, domain)
            flat[key] = domain
        elif key in FAMILIES:
            flat[key] = _family_domain(path, key, parse_domain(path, value))
        elif key in GROUPS:
            if not isinstance(value, dict):
                raise SpecError(path, f"expected a mapping of {', '.join(GROUPS[key])}, got {value!r}")
            for knob_name, knob_raw in value.items():
                knob_path = f"{path}.{knob_name}"
                if knob_name not in GROUPS[key]:
                    raise SpecError(knob_path, f"unknown {key} knob" + suggest(knob_name, tuple(GROUPS[key])))
                domain = parse_domain(knob_path, knob_raw)
                GROUPS[key][knob_name].check_domain(knob_path, domain)
                flat[f"{key}.{knob_name}"] = domain
        else:
            raise SpecError(path, "unknown parameter" + suggest(str(key), known))
    return flat


def resolve(sampled: dict[str, Any]) -> dict[str, Any]:
    """Turn one trial's flat sampled values into the full recipe, defaults filled in.

    ``{"optimizer": "sgd", "optimizer.sgd.momentum": 0.95}`` becomes
    ``{"optimizer": {"name": "sgd", "momentum": 0.95, "nesterov": False}, ...}``.
    Knobs of options not chosen never appear.
    """
    from ._compile import sampled_values

    sampled = sampled_values(sampled)
    recipe: dict[str, Any] = {key: sampled.get(key, knob.default) for key, knob in TOP_KNOBS.items()}
    for family, options in FAMILIES.items():
        name = sampled.get(family, FAMILY_DEFAULTS[family])
        knobs = {k: sampled.get(f"{family}.{name}.{k}", knob.default) for k, knob in options[name].items()}
        recipe[family] = {"name": name, **knobs}
    for group, knobs in GROUPS.items():
        recipe[group] = {k: sampled.get(f"{group}.{k}", knob.default) for k, knob in knobs.items()}
    return recipe


def flatten_recipe(recipe: dict[str, Any]) -> dict[str, Any]:
    """The recipe as flat ``a.b`` keys, for logging as params (``optimizer.momentum``)."""
    flat: dict[str, Any] = {}
    for key, value in recipe.items():
        if isinstance(value, dict):
            for sub, sub_value in value.items():
                flat[key if sub == "name" else f"{key}.{sub}"] = sub_value
        else:
            flat[key] = value
    return flat
