"""What a search may vary, checked: ``validate_space`` (raw YAML -> flat domains), ``resolve``
(one trial's flat values -> the full recipe) and ``flatten_recipe`` (recipe -> logged params).

Three shapes of entry (the tables live in ``_knobs.py``):
- a *knob* at the top (``lr``, ``batch_size``): one value per trial;
- a *family* (``optimizer``, ``schedule``, ``loss``, ``auto_augment``): a named option, each option
  with knobs of its own, so that ``momentum`` exists only for ``sgd``;
- a *group* (``augmentation``, ``regularization``, ``finetune``): a bag of knobs under one heading.

A space may start from a built-in one (``base: default``) and override its keys; see ``_builtin_data``.
"""

from __future__ import annotations

import difflib
from typing import Any

from ._builtin_data import BUILTIN_SPACES
from ._compile import sampled_values
from ._domains import Categorical, Conditional, Constant, Domain, Float, Int, parse_domain
from ._errors import SpecError
from ._knobs import FAMILIES, FAMILY_DEFAULTS, GROUPS, TOP_KNOBS

BASE_KEY = "base"


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


def _merge_base(raw: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Overlay ``raw`` on the built-in space it names in ``base``: a key replaces the base's, a
    group merges knob by knob, and ``null`` removes a base key (back to the catalog default)."""
    name = raw[BASE_KEY]
    path = f"{prefix}.{BASE_KEY}"
    if not isinstance(name, str) or name not in BUILTIN_SPACES:
        raise SpecError(path, f"unknown built-in space {name!r}" + suggest(str(name), tuple(BUILTIN_SPACES)))
    merged: dict[str, Any] = {
        k: (dict(v) if isinstance(v, dict) and k in GROUPS else v) for k, v in BUILTIN_SPACES[name].items()
    }
    for key, value in raw.items():
        if key == BASE_KEY:
            continue
        if value is None:
            merged.pop(key, None)
        elif key in GROUPS and isinstance(value, dict) and isinstance(merged.get(key), dict):
            for knob, knob_value in value.items():
                if knob_value is None:
                    merged[key].pop(knob, None)
                else:
                    merged[key][knob] = knob_value
        else:
            merged[key] = value
    return merged


def _can_be(domain: Domain | None, test: Any) -> bool:
    """Whether some value ``domain`` can produce passes ``test`` (ranges: a bound, or an odd step)."""
    if domain is None:
        return False
    if isinstance(domain, Constant):
        return bool(test(domain.value))
    if isinstance(domain, Categorical):
        return any(test(v) for v in domain.choices)
    if isinstance(domain, Int) and test is _odd:
        return bool(domain.low % 2 or domain.step % 2) or any(_odd(g) for g in domain.grid)
    if isinstance(domain, (Int, Float)):
        return any(test(v) for v in (domain.low, domain.high, *domain.grid))
    return False


def _odd(value: Any) -> bool:
    return isinstance(value, int) and value % 2 == 1


def _check_together(flat: dict[str, Domain], prefix: str) -> None:
    """Rules that tie knobs together: timm's MixUp/CutMix pair each image with another in the batch."""
    mixing = any(_can_be(flat.get(f"augmentation.{k}"), lambda v: v > 0) for k in ("mixup_alpha", "cutmix_alpha"))
    batch = flat.get("batch_size", Constant(TOP_KNOBS["batch_size"].default))
    if mixing and _can_be(batch, _odd):
        raise SpecError(f"{prefix}.batch_size", f"MixUp/CutMix need even batch sizes, got {batch.to_yaml()!r}")


def validate_space(raw: Any, prefix: str = "space") -> dict[str, Domain]:
    """Check a parsed ``space`` mapping against the catalog; return it flat (path -> domain).

    Keys of the result are the flat names trials see: ``lr``, ``optimizer`` and
    ``augmentation.hflip``; conditional knobs stay inside their ``Conditional``. Values may be
    YAML forms or domain objects (``Float(1e-4, 1e-1, log=True)``): both are checked alike.

    Raises:
        SpecError: naming the offending path (``space.optimizer.sgd.momentum``).
    """
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SpecError(prefix, f"expected a mapping of parameters, got {raw!r}")
    if BASE_KEY in raw:
        raw = _merge_base(raw, prefix)
    known = (*TOP_KNOBS, *FAMILIES, *GROUPS, BASE_KEY)
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
                    raise SpecError(knob_path, f"unknown {key} knob" + suggest(str(knob_name), tuple(GROUPS[key])))
                domain = parse_domain(knob_path, knob_raw)
                GROUPS[key][knob_name].check_domain(knob_path, domain)
                flat[f"{key}.{knob_name}"] = domain
        else:
            raise SpecError(path, "unknown parameter" + suggest(str(key), known))
    _check_together(flat, prefix)
    return flat


def space_to_yaml(space: dict[str, Domain]) -> dict[str, Any]:
    """The YAML form of a flat space (groups nested again); ``validate_space`` of it is equal."""
    doc: dict[str, Any] = {}
    for path, domain in space.items():
        if "." in path:
            group, knob = path.split(".", 1)
            doc.setdefault(group, {})[knob] = domain.to_yaml()
        else:
            doc[path] = domain.to_yaml()
    return doc


def resolve(sampled: dict[str, Any]) -> dict[str, Any]:
    """Turn one trial's flat sampled values into the full recipe, defaults filled in.

    ``{"optimizer": "sgd", "optimizer.sgd.momentum": 0.95}`` becomes
    ``{"optimizer": {"name": "sgd", "momentum": 0.95, "nesterov": False}, ...}``.
    Knobs of options not chosen never appear, even when a searcher sampled them (Ray Tune's
    random search samples every knob flat).
    """
    sampled = sampled_values(sampled)
    recipe: dict[str, Any] = {key: sampled.get(key, knob.default) for key, knob in TOP_KNOBS.items()}
    for family, options in FAMILIES.items():
        name = sampled.get(family, FAMILY_DEFAULTS[family])
        knobs = {k: sampled.get(f"{family}.{name}.{k}", knob.default) for k, knob in options[name].items()}
        recipe[family] = {"name": name, **knobs}
    for group, group_knobs in GROUPS.items():
        recipe[group] = {k: sampled.get(f"{group}.{k}", knob.default) for k, knob in group_knobs.items()}
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
