"""The search spec: a YAML file (or dict) parsed and validated into frozen records.

Everything is checked here, before Ray or MLflow is touched, and every error names its field.
The settings sections are pydantic records (``_sections.py``); this module turns pydantic's
errors into one line with the full path and a suggestion for near misses. What needs torch or
timm to check (model names) is checked by ``tunefleet.search`` right after.

A spec is data: YAML is read with ``safe_load`` (no tag builds a Python object), no field names
code to import (models, optimizers, losses are looked up in registries by name), and a spec that
holds a credential is refused before any other check (``_secrets.py``).
"""

from __future__ import annotations

import reprlib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import ValidationError

from ._catalog import space_to_yaml, suggest, validate_space
from ._domains import Domain
from ._errors import SpecError
from ._objectives import gpu_objectives
from ._points import start_point_problem
from ._secrets import check_no_secrets
from ._sections import FIELD_ERROR, SECTIONS, DataSpec, Resources, SearchSettings, Section, Tracking

# The top-level keys of a spec document.
SPEC_KEYS = ("name", "data", "model", "space", "search", "resources", "tracking")


def _choices(record: type[Section], name: str) -> tuple[str, ...]:
    """The legal values of a ``Literal`` field (``None`` left out)."""
    hint = typing.get_type_hints(record)[name]
    for arg in (hint, *get_args(hint)):
        if typing.get_origin(arg) is typing.Literal:
            return tuple(str(a) for a in get_args(arg))
    return ()


_TYPE_NAMES = {
    "int_type": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "int_parsing": "an integer",
    "float_parsing": "a number",
}
_BOUNDS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
# Values echoed in a message are cut short: a YAML alias can make one huge (or recursive).
_ECHO = reprlib.Repr()
_ECHO.maxlevel, _ECHO.maxdict, _ECHO.maxlist, _ECHO.maxstring, _ECHO.maxother = 2, 4, 4, 60, 60


def _spec_error(section: str, record: type[Section], err: ValidationError) -> SpecError:
    """pydantic's first complaint as a SpecError: ``search.searcher: unknown searcher 'bayes'; did you mean...``"""
    first = err.errors()[0]
    kind, ctx = first["type"], first.get("ctx") or {}
    value = first.get("input")
    shown = _ECHO.repr(value)
    names = [str(part) for part in first["loc"] if not isinstance(part, int)]
    if kind == FIELD_ERROR:
        return SpecError(f"{section}.{ctx['field']}", str(ctx["message"]))
    name = names[0] if names else ""
    path = f"{section}.{name}" if name else section
    if kind == "extra_forbidden":
        return SpecError(path, "unknown setting" + suggest(name, tuple(record.model_fields)))
    if kind == "literal_error":
        known = _choices(record, name)
        near = suggest(value if isinstance(value, str) else shown, known)
        return SpecError(path, f"unknown {name.replace('_', ' ')} {shown}{near}")
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()))
        return SpecError(path, f"must be {_BOUNDS[kind]} {bound}, got {shown}")
    if kind in _TYPE_NAMES:
        return SpecError(path, f"expected {_TYPE_NAMES[kind]}, got {shown}")
    if kind in ("model_type", "dict_type"):
        return SpecError(path, f"expected a mapping, got {shown}")
    return SpecError(path, first["msg"].removeprefix("Value error, "))


def _section(raw: dict[str, Any], key: str) -> Any:
    """Validate ``raw[key]`` into its section record, one-line SpecError by path."""
    record = SECTIONS[key]
    body = raw.get(key) or {}
    if not isinstance(body, dict):
        raise SpecError(key, f"expected a mapping, got {body!r}")
    try:
        return record.model_validate(body)
    except ValidationError as err:
        raise _spec_error(key, record, err) from None


@dataclass(frozen=True)
class SearchSpec:
    """A validated search: what to search (``space``) and how (the other sections)."""

    name: str
    space: dict[str, Domain]
    data: DataSpec = field(default_factory=DataSpec)
    search: SearchSettings = field(default_factory=SearchSettings)
    resources: Resources = field(default_factory=Resources)
    tracking: Tracking = field(default_factory=Tracking)

    def sections(self) -> dict[str, Section]:
        return {key: getattr(self, key) for key in SECTIONS}

    def to_yaml(self) -> str:
        """The spec as YAML; ``load_spec`` of it gives an equal spec."""
        doc: dict[str, Any] = {"name": self.name, "space": space_to_yaml(self.space)}
        for key, section in self.sections().items():
            doc[key] = {k: v for k, v in section.model_dump(exclude_none=True).items() if v != ""}
        return yaml.safe_dump(doc, sort_keys=False)

    def params(self) -> dict[str, Any]:
        """Every setting under its path in the spec (``search.metric``): the search run's MLflow params.

        The tracking URI is left out: it may carry credentials, and the run already lives there.
        """
        return {
            f"{key}.{name}": value
            for key, section in self.sections().items()
            for name, value in section.model_dump(exclude={"uri"}).items()
            if value is not None and value != ""
        }


