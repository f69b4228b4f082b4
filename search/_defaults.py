"""Defaults every room of ``tunefleet.search`` shares: where MLflow is and where reports go.

They live above the rooms so the driver (``run``) and the commands (``cli``) read one value
without either importing the other.
"""

from __future__ import annotations

import os
from pathlib import Path

from tunefleet.spaces import records as rec

# Where `tunefleet report` (and the report at the end of every search) writes, per experiment.
REPORTS_DIR = Path("reports")


def tracking_uri(cli_value: str | None, spec_value: str | None = None) -> str:
    """``--tracking-uri``, else the spec's, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``."""
    return cli_value or spec_value or os.environ.get("MLFLOW_TRACKING_URI") or rec.DEFAULT_TRACKING_URI
