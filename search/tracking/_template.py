"""An empty MLflow store, migrated once per MLflow version, that every new SQLite store copies.

MLflow makes a new SQLite store by creating its first schema and then running every alembic
migration since (sixty-odd scripts): 1.25 s of a search's start on a 2-core machine, paid again
in every new folder. The file it makes is the same every time but for one row, the Default
experiment, whose artifact location and creation time are each store's own. So the first new
store of an MLflow version builds a template, MLflow's own store with that row deleted, and
keeps it in this user's cache; later new stores start as a copy of it. Opened, the copy has no
Default experiment, and MLflow creates one as it does for any store without one, with this
store's location and time; it also checks, as on every open, that the schema is at its head, so
a template that is not (an MLflow rebuilt under the same version) is found out and built again.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import uuid
from pathlib import Path

from filelock import FileLock, Timeout

from .._defaults import cache_dir
from ._engines import dispose_engines, first_use, sqlite_uri

logger = logging.getLogger(__name__)
TEMPLATE_FOLDER = "mlflow-stores"
# Building a template is one migration, a few seconds; processes queued behind it wait this long.
BUILD_TIMEOUT_S = 300.0


def make_new_store(path: Path, query: str = "") -> None:
    """A new, migrated MLflow store at ``path`` (absolute; not there yet): a copy of this MLflow's
    template where one can be had, else built by MLflow from nothing."""
    from mlflow.exceptions import MlflowException  # here: the CLI answers bad input before MLflow loads

    uri = sqlite_uri(path, query)
    template = _template()
    if template is not None:
        try:
            shutil.copyfile(template, path)
            first_use(uri)
            return
        except (OSError, MlflowException) as err:
            logger.info("the empty-store template %s did not open (%s); building a new store", template, err)
            dispose_engines(uri, forget=True)
            path.unlink(missing_ok=True)
            template.unlink(missing_ok=True)
    first_use(uri)


def template_path() -> Path:
    import mlflow

    return cache_dir() / TEMPLATE_FOLDER / f"empty-{mlflow.__version__}.db"


def _template() -> Path | None:
    """This MLflow's template, built first if needed; None where the cache cannot hold one."""
    from mlflow.exceptions import MlflowException

    template = template_path()
    if template.is_file():
        return template
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(template) + ".lock", timeout=BUILD_TIMEOUT_S):
            if not template.is_file():
                _build(template)
    except (OSError, Timeout, MlflowException, sqlite3.Error) as err:
        # A cache that cannot be written (read-only home, full disk) is no cache.
        logger.info("no empty-store template in %s (%s)", template.parent, err)
        return None
    return template


def _build(template: Path) -> None:
    partial = template.with_name(f"{template.name}.{uuid.uuid4().hex}.partial")
    uri = sqlite_uri(partial)
    try:
        first_use(uri)
        dispose_engines(uri, forget=True)  # its connections closed: every page is in the file
        connection = sqlite3.connect(partial)
        try:
            with connection:
                connection.execute("DELETE FROM experiments WHERE experiment_id = 0")
        finally:
            connection.close()
        os.replace(partial, template)  # whole or not at all, for processes reading it unlocked
    finally:
        partial.unlink(missing_ok=True)
