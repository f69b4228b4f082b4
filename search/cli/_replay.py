"""``tunefleet replay``: its own small module so that the CLI starts without importing MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tunefleet.spaces import SpecError

from ._console import fail, out

DEFAULT_TIMEOUT_S = 300.0  # seconds to keep retrying an MLflow that does not answer


def replay(
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
    except SpoolError as err:  # missing, damaged, or no store to write to: bad input
        raise SpecError("", str(err)) from err
    except ReplayIncompleteError as err:  # it ran; MLflow did not take every write
        fail(str(err), 1)
    out().print(f"replayed {applied} writes from {spool}; the file is now {done}", markup=False, highlight=False)
