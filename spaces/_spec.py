"""The search spec: a YAML file (or dict) parsed and validated into frozen records.

Everything is checked here, before Ray or MLflow is touched, and every error names its field.
What needs torch or timm to check (model names) is checked by ``tunefleet.search`` right after.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ._catalog import space_to_yaml, suggest, validate_space
from ._domains import Domain
from ._errors import SpecError

SEARCHERS = ("grid", "random", "optuna")
SCHEDULERS = ("asha", "fifo")
DATA_KINDS = ("digits", "imagefolder")
COLORS = ("auto", "rgb", "grayscale")
# What a trial reports each epoch that a search may rank by, with the sensible direction.
METRICS = {"val_acc": "max", "val_loss": "min", "train_loss": "min", "val_f1": "max"}
# How the LR tuned for one worker's batch scales with workers per trial (Goyal et al. 2017: linear).
LR_RULES = ("linear", "sqrt", "none")


@dataclass(frozen=True)
class DataSpec:
    """Where the images come from. ``imagefolder`` reads ``root/<class>/*.png|jpg`` or
    ``root/{train,val[,test]}/<class>/...``; fractions apply to whatever split is not on disk."""

    kind: str = "digits"
    image_size: int = 32
    split_seed: int = 0
    root: str = ""
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    color: str = "auto"  # auto: grayscale only when every image is


@dataclass(frozen=True)
class SearchSettings:
    searcher: str = "optuna"
    scheduler: str = "asha"
    num_samples: int = 8
    metric: str = "val_acc"
    mode: str = "max"
    max_epochs: int = 10
    grace_period: int = 2
    reduction_factor: int = 3
    max_concurrent: int | None = None
    seed: int = 0
    time_budget_s: float | None = None


@dataclass(frozen=True)
class Resources:
    workers_per_trial: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    lr_scaling: str = "linear"


@dataclass(frozen=True)
class Tracking:
    uri: str | None = None
    experiment: str = ""


@dataclass(frozen=True)
class SearchSpec:
    """A validated search: what to search (``space``) and how (the other sections)."""

    name: str
    space: dict[str, Domain]
    data: DataSpec = field(default_factory=DataSpec)
    search: SearchSettings = field(default_factory=SearchSettings)
    resources: Resources = field(default_factory=Resources)
    tracking: Tracking = field(default_factory=Tracking)

    def to_yaml(self) -> str:
        """The spec as YAML; ``load_spec`` of it gives an equal spec."""
        doc: dict[str, Any] = {
            "name": self.name,
            "data": dataclasses.asdict(self.data),
            "space": space_to_yaml(self.space),
            "search": {k: v for k, v in dataclasses.asdict(self.search).items() if v is not None},
            "resources": dataclasses.asdict(self.resources),
            "tracking": {k: v for k, v in dataclasses.asdict(self.tracking).items() if v},
        }
        return yaml.safe_dump(doc, sort_keys=False)


def _parse_duration(path: str, raw: Any) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw > 0:
        return float(raw)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh])\s*", str(raw))
    if not match:
        raise SpecError(path, f"expected seconds or a duration like 90s, 30m, 2h; got {raw!r}")
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]


def _section(raw: dict[str, Any], key: str, record: type) -> Any:
    """Build a dataclass from ``raw[key]``, refusing unknown keys and wrong types by path."""
    body = raw.get(key) or {}
    if not isinstance(body, dict):
        raise SpecError(key, f"expected a mapping, got {body!r}")
    fields = {f.name: f for f in dataclasses.fields(record)}
    aliases = {"time_budget": "time_budget_s"} if record is SearchSettings else {}
    values: dict[str, Any] = {}
    for name, value in body.items():
        target = aliases.get(name, name)
        if target not in fields:
            raise SpecError(f"{key}.{name}", "unknown setting" + suggest(str(name), tuple(fields)))
        values[target] = value
    defaults = record()
    for name, value in values.items():
        path = f"{key}.{name}"
        if name == "time_budget_s":
            values[name] = _parse_duration(path, value)
            continue
        expected = type(getattr(defaults, name))
        if value is None and getattr(defaults, name) is None:
            continue
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            values[name] = float(value)
        elif getattr(defaults, name) is None:  # optional ints
            if not isinstance(value, int) or isinstance(value, bool):
                raise SpecError(path, f"expected an integer, got {value!r}")
        elif not isinstance(value, expected) or isinstance(value, bool) != (expected is bool):
            raise SpecError(path, f"expected {expected.__name__}, got {value!r}")
    return record(**values)


def _check_settings(spec: SearchSpec) -> None:
    s, r, d = spec.search, spec.resources, spec.data
    if s.searcher not in SEARCHERS:
        raise SpecError("search.searcher", f"unknown searcher {s.searcher!r}" + suggest(s.searcher, SEARCHERS))
    if s.scheduler not in SCHEDULERS:
        raise SpecError("search.scheduler", f"unknown scheduler {s.scheduler!r}" + suggest(s.scheduler, SCHEDULERS))
    if s.metric not in METRICS:
        raise SpecError("search.metric", f"unknown metric {s.metric!r}" + suggest(s.metric, tuple(METRICS)))
    if s.mode not in ("max", "min"):
        raise SpecError("search.mode", f"must be max or min, got {s.mode!r}")
    for name in ("num_samples", "max_epochs", "grace_period"):
        if getattr(s, name) < 1:
            raise SpecError(f"search.{name}", f"must be >= 1, got {getattr(s, name)}")
    if s.scheduler == "asha" and s.grace_period > s.max_epochs:
        raise SpecError("search.grace_period", f"must be <= max_epochs ({s.max_epochs}), got {s.grace_period}")
    if s.reduction_factor < 2:
        raise SpecError("search.reduction_factor", f"must be >= 2, got {s.reduction_factor}")
    if s.max_concurrent is not None and s.max_concurrent < 1:
        raise SpecError("search.max_concurrent", f"must be >= 1, got {s.max_concurrent}")
    if r.workers_per_trial < 1:
        raise SpecError("resources.workers_per_trial", f"must be >= 1, got {r.workers_per_trial}")
    if r.lr_scaling not in LR_RULES:
        raise SpecError("resources.lr_scaling", f"unknown rule {r.lr_scaling!r}" + suggest(r.lr_scaling, LR_RULES))
    if r.cpus_per_worker <= 0 or r.gpus_per_worker < 0:
        raise SpecError("resources", "cpus_per_worker must be > 0 and gpus_per_worker >= 0")
    if d.kind not in DATA_KINDS:
        raise SpecError("data.kind", f"unknown data kind {d.kind!r}" + suggest(d.kind, DATA_KINDS))
    if d.image_size < 8:
        raise SpecError("data.image_size", f"must be >= 8, got {d.image_size}")
    if d.kind == "imagefolder" and not d.root:
        raise SpecError("data.root", "imagefolder data needs a root folder")
    if d.kind != "imagefolder" and d.root:
        raise SpecError("data.root", f"only imagefolder data has a root; data.kind is {d.kind!r}")
    for name in ("val_fraction", "test_fraction"):
        if not 0.0 < getattr(d, name) < 1.0:
            raise SpecError(f"data.{name}", f"must be in (0, 1), got {getattr(d, name)}")
    if d.val_fraction + d.test_fraction >= 0.9:
        raise SpecError(
            "data", f"val_fraction + test_fraction must leave >= 10% to train, got {d.val_fraction} + {d.test_fraction}"
        )
    if d.color not in COLORS:
        raise SpecError("data.color", f"must be one of {', '.join(COLORS)}, got {d.color!r}")
    if not spec.tracking.experiment:
        raise SpecError("tracking.experiment", "must not be empty")


def spec_from_dict(raw: Any, overrides: dict[str, dict[str, Any]] | None = None) -> SearchSpec:
    """Validate a parsed YAML document into a SearchSpec.

    Args:
        raw: The document (a mapping).
        overrides: Per-section values that replace the document's, e.g. from CLI flags:
            ``{"search": {"num_samples": 4}, "tracking": {"experiment": "x"}}``.
    """
    if not isinstance(raw, dict):
        raise SpecError("", f"a spec must be a YAML mapping, got {type(raw).__name__}")
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for section, values in (overrides or {}).items():
        raw[section] = {**(raw.get(section) or {}), **{k: v for k, v in values.items() if v is not None}}
    known = ("name", "data", "model", "space", "search", "resources", "tracking")
    for key in raw:
        if key not in known:
            raise SpecError(str(key), "unknown section" + suggest(str(key), known))
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
    tracking = _section(raw, "tracking", Tracking)
    if not tracking.experiment:
        tracking = dataclasses.replace(tracking, experiment=name)
    spec = SearchSpec(
        name=name,
        space=space,
        data=_section(raw, "data", DataSpec),
        search=_section(raw, "search", SearchSettings),
        resources=_section(raw, "resources", Resources),
        tracking=tracking,
    )
    _check_settings(spec)
    return spec


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
        raise SpecError("spec", f"{path} is not valid YAML{where}: {problem}") from None
    return spec_from_dict(raw, overrides)
