"""Options several ``tunefleet`` commands share, declared once so their help reads the same, and
the checks and exits of the commands that run a search (``search``, ``resume``, ``fit``)."""

from __future__ import annotations

from typing import Annotated

import typer

from .._defaults import REPORTS_DIR, check_store, tracking_uri
from ._console import fail

__all__ = ["REPORTS_DIR", "SearchRun", "TrackingUri", "check_store", "exit_with", "tracking_uri"]

TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI [default: the spec's tracking.uri (search), $MLFLOW_TRACKING_URI, sqlite:///mlflow.db]",
    ),
]
SearchRun = Annotated[str | None, typer.Option("--search-run", help="search run id [default: the latest search]")]


def exit_with(code: int) -> None:
    """A search's exit: 0 done, 1 every trial failed, 130 interrupted."""
    if code == 1:
        fail("every trial failed; see the errors above", code=1)
    if code:
        raise typer.Exit(code)
