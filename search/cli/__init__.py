"""The ``tunefleet`` command line: submit a search, watch it, read it back, export an ensemble.

Bad input never starts anything: the spec and every name in it are checked first, and any
problem is one line on stderr naming the field, with exit code 2. Each command is a plain function
that raises ``SpecError`` for bad input; ``handle_errors`` (one handler, put on every command as it is
registered below) prints it. ``run`` is the whole command line in this process; ``main`` exits with it.

Ray, MLflow and torch are imported inside the commands only, so bad input is answered before they load.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperCommand

from .._defaults import quiet_mlflow_output
from ._analysis import ExportCommand, export, predict, report
from ._console import error, handle_errors, out
from ._fit import FitCommand, fit
from ._options import SearchRun, TrackingUri, exit_with
from ._options import tracking_uri as resolve_uri
from ._replay import replay
from ._service import down, logs, status, stop, submit, up
from ._spaces import SPACES_HELP, knobs, list_spaces, schema, show
from ._trials import trials

__all__ = ["app", "main", "run"]

quiet_mlflow_output()

PROG = "tunefleet"  # the name usage lines and hints give, however the CLI was started


def search(
    spec: Annotated[Path, typer.Argument(help="search spec (YAML)")],
    num_samples: Annotated[int | None, typer.Option("--num-samples", help="trials to run")] = None,
    searcher: Annotated[str | None, typer.Option(help="grid | random | optuna")] = None,
    scheduler: Annotated[str | None, typer.Option(help="asha | hyperband | median | pbt | fifo")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address; default: start Ray here")] = None,
    tracking_uri: TrackingUri = None,
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment [default: the spec's name]")] = None,
    storage: Annotated[
        str, typer.Option(help="Ray Tune's state and checkpoints: a path (shared by every node) or s3://, gs://")
    ] = "tunefleet-runs",
    warm_start: Annotated[
        list[str] | None,
        typer.Option("--warm-start", help="learn from this earlier experiment's trials (repeat for more)"),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="check SPEC and print the plan (trials, data, data path); start nothing")
    ] = False,
) -> None:
    """Run a hyperparameter search described by SPEC and record it in MLflow."""
    from ..api._search import launch, prepare, search_overrides

    overrides = search_overrides(num_samples, searcher, scheduler, experiment, warm_start)
    prepared = prepare(spec, overrides, tracking_uri)
    if dry_run:
        from ..run._driver import print_plan

        print_plan(prepared.spec, prepared.plan, out())
        return
    exit_with(launch(prepared, address, storage, out(), then_stop_ray=True).code)


def resume(
    experiment: Annotated[str, typer.Argument(help="MLflow experiment of the search")],
    search_run: SearchRun = None,
    tracking_uri: TrackingUri = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address; default: start Ray here")] = None,
    more: Annotated[
        int | None, typer.Option("--more", min=1, help="give a finished search N more trials (its history kept)")
    ] = None,
    more_time: Annotated[
        str | None, typer.Option("--more-time", help="give a finished search this much more time: 90s, 20m, 2h")
    ] = None,
) -> None:
    """Continue an interrupted search (driver killed, Ctrl-C, reboot, `tunefleet stop`) where it
    stopped; with --more / --more-time, give a finished one more trials in the same search run."""
    from ..api._search import continue_search

    uri = resolve_uri(tracking_uri)
    exit_with(continue_search(uri, experiment, search_run, address, out(), more, more_time, then_stop_ray=True).code)


app = typer.Typer(
    name=PROG,
    help="Distributed hyperparameter search for PyTorch image classifiers (Ray Tune + Optuna + MLflow + timm).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
spaces_app = typer.Typer(help=SPACES_HELP, no_args_is_help=True)


def _add(to: typer.Typer, *commands: Callable[..., None], cls: type[TyperCommand] | None = None) -> None:
    """Register ``commands`` on ``to``, each behind the one error handler; typer names them after the functions."""
    for command in commands:
        to.command(cls=cls)(handle_errors(command))


_add(app, up, down, submit, status, logs, stop, replay, trials)
_add(app, export, cls=ExportCommand)  # `--register` with or without its NAME
_add(app, report, predict, search, resume)
_add(app, fit, cls=FitCommand)  # `--register` with or without its NAME
spaces_app.command("list")(handle_errors(list_spaces))
_add(spaces_app, show, knobs, schema)
app.add_typer(spaces_app, name="spaces")


def _usage_error(err: typer.TyperException) -> int:
    """Click's own errors (a bad option value, a missing argument, an unknown command) as one line."""
    ctx = getattr(err, "ctx", None)  # set on a usage error: the command it was parsing
    message = err.format_message()
    if message:  # empty for a bare `tunefleet` / `tunefleet spaces`: their help is already printed
        hint = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
        error(f"{message}{hint}")
    return err.exit_code


def run(argv: list[str]) -> int:
    """The ``tunefleet`` command line in this process, on ``argv`` (without the program name): parses,
    runs the command, prints any error as one ``error:`` line on stderr and returns the exit code
    (0 done, 1 failed, 2 bad input, 130 interrupted) instead of exiting."""
    try:
        code = app(args=argv, prog_name=PROG, standalone_mode=False)
    except typer.TyperException as err:  # typer's click: usage errors are its exceptions, exit code 2
        return _usage_error(err)
    except typer.Abort:
        return 130
    return code if isinstance(code, int) else 0


def main() -> None:
    """Entry point of the ``tunefleet`` command."""
    code = run(sys.argv[1:])
    _leave_quickly()
    sys.exit(code)


def _leave_quickly() -> None:
    """End the process without its slow parts: stop the Ray it started now (Ray's own exit hook
    sleeps 0.5 s first), close MLflow's database connections, then freeze the heap so the
    interpreter's last garbage collection (3-4 s on a search's heap) has nothing to walk.

    The connections are closed first because that collection is what would close them: on
    SQLite the last close moves the WAL into ``mlflow.db``, and a process that skipped it left its
    last writes in ``mlflow.db-wal``, so a copy of ``mlflow.db`` alone (a backup, a file sent on)
    missed them. Atexit handlers and stream flushes still run; only the collection is skipped.
    """
    import gc

    if "ray" in sys.modules:
        from ..run._ray import ray_stopped

        ray_stopped()
    if "mlflow" in sys.modules:  # a command that never touched MLflow has nothing to close
        from ..tracking._open import close_stores

        close_stores()
    gc.freeze()
