"""``tunefleet fit``'s planning room: from a folder of images (or ``digits``), a preset, a time and
the machine to a complete search spec, with the reasons.

It owns the scan that plan needs (``_scan``: counts, classes, typical size, channels, through
``trainables.scan_folder``), the planner (``_plan``: pure functions over the zoo and presets of
``tunefleet.spaces``: image size, models kept or left out and why, fine-tune or scratch, the
budget split, epochs, trials, batch sizes), the final phase that trains the search's best
configs again for the time left (``_final``), the choice between search and final phase, a
portfolio of start recipes, or a search alone (``_strategy``), the plan as a spec document (``_spec``) and
the plan in words (``_describe``). It starts
nothing: the command (``cli/_fit.py``) runs the spec through ``run`` as ``tunefleet search`` does
and exports as ``tunefleet export`` does. Imports no other room of ``tunefleet.search``.
"""

from ._budget import TOP_K, Budget
from ._describe import plan_lines, spec_header
from ._final import FinalPhase, final_phase, final_search, measured_epoch_s
from ._plan import FitPlan, ModelChoice, check_options
from ._scan import DIGITS, DataScan, check_folder, digits_scan, scan_data, split_counts
from ._spec import fit_search_spec, fit_spec
from ._strategy import plan_fit, portfolio_models
from ._weights import loadable_weights

__all__ = [
    "DIGITS",
    "TOP_K",
    "Budget",
    "FinalPhase",
    "DataScan",
    "FitPlan",
    "ModelChoice",
    "check_folder",
    "check_options",
    "digits_scan",
    "measured_epoch_s",
    "final_phase",
    "final_search",
    "fit_search_spec",
    "fit_spec",
    "loadable_weights",
    "plan_fit",
    "portfolio_models",
    "plan_lines",
    "scan_data",
    "spec_header",
    "split_counts",
]
