"""What can be searched: domains, the parameter catalog, spec validation and space compilers.

Nothing here imports torch: a spec can be checked on a laptop without the training stack.
"""

from ._catalog import FAMILIES, GROUPS, TOP_KNOBS, Knob, flatten_recipe, resolve, validate_space
from ._compile import GRID_KEY, contains, define_by_run, grid_points, grid_size, sampled_values
from ._domains import Categorical, Conditional, Constant, Domain, Float, Int, parse_domain
from ._errors import SpecError
from ._spec import (
    METRICS,
    SCHEDULERS,
    SEARCHERS,
    DataSpec,
    Resources,
    SearchSettings,
    SearchSpec,
    Tracking,
    load_spec,
    spec_from_dict,
)

__all__ = [
    "FAMILIES",
    "GRID_KEY",
    "GROUPS",
    "METRICS",
    "SCHEDULERS",
    "SEARCHERS",
    "TOP_KNOBS",
    "Categorical",
    "Conditional",
    "Constant",
    "DataSpec",
    "Domain",
    "Float",
    "Int",
    "Knob",
    "Resources",
    "SearchSettings",
    "SearchSpec",
    "SpecError",
    "Tracking",
    "contains",
    "define_by_run",
    "flatten_recipe",
    "grid_points",
    "grid_size",
    "load_spec",
    "parse_domain",
    "resolve",
    "sampled_values",
    "spec_from_dict",
    "validate_space",
]
