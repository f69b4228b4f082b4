"""Defaults every room of ``tunefleet.search`` shares: where MLflow is, where reports go, and the
key a submitted job's driver knows its client's model checks by, and this user's cache.

They live above the rooms so the driver (``run``) and the commands (``cli``) read one value
without either importing the other.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from tunefleet.spaces import SearchSpec, SpecError
from tunefleet.spaces import records as rec

# Where `tunefleet report` (and the report at the end of every search) writes, per experiment.
REPORTS_DIR = Path("reports")
CACHE_DIR_ENV = "TUNEFLEET_CACHE_DIR"


def quiet_mlflow_output() -> None:
    """MLflow's download bar for every artifact read back, and its "View run at" line for every run
    closed on a tracking server, would drown what tunefleet prints (the CLI's summaries, a
    notebook's cells, a fit's progress): off, unless the user set either."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def cache_dir() -> Path:
    """This user's cache of what a search can reuse (passed model checks, an empty MLflow store):
    ``$TUNEFLEET_CACHE_DIR``, else ``$XDG_CACHE_HOME/tunefleet``, else ``~/.cache/tunefleet``."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tunefleet"


def tracking_uri(cli_value: str | None, spec_value: str | None = None) -> str:
    """``--tracking-uri``, else the spec's, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``;
    a relative SQLite file made absolute against the working directory."""
    uri = cli_value or spec_value or os.environ.get("MLFLOW_TRACKING_URI") or rec.DEFAULT_TRACKING_URI
    return absolute_sqlite(uri)


def absolute_sqlite(uri: str) -> str:
    """``sqlite:///mlflow.db`` as ``sqlite:////abs/dir/mlflow.db``; other URIs as they are. MLflow
    keeps one store per URI string for the life of a process, so a relative path would go on
    reaching the file of the first working directory it was opened in (a notebook, a test that
    changes directory)."""
    file = rec.sqlite_file(uri)
    if not file or file.startswith("/") or file.split("?", 1)[0] in ("", ":memory:"):
        return uri
    return f"{rec.SQLITE_PREFIX}{Path(file).absolute()}"


def sqlite_database(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (a query string such as ``?timeout=`` dropped);
    None for other stores and for an in-memory database."""
    file = rec.sqlite_file(uri)
    if file is None:
        return None
    file = file.split("?", 1)[0]
    return Path(file) if file and file != ":memory:" else None


def check_store(uri: str) -> None:
    """A SQLite store's folder must exist: MLflow would create the file, but not its folder."""
    path = sqlite_database(uri)
    if path is not None and not path.resolve().parent.is_dir():
        raise SpecError("--tracking-uri", f"directory {path.parent} does not exist")


# Set by ``submit`` (service) for its job; read by ``preflight`` (``_preflight``) in the job's driver.
MODELS_CHECKED_ENV = "TUNEFLEET_MODELS_CHECKED"


def models_fingerprint(spec: SearchSpec) -> str | None:
    """What the preflight's model checks depend on: the spec (its models, image size, pretrained
    choice) and the installed tunefleet (the default model), timm and torch, read from their
    metadata, not imported. None where a version is unknown: then nothing vouches for the checks."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        versions = [version(name) for name in ("tunefleet", "timm", "torch")]
    except PackageNotFoundError:
        return None
    return hashlib.sha256(json.dumps([spec.to_yaml(), *versions]).encode()).hexdigest()
