"""What can be searched: domains, the parameter catalog, spec validation and space compilers.

Nothing here imports torch: a spec can be checked on a laptop without the training stack.
``tunefleet.spaces.records`` names everything written to and read from MLflow and checkpoints;
the checkpoint's ``meta.json`` and the export's ``card.json`` are typed records (``tunefleet.spaces.artifacts``).
"""

from ._builtin import BUILTIN_SPACES, DESCRIPTIONS, builtin_space, space_rows
from ._catalog import flatten_recipe, resolve, space_to_yaml, suggest, validate_space
from ._compile import (
    GRID_KEY,
    active_values,
    contains,
    define_by_run,
    grid_points,
    grid_size,
    sampled_values,
    tune_domains,
)
from ._domains import (
    Categorical,
    Conditional,
    Constant,
    Domain,
    Float,
    Int,
    choice,
    integer,
    loguniform,
    parse_domain,
    uniform,
)
from ._errors import SpecError
from ._knobs import FAMILIES, FAMILY_DEFAULTS, GROUPS, TOP_KNOBS, Knob
from ._points import point_from_params, shared_knobs
from ._schema import spec_json_schema
from ._sections import MAX_NUM_SAMPLES, SECTIONS, DataKind, DataSpec, Resources, SearchSettings, Section, Tracking
from ._spec import SPEC_KEYS, SearchSpec, load_spec, spec_from_dict
from ._zoo import PRESETS, ZOO, ZOO_BATCH, ZOO_MIN_SIZE, ZOO_REFERENCE_SIZE, ZooModel, preset_models
from .artifacts import (
    CheckpointMeta,
    CheckpointSettings,
    ClassScores,
    ExportCard,
    GraphInput,
    GraphOutput,
    MemberCard,
    OnnxParity,
    Preprocessing,
    Scores,
    ServingCard,
    record_problem,
)

__all__ = [
    "BUILTIN_SPACES",
    "DESCRIPTIONS",
    "FAMILIES",
    "FAMILY_DEFAULTS",
    "GRID_KEY",
    "GROUPS",
    "MAX_NUM_SAMPLES",
    "PRESETS",
    "SECTIONS",
    "SPEC_KEYS",
    "TOP_KNOBS",
    "ZOO",
    "ZOO_BATCH",
    "ZOO_MIN_SIZE",
    "ZOO_REFERENCE_SIZE",
    "Categorical",
    "CheckpointMeta",
    "CheckpointSettings",
    "ClassScores",
    "Conditional",
    "Constant",
    "DataKind",
    "DataSpec",
    "Domain",
    "ExportCard",
    "Float",
    "GraphInput",
    "GraphOutput",
    "Int",
    "Knob",
    "MemberCard",
    "OnnxParity",
    "Preprocessing",
    "Resources",
    "Scores",
    "SearchSettings",
    "SearchSpec",
    "Section",
    "ServingCard",
    "SpecError",
    "Tracking",
    "ZooModel",
    "active_values",
    "builtin_space",
    "choice",
    "contains",
    "define_by_run",
    "flatten_recipe",
    "grid_points",
    "grid_size",
    "integer",
    "load_spec",
    "loguniform",
    "parse_domain",
    "point_from_params",
    "preset_models",
    "record_problem",
    "resolve",
    "sampled_values",
    "shared_knobs",
    "space_rows",
    "space_to_yaml",
    "spec_from_dict",
    "spec_json_schema",
    "suggest",
    "tune_domains",
    "uniform",
    "validate_space",
]