def _apply_overrides(raw: dict[str, Any], overrides: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for section, values in (overrides or {}).items():
        given = {k: v for k, v in values.items() if v is not None}
        body = raw.get(section) or {}
        if given and isinstance(body, dict):  # else the section's own check refuses the document
            raw[section] = {**body, **given}
    return raw


def spec_from_dict(raw: Any, overrides: dict[str, dict[str, Any]] | None = None) -> SearchSpec:
    """Validate a parsed YAML document into a SearchSpec.

    Args:
        raw: The document (a mapping).
        overrides: Per-section values that replace the document's, e.g. from CLI flags:
            ``{"search": {"num_samples": 4}, "tracking": {"experiment": "x"}}``.
    """
    if not isinstance(raw, dict):
        raise SpecError("", f"a spec must be a YAML mapping, got {type(raw).__name__}")
    raw = _apply_overrides(raw, overrides)
    check_no_secrets(raw)  # first: no later message may echo a credential
    for key in raw:
        if key not in SPEC_KEYS:
            raise SpecError(str(key), "unknown section" + suggest(str(key), SPEC_KEYS))
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise SpecError("name", f"a search needs a non-empty name, got {name!r}")
    space_raw = raw.get("space") or {}
    if not isinstance(space_raw, dict):
        raise SpecError("space", f"expected a mapping of parameters, got {space_raw!r}")
    if "model" in raw:
        if "model" in space_raw:
            raise SpecError("model", "given both at the top and in space; keep one")
        space_raw = {"model": raw["model"], **space_raw}
    space = validate_space(space_raw)
    sections = {key: _section(raw, key) for key in SECTIONS}
    if sections["search"].scheduler == "pbt" and sections["resources"].workers_per_trial > 1:
        # A multi-worker trial reports its checkpoint as a path, not a Tune checkpoint: PBT
        # would have nothing to hand from donor to receiver and skip every exploit.
        raise SpecError("resources.workers_per_trial", "scheduler pbt needs single-worker trials (1)")
    _check_start_with(space, sections["search"])
    on_gpu = gpu_objectives(sections["search"].objectives)
    if on_gpu and sections["resources"].gpus_per_worker <= 0:
        raise SpecError(
            "search.objectives", f"{on_gpu[0]} is timed on the trial's GPU: needs resources.gpus_per_worker > 0"
        )
    if not sections["tracking"].experiment:
        sections["tracking"] = sections["tracking"].model_copy(update={"experiment": name})
    return SearchSpec(name=name, space=space, **sections)


def _check_start_with(space: dict[str, Domain], search: SearchSettings) -> None:
    if search.start_with and search.searcher != "optuna":
        raise SpecError("search.start_with", f"needs the optuna searcher (it enqueues them), not {search.searcher}")
    for i, point in enumerate(search.start_with):
        problem = start_point_problem(space, point)
        if problem is not None:
            raise SpecError(f"search.start_with[{i}].{problem[0]}", problem[1])


def load_spec(path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> SearchSpec:
    """Read and validate a YAML spec file; errors name the file or the field."""
    path = Path(path)
    if not path.is_file():
        raise SpecError("spec", f"no such file: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "malformed YAML"
        if isinstance(err, yaml.constructor.ConstructorError):
            # safe_load knows no tag that builds a Python object (!!python/object/apply:...)
            problem = f"{problem}; a spec is plain data, tags that build Python objects are not allowed"
        raise SpecError("spec", f"{path} is not valid YAML{where}: {problem}") from None
    return spec_from_dict(raw, overrides)


def read_spec(
    source: str | Path | Mapping[str, Any] | SearchSpec, overrides: dict[str, dict[str, Any]] | None = None
) -> SearchSpec:
    """A spec from wherever a caller holds one: a YAML file's path, its parsed document (a dict), or
    a ``SearchSpec`` (which ``overrides`` may change: it goes through the same checks again)."""
    if isinstance(source, SearchSpec):
        return spec_from_dict(yaml.safe_load(source.to_yaml()), overrides)
    if isinstance(source, Mapping):
        return spec_from_dict(dict(source), overrides)
    if isinstance(source, str | Path):
        return load_spec(source, overrides)
    raise SpecError("spec", f"expected a YAML path, a dict or a SearchSpec, got {type(source).__name__}")
