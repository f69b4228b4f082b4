"""Options several ``tunefleet`` commands share, declared once so their help reads the same."""

from __future__ import annotations

from typing import Annotated

import typer

from .._defaults import REPORTS_DIR, tracking_uri

__all__ = ["REPORTS_DIR", "SearchRun", "TrackingUri", "tracking_uri"]

TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI [default: the spec's tracking.uri (search), $MLFLOW_TRACKING_URI, sqlite:///mlflow.db]",
    ),
]
SearchRun = Annotated[str | None, typer.Option("--search-run", help="search run id [default: the latest search]")]
