"""Opening an MLflow store safely: created and migrated once, however many processes start
together, on SQLite (one machine) and on PostgreSQL (a team's server).

MLflow creates a store on first use by running its alembic migrations, with no lock between
processes: two ``tunefleet search`` started at the same moment on a new SQLite file both
migrate, and one dies with ``duplicate column name: step`` (or ``table alembic_version already
exists``). A new PostgreSQL database races the same way (``UniqueViolation`` on
``pg_type_typname_nsp_index`` while both create ``alembic_version``), and so do the workers of
an ``mlflow server`` started on one. ``open_store`` runs that first use under a lock: a file lock
next to a SQLite database, and a PostgreSQL advisory lock, which the database server holds for
every host alike, for a PostgreSQL one. The second process waits and then finds the tables made.

SQLite: it also switches the file to WAL journaling. In SQLite's default (rollback) mode a
reader, such as the MLflow UI paging through a long metric history, holds a lock that makes every
writer wait, and lock upgrades between concurrent transactions can fail at once with "database
is locked" whatever the busy timeout. In WAL mode readers and the one writer do not block each
other, and writers queue on the busy timeout. The mode is stored in the file, so one switch
serves every later process (the MLflow UI and server included). WAL needs shared memory between
the processes, i.e. one machine: a SQLite file on a network share was never safe for several
hosts writing at once, and tunefleet writes it from the driver only.

The busy timeout: MLflow sets ``PRAGMA busy_timeout = 20000`` (20 s) on every session it opens
for reads and writes (``mlflow.store.db.utils._get_managed_session_maker``); the few statements
outside those sessions (opening the engine, checking the schema) are reads, which never wait on
a writer in WAL mode, and keep the sqlite3 module's 5 s default. A write that still finds the
database busy (an unusually long commit elsewhere) is retried by ``TrackingWriter``.

Other stores (an MLflow server, MySQL) serialize their own writers: nothing to do.
"""

from __future__ import annotations

import glob
import importlib
import logging
import os
import sqlite3
import uuid
from pathlib import Path

from filelock import FileLock

from .._defaults import sqlite_database
from ._engines import dispose_engines, engine_maps, first_use, sqlite_uri
from ._template import make_new_store

logger = logging.getLogger(__name__)
# A migration of a new store takes a few seconds; processes queued behind it wait this long.
LOCK_TIMEOUT_S = 300.0
# How long our own connection waits for a busy database while it switches the journal mode.
BUSY_TIMEOUT_S = 30.0
LOCK_SUFFIX = ".lock"
# The advisory lock's key: one 64-bit number per database, the same in every tunefleet process
# (and any other program that wants to take part); "tunefleet" as ASCII.
ADVISORY_KEY = int.from_bytes(b"tunefleet"[:8], "big") >> 1


def is_postgres(uri: str) -> bool:
    """``postgresql://`` and ``postgresql+DRIVER://`` (SQLAlchemy's spellings; MLflow takes both)."""
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    return scheme == "postgresql" or scheme.startswith("postgresql+")


def open_store(uri: str) -> None:
    """Make the store at ``uri`` ready for this process: created and migrated once however many
    processes start together, in WAL mode when it is a SQLite file. Call it before the first
    ``MlflowClient`` use of a search; calling it again is cheap."""
    if is_postgres(uri):
        _open_postgres(uri)
        return
    path = sqlite_database(uri)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # MLflow's SQL store module takes a second to import: done here, processes do it side by side
    # instead of one after another under the lock.
    importlib.import_module("mlflow.store.tracking.sqlalchemy_store")
    # The lock lies next to the database, not in /tmp, so processes that see the file under
    # another temp directory (containers sharing a volume) still exclude each other.
    with FileLock(str(path) + LOCK_SUFFIX, timeout=LOCK_TIMEOUT_S):
        if not path.exists():
            _create_whole(uri, path)
        _use_wal(path)
        first_use(uri)


def _create_whole(uri: str, path: Path) -> None:
    """Make a new SQLite store under a draft name and link it into place once migrated.

    Readers outside our lock (``tunefleet report``, ``tunefleet.open``, the MLflow UI, a script
    polling a search) open a store once its file exists. Had MLflow created the file in place,
    such a reader could find it half-migrated, and MLflow would run the same migrations again
    from the reader's process: one of the two dies on ``duplicate column name``. Linked into
    place whole, the file exists only with every table made. The draft starts as a copy of an
    empty store migrated once per MLflow version (``_template``), not migrated again each time.
    """
    folder = path.resolve().parent
    # Drafts are made under the lock only, so any found now was left by a process killed while creating.
    for stale in folder.glob(f".{glob.escape(path.name)}.*.creating*"):
        stale.unlink(missing_ok=True)
    # A name of its own each time: MLflow caches a store per URI for the life of the process.
    draft = folder / f".{path.name}.{uuid.uuid4().hex}.creating"
    query = uri.partition("?")[2]
    try:
        make_new_store(draft, query)
        dispose_engines(sqlite_uri(draft, query), forget=True)  # its connections closed: whole on disk
        os.link(draft, path)  # atomic, and never replaces a file made meanwhile (FileExistsError)
        dispose_engines(uri)  # a store cached here for an earlier file of this name reconnects to this one
    except OSError as err:
        # Made meanwhile by a program outside our lock, or a file system without hard links:
        # the caller's first use then creates or migrates the file in place, as MLflow would.
        logger.info("could not link the new store %s into place (%s); opening it in place", path, err)
    finally:
        draft.unlink(missing_ok=True)


def _open_postgres(uri: str) -> None:
    """MLflow's first use of a PostgreSQL store under a session advisory lock, taken on a
    connection of our own that stays open while MLflow migrates on its own connections."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    importlib.import_module("mlflow.store.tracking.sqlalchemy_store")
    engine = sqlalchemy.create_engine(uri, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            # lock_timeout bounds the wait for the advisory lock as for any other lock.
            connection.execute(sqlalchemy.text(f"SET lock_timeout = '{int(LOCK_TIMEOUT_S)}s'"))
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_KEY})
            try:
                first_use(uri)
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
    finally:
        engine.dispose()


def close_stores() -> None:
    """Close every database connection MLflow's SQL stores hold in this process, as a process
    about to exit should: on SQLite the last connection's close moves the WAL's pages into the
    database file, so ``mlflow.db`` alone (a backup, a copy sent on) holds every write.

    MLflow caches one engine per database URI on each store class (``_engine_map``) for the life
    of the process and never disposes them; the interpreter's last garbage collection would close
    their connections, which is what a process that skips that collection must do first.
    """
    for engines in engine_maps():
        for engine in list(engines.values()):
            engine.dispose()


def _use_wal(path: Path) -> None:
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
    try:
        mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    except sqlite3.OperationalError as err:
        # Another program (not behind our lock) holds the database: WAL is an improvement,
        # not a requirement, so the search goes on in the current mode.
        logger.info("could not switch %s to WAL journaling (%s); keeping its mode", path, err)
        return
    finally:
        connection.close()
    if str(mode).lower() != "wal":  # e.g. a file system without shared memory
        logger.info("SQLite kept journal mode %s for %s", mode, path)
