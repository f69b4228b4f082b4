"""MLflow's SQL stores as this process holds them: the first use that builds (and, for a new
database, migrates) a store, and the engines MLflow caches per database URI."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

# MLflow's SQL stores: runs and metrics, the model registry, and MLflow's own job queue.
_SQL_STORE_MODULES = (
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "mlflow.store.jobs.sqlalchemy_store",
)


def sqlite_uri(path: Path, query: str = "") -> str:
    """The URI of a SQLite file at an absolute ``path``, quoted as MLflow unquotes it."""
    return f"sqlite:///{quote(str(path), safe='/')}" + (f"?{query}" if query else "")


def first_use(uri: str) -> None:
    # Public API: the first request builds MLflow's store for this URI, which creates and migrates
    # the tables; MLflow caches that store per process, so later clients reuse it.
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=uri).search_experiments(max_results=1)


def engine_maps() -> Iterator[dict[str, Any]]:
    """MLflow's cache of one engine per database URI on each SQL store class (``_engine_map``),
    kept for the life of the process; a store never imported holds none."""
    for module_name in _SQL_STORE_MODULES:
        yield getattr(getattr(sys.modules.get(module_name), "SqlAlchemyStore", None), "_engine_map", {})


def dispose_engines(uri: str, forget: bool = False) -> None:
    """Close the connections MLflow's SQL stores hold to ``uri`` (and drop the engines: ``forget``)."""
    for engines in engine_maps():
        engine = engines.pop(uri, None) if forget else engines.get(uri)
        if engine is not None:
            engine.dispose()
