"""A new SQLite store appears whole: a reader outside our lock that opens it once its file exists
(``tunefleet report``, ``tunefleet.open``, the MLflow UI, a script polling a starting search)
never finds it half-migrated, so MLflow never migrates it a second time from the reader's process
(``duplicate column name``, the CI failure of stop 37)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from tunefleet.search.tracking._open import open_store


def _tables(path: Path) -> tuple[set[str], str | None]:
    connection = sqlite3.connect(path, timeout=30)
    try:
        names = {r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "alembic_version" not in names:
            return names, None
        return names, connection.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    finally:
        connection.close()


def test_a_new_store_is_seen_only_with_every_table_made(tmp_path: Path) -> None:
    path = tmp_path / "mlflow.db"
    opener = threading.Thread(target=open_store, args=(f"sqlite:///{path}",))
    opener.start()
    first_sight = None
    while first_sight is None and opener.is_alive():
        if path.exists():  # as a reader decides the store is there
            first_sight = _tables(path)
        time.sleep(0.002)
    opener.join()
    made = _tables(path)
    assert first_sight is not None, "the store appeared only after open_store returned: nothing was polled"
    assert first_sight == made and made[1] is not None and "runs" in made[0]
    assert path.is_file() and not list(tmp_path.glob(".mlflow.db.*"))  # no draft left


def test_a_store_made_again_in_the_same_process_is_whole(tmp_path: Path) -> None:
    """A notebook that deletes its store and searches again: MLflow caches a store per URI for the
    life of the process, so neither the draft's cached store nor the old file's connections may be
    reused; a draft left by a killed process goes."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    left = tmp_path / ".mlflow.db.0123.creating"
    left.write_bytes(b"")
    open_store(uri)
    MlflowClient(uri).create_experiment("first")
    for file in tmp_path.glob("mlflow.db*"):
        if file.name != "mlflow.db.lock":
            file.unlink()
    open_store(uri)
    client = MlflowClient(uri)
    client.create_experiment("second")
    assert sorted(e.name for e in client.search_experiments()) == ["Default", "second"]
    assert not left.exists() and not list(tmp_path.glob("*.creating*"))
