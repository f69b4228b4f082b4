"""The service's MLflow backend store: SQLite in the service folder by default, or a team's
PostgreSQL server (``tunefleet up --backend-store-uri postgresql://USER@HOST:5432/DATABASE``),
which MLflow advises for anything shared or long-lived.

The password never goes on a command line: libpq reads it from ``PGPASSWORD`` or ``~/.pgpass``
when the URI has none, and the URI reaches ``mlflow server`` through its environment
(``MLFLOW_BACKEND_STORE_URI``), not its argv, which every user of the machine can read. What
tunefleet prints or records of the URI has the password masked.
"""

from __future__ import annotations

import re

from tunefleet.spaces import SpecError

from ..tracking._open import is_postgres, open_store, sqlite_database

OPTION = "--backend-store-uri"
CONNECT_TIMEOUT_S = 5  # a store that does not answer in this long is taken as unreachable
_PASSWORD = re.compile(r"(?P<head>://[^/\s:@]*):(?P<password>[^/\s@]*)@")


def redact(uri: str) -> str:
    """``uri`` with its password (``user:PASSWORD@``) masked, for messages and records."""
    return _PASSWORD.sub(r"\g<head>:***@", uri)


def _password(uri: str) -> str | None:
    found = _PASSWORD.search(uri)
    return found.group("password") if found else None


def prepare_backend_store(uri: str) -> None:
    """Refuse a store the server could not use, before anything starts (one line naming
    ``--backend-store-uri``), and create and migrate it once (``open_store``), so the server's
    workers start on a ready schema instead of racing to build it."""
    if is_postgres(uri):
        _reach_postgres(uri)
    elif (path := sqlite_database(uri)) is not None:
        if not path.resolve().parent.is_dir():
            raise SpecError(OPTION, f"directory {path.parent} does not exist")
    else:
        raise SpecError(
            OPTION, f"{redact(uri)}: use sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE (MLflow's SQL stores)"
        )
    open_store(uri)


def _reach_postgres(uri: str) -> None:
    try:
        import psycopg  # noqa: F401  SQLAlchemy's driver for postgresql://; an optional extra
        import sqlalchemy
        from sqlalchemy.pool import NullPool
    except ModuleNotFoundError:
        raise SpecError(OPTION, "a PostgreSQL store needs its driver: pip install 'tunefleet[postgres]'") from None
    engine = sqlalchemy.create_engine(uri, poolclass=NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.SQLAlchemyError as err:
        cause = str(getattr(err, "orig", None) or err).strip().splitlines()
        why = cause[-1] if cause else type(err).__name__
        password = _password(uri)
        if password:  # libpq does not echo it; never rely on that
            why = why.replace(password, "***")
        raise SpecError(OPTION, f"cannot connect to {redact(uri)}: {why}") from None
    finally:
        engine.dispose()


def server_workers(uri: str) -> int:
    """MLflow server workers: one writer on a SQLite file; a database server takes several."""
    return 2 if is_postgres(uri) else 1
