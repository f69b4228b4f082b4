"""What a report imports on first use, beyond ``tunefleet.analysis`` (kept cheap to import).

Its own module, so that a search can read the list without importing the report: the search's
driver imports these while its last trials run (``ReportImportsAhead``, search/run/_live.py),
and none of them is a module the driver imports meanwhile, so its two threads never wait on
each other's import locks.
"""

from __future__ import annotations

# fANOVA fits a random forest to the trials; with fewer points the numbers mean nothing.
FANOVA_MIN_TRIALS = 3
# scikit-learn through optuna.importance's fANOVA (about 1 s), then matplotlib's figures and canvas.
FANOVA_MODULES = ("optuna.importance",)
FIGURE_MODULES = (
    "matplotlib.figure", "matplotlib.backends.backend_agg", "matplotlib.collections", "matplotlib.lines",
    "matplotlib.ticker",
)  # fmt: skip
REPORT_MODULES = FANOVA_MODULES + FIGURE_MODULES


def report_modules(trials: int) -> tuple[str, ...]:
    """The modules the report of a search of ``trials`` trials imports: no fANOVA (and so no
    scikit-learn) below its least number of trials."""
    return REPORT_MODULES if trials >= FANOVA_MIN_TRIALS else FIGURE_MODULES
