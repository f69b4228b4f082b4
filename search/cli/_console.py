"""Where the ``tunefleet`` commands write, and the one place bad input becomes an error line.

Consoles are made when a command runs, on the ``sys.stdout`` / ``sys.stderr`` of that moment, so a
caller that swaps the streams (``run`` under pytest's ``capsys``, typer's ``CliRunner``) sees the output.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NoReturn, ParamSpec

import typer
from rich.console import Console

from tunefleet.spaces import SpecError

P = ParamSpec("P")


def out(width: int = 200) -> Console:
    """A console on the current stdout; off a terminal (logs, CI) ``width`` columns, so tables don't wrap at 80."""
    console = Console()
    return console if console.is_terminal else Console(width=width)


def error(message: str) -> None:
    """``error: MESSAGE`` as one line on the current stderr."""
    Console(stderr=True, soft_wrap=True).print(f"error: {message}", markup=False, highlight=False)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: MESSAGE`` and end the command with ``code`` (2: bad input, 1: it ran and failed)."""
    error(message)
    raise typer.Exit(code)


def handle_errors(command: Callable[P, None]) -> Callable[P, None]:
    """``command`` as the app runs it: a ``SpecError`` it raises is one ``error:`` line and exit code 2;
    the API's ``SearchFailed`` one line and exit code 1; ``SearchInterrupted`` exit code 130 (the
    search already said how to continue it)."""
    from ..api._search import SearchFailed, SearchInterrupted

    @functools.wraps(command)
    def checked(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except SpecError as err:
            fail(str(err))
        except SearchFailed as err:
            fail(str(err), code=1)
        except SearchInterrupted:
            raise typer.Exit(130) from None

    return checked
