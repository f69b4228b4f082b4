"""Options several ``tunefleet`` commands share, declared once so their help reads the same."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI [default: the spec's tracking.uri (search), $MLFLOW_TRACKING_URI, sqlite:///mlflow.db]",
    ),
]
SearchRun = Annotated[str | None, typer.Option("--search-run", help="search run id [default: the latest search]")]
# Where `tunefleet report` (and the report at the end of every search) writes, per experiment.
REPORTS_DIR = Path("reports")
