"""Options several ``tunefleet`` commands share, declared once so their help reads the same."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from tunefleet.spaces import records as rec

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


def tracking_uri(cli_value: str | None, spec_value: str | None = None) -> str:
    """``--tracking-uri``, else the spec's, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``."""
    return cli_value or spec_value or os.environ.get("MLFLOW_TRACKING_URI") or rec.DEFAULT_TRACKING_URI
