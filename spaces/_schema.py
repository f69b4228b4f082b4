"""A JSON Schema of the whole spec, so editors validate and complete spec files.

The settings sections come from their pydantic records (field help texts become descriptions);
the space comes from the knob catalog: every knob, family option and group with the domain forms
it accepts. The schema is a guide for editors; ``load_spec`` stays the authority (it also checks
what a schema cannot say, such as ``low < high`` inside a range).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ._builtin import BUILTIN_SPACES, DESCRIPTIONS
from ._catalog import BASE_KEY
from ._knobs import FAMILIES, FAMILY_HELP, GROUPS, TOP_KNOBS, Knob
from ._sections import SECTIONS

_JSON_TYPES = {"float": "number", "int": "integer", "bool": "boolean", "str": "string"}


def _value(knob: Knob) -> dict[str, Any]:
    """One legal plain value of ``knob``: its JSON type and bounds."""
    out: dict[str, Any] = {"type": _JSON_TYPES[knob.kind]}
    if knob.low is not None:
        out["exclusiveMinimum" if knob.low_open else "minimum"] = knob.low
    if knob.high is not None:
        out["exclusiveMaximum" if knob.high_open else "maximum"] = knob.high
    return out


def _form(key: str, body: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """``{key: ..., modifiers...}``: one domain form, nothing else allowed beside it."""
    return {"type": "object", "properties": {key: body, **extra}, "required": [key], "additionalProperties": False}


def _pair(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item, "minItems": 2, "maxItems": 2}


def _values(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item, "minItems": 1}


def _knob_domain(knob: Knob) -> dict[str, Any]:
    """A knob's value, or any domain that yields such values (range forms only for numbers)."""
    value = _value(knob)
    forms: list[dict[str, Any]] = [value, _form("choice", _values(value)), _form("grid", _values(value))]
    if knob.kind == "float":
        number = {"type": "number"}
        grid = _values(number)
        forms += [
            _form("loguniform", _pair(number), grid=grid),
            _form("uniform", _pair(number), step={"type": "number", "exclusiveMinimum": 0}, grid=grid),
        ]
    if knob.kind == "int":
        step = {"type": "integer", "minimum": 1}
        forms.append(_form("int", _pair({"type": "integer"}), step=step, log={"type": "boolean"}))
    return {"description": f"{knob.help} ({knob.describe()})", "anyOf": forms}


def _option(knobs: dict[str, Knob]) -> dict[str, Any]:
    """One option of a choice map: nothing (``adamw: {}`` or null), or some of its own knobs."""
    body = {
        "type": "object",
        "properties": {k: _knob_domain(v) for k, v in knobs.items()},
        "additionalProperties": False,
    }
    return {"anyOf": [{"type": "null"}, body]}


def _family(family: str) -> dict[str, Any]:
    """An option name, a choice of names, or a choice map whose options carry their own knobs."""
    options = FAMILIES[family]
    names = {"enum": sorted(options)}
    by_option = {name: _option(knobs) for name, knobs in options.items()}
    choice_map = {"type": "object", "properties": by_option, "additionalProperties": False, "minProperties": 1}
    return {
        "description": FAMILY_HELP[family],
        "anyOf": [names, _form("choice", {"anyOf": [_values(names), choice_map]})],
    }


def _group(group: str) -> dict[str, Any]:
    knobs = {k: _knob_domain(v) for k, v in GROUPS[group].items()}
    return {"anyOf": [{"type": "null"}, {"type": "object", "properties": knobs, "additionalProperties": False}]}


def space_json_schema() -> dict[str, Any]:
    """The ``space`` section: top knobs, families and groups, plus ``base`` (a built-in space)."""
    props: dict[str, Any] = {
        BASE_KEY: {
            "enum": sorted(BUILTIN_SPACES),
            "description": "start from a built-in space: " + "; ".join(f"{k}: {v}" for k, v in DESCRIPTIONS.items()),
        }
    }
    props |= {name: _knob_domain(knob) for name, knob in TOP_KNOBS.items()}
    props |= {name: _family(name) for name in FAMILIES}
    props |= {name: _group(name) for name in GROUPS}
    return {"type": "object", "properties": props, "additionalProperties": False}


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a spec file."""
    keys: list[tuple[type[BaseModel], Literal["validation"]]] = [(record, "validation") for record in SECTIONS.values()]
    refs, defs = models_json_schema(keys, ref_template="#/$defs/{model}")
    sections = {name: refs[(record, "validation")] for name, record in SECTIONS.items()}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "tunefleet search spec",
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "description": "the search's name (and default experiment)"},
            "model": {**_knob_domain(TOP_KNOBS["model"]), "description": "timm model name(s); or space.model"},
            "space": space_json_schema(),
            **sections,
        },
        "$defs": defs["$defs"],
    }
