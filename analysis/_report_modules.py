"""What a report imports on first use, beyond ``tunefleet.analysis`` (kept cheap to import).

Its own module, so that a search can read the list without importing the report: the search's
driver imports these while its last trials run (``ReportImportsAhead``, search/run/_live.py),
and none of them is a module the driver imports meanwhile, so its two threads never wait on
each other's import locks.
"""

from __future__ import annotations

# scikit-learn through optuna.importance's fANOVA (about 1 s), then matplotlib's figures and canvas.
REPORT_MODULES = (
    "optuna.importance", "matplotlib.figure", "matplotlib.backends.backend_agg", "matplotlib.collections",
    "matplotlib.lines", "matplotlib.ticker",
)  # fmt: skip
