"""``tunefleet replay``: its own small module so that the CLI starts without importing MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

DEFAULT_TIMEOUT_S = 300.0  # seconds to keep retrying an MLflow that does not answer


def register(app: typer.Typer, console: Any, fail: Any) -> None:
    """Add ``replay`` to the ``tunefleet`` app (``fail`` prints one line and exits)."""

    @app.command("replay")
    def replay_command(
        spool: Annotated[Path, typer.Argument(help="spool file a search left when MLflow did not answer")],
        tracking_uri: Annotated[
            str | None, typer.Option("--tracking-uri", help="MLflow tracking URI [default: the spool's]")
        ] = None,
        timeout: Annotated[
            float, typer.Option("--timeout", help="seconds to keep retrying an MLflow that does not answer")
        ] = DEFAULT_TIMEOUT_S,
    ) -> None:
        """Apply the MLflow writes a search saved in SPOOL, in order; safe to run again."""
        from ..tracking._replay import ReplayIncompleteError, SpoolError, replay_spool

        try:
            applied, done = replay_spool(spool, tracking_uri, timeout)
        except SpoolError as err:
            fail(str(err))
            return
        except ReplayIncompleteError as err:
            fail(str(err), 1)
            return
        console.print(f"replayed {applied} writes from {spool}; the file is now {done}", markup=False, highlight=False)
