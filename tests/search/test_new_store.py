"""A new SQLite store appears whole: a reader outside our lock that opens it once its file exists
(``tunefleet report``, ``tunefleet.open``, the MLflow UI, a script polling a starting search)
never finds it half-migrated, so MLflow never migrates it a second time from the reader's process
(``duplicate column name``, the CI failure of stop 37). And it starts as a copy of an empty store
migrated once per MLflow version, which is the store MLflow itself builds."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from tunefleet.search.tracking._open import open_store
from tunefleet.search.tracking._template import template_path


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


def _schema(path: Path) -> list[tuple[str, list[str]]]:
    """Every table, index and trigger as SQLite stores its definition, each one's lines in order:
    two stores MLflow builds from nothing list a table's constraints in different orders."""
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL")
        return sorted((name, sorted(line.strip().rstrip(",") for line in sql.splitlines())) for name, sql in rows)
    finally:
        connection.close()


def _rows(path: Path, table: str) -> list[tuple]:
    connection = sqlite3.connect(path)
    try:
        return sorted(connection.execute(f"SELECT * FROM {table}"))
    finally:
        connection.close()


def test_a_store_copied_from_the_template_is_the_store_mlflow_builds(tmp_path, monkeypatch) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("TUNEFLEET_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "first").mkdir()
    monkeypatch.chdir(tmp_path / "first")  # MLflow's default artifact root is ./mlruns of the opener
    open_store(f"sqlite:///{tmp_path / 'first' / 'mlflow.db'}")  # builds the template
    assert template_path().is_file() and not _rows(template_path(), "experiments")  # no Default: each store's own
    (tmp_path / "second").mkdir()
    monkeypatch.chdir(tmp_path / "second")
    started_ms = time.time() * 1000
    copied, built = tmp_path / "second" / "mlflow.db", tmp_path / "second" / "built.db"
    open_store(f"sqlite:///{copied}")
    MlflowClient(f"sqlite:///{built}").search_experiments()  # MLflow alone, from nothing
    assert _schema(copied) == _schema(built)
    for table in ("alembic_version", "workspaces"):
        assert _rows(copied, table) == _rows(built, table)
    copied_default, built_default = (MlflowClient(f"sqlite:///{p}").get_experiment("0") for p in (copied, built))
    assert (
        copied_default.artifact_location == built_default.artifact_location == str(tmp_path / "second" / "mlruns" / "0")
    )
    assert copied_default.creation_time >= started_ms  # made now, for this store, not the template's
    assert MlflowClient(f"sqlite:///{copied}").create_experiment("next") == "1"  # ids go on as MLflow's do


def test_a_template_that_does_not_open_is_found_out_and_built_again(tmp_path, monkeypatch) -> None:
    """A template from another build of the same MLflow version: MLflow's schema check on the copy
    fails, the store is built from nothing, and the next new store builds a new template."""
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("TUNEFLEET_CACHE_DIR", str(tmp_path / "cache"))
    open_store(f"sqlite:///{tmp_path / 'a.db'}")
    template = template_path()
    head = _rows(template, "alembic_version")
    connection = sqlite3.connect(template)
    with connection:
        connection.execute("UPDATE alembic_version SET version_num = 'an0ther0head'")
    connection.close()
    open_store(f"sqlite:///{tmp_path / 'b.db'}")
    assert _rows(tmp_path / "b.db", "alembic_version") == head
    assert [e.name for e in MlflowClient(f"sqlite:///{tmp_path / 'b.db'}").search_experiments()] == ["Default"]
    assert not template.exists()  # found out: it was the copy's start
    open_store(f"sqlite:///{tmp_path / 'c.db'}")
    assert _rows(template, "alembic_version") == head


def test_a_cache_that_cannot_be_written_is_no_cache(tmp_path, monkeypatch) -> None:
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("TUNEFLEET_CACHE_DIR", str(tmp_path / "a-file" / "cache"))
    open_store(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert _tables(tmp_path / "mlflow.db")[1] is not None
    assert not template_path().exists()
