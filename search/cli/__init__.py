"""The ``tunefleet`` command line: submit a search, watch it, read it back, export an ensemble.

Bad input never starts anything: the spec and every name in it are checked first, and any
problem is one line on stderr naming the field, with exit code 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from tunefleet.spaces import SpecError, load_spec

from ._analysis import optional_values
from ._analysis import register as register_analysis_commands
from ._options import SearchRun, TrackingUri
from ._options import tracking_uri as resolve_uri
from ._replay import register as register_replay_command
from ._service import register as register_service_commands
from ._spaces import app as spaces_app
from ._trials import register as register_trials_command

# MLflow's per-file download bars would drown the export summary.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# ... and so would its "View run at" line for every run closed on a tracking server.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

app = typer.Typer(
    name="tunefleet",
    help="Distributed hyperparameter search for PyTorch image classifiers (Ray Tune + Optuna + MLflow + timm).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
if not console.is_terminal:  # logs and CI: don't wrap tables at 80 columns
    console = Console(width=200)
err_console = Console(stderr=True, soft_wrap=True)
app.add_typer(spaces_app, name="spaces")


def _fail(message: str, code: int = 2) -> None:
    err_console.print(f"error: {message}", markup=False, highlight=False)
    raise typer.Exit(code)


register_service_commands(app, console, _fail)
register_replay_command(app, console, _fail)
register_trials_command(app, console, _fail)
register_analysis_commands(app, console, _fail)


def _check_store(uri: str) -> None:
    from ..tracking._store import sqlite_database

    path = sqlite_database(uri)
    if path is not None and not path.resolve().parent.is_dir():
        raise SpecError("--tracking-uri", f"directory {path.parent} does not exist")


@app.command()
def search(
    spec: Annotated[Path, typer.Argument(help="search spec (YAML)")],
    num_samples: Annotated[int | None, typer.Option("--num-samples", help="trials to run")] = None,
    searcher: Annotated[str | None, typer.Option(help="grid | random | optuna")] = None,
    scheduler: Annotated[str | None, typer.Option(help="asha | fifo")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address; default: start Ray here")] = None,
    tracking_uri: TrackingUri = None,
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment [default: the spec's name]")] = None,
    storage: Annotated[
        str, typer.Option(help="Ray Tune's state and checkpoints: a path (shared by every node) or s3://, gs://")
    ] = "tunefleet-runs",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="check SPEC and print the plan (trials, data, data path); start nothing")
    ] = False,
) -> None:
    """Run a hyperparameter search described by SPEC and record it in MLflow."""
    try:
        overrides: dict[str, dict[str, Any]] = {
            "search": {"num_samples": num_samples, "searcher": searcher, "scheduler": scheduler},
            "tracking": {"experiment": experiment},
        }
        parsed = load_spec(spec, overrides)
        from ..run._experiment import preflight

        plan = preflight(parsed)
        if dry_run:
            from ..run._driver import print_plan

            print_plan(parsed, plan, console)
            return
        uri = resolve_uri(tracking_uri, parsed.tracking.uri)
        _check_store(uri)
        from ..run._driver import run_search

        code = run_search(parsed, plan, uri, address, storage, console)
    except SpecError as err:
        _fail(str(err))
        return
    _exit_with(code)


def _exit_with(code: int) -> None:
    """A search's exit: 0 done, 1 every trial failed, 130 interrupted."""
    if code == 1:
        _fail("every trial failed; see the errors above", code=1)
    if code:
        raise typer.Exit(code)


@app.command()
def resume(
    experiment: Annotated[str, typer.Argument(help="MLflow experiment of the search")],
    search_run: SearchRun = None,
    tracking_uri: TrackingUri = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address; default: start Ray here")] = None,
) -> None:
    """Continue an interrupted search (driver killed, Ctrl-C, reboot, `tunefleet stop`) where it stopped."""

    try:
        uri = resolve_uri(tracking_uri)
        from ..resume._resume import find_resumable
        from ..run._experiment import preflight

        point = find_resumable(uri, experiment, search_run)
        plan = preflight(point.spec)
        from ..run._driver import run_search

        code = run_search(point.spec, plan, uri, address, point.tune_path, console, resume=point)
    except SpecError as err:
        _fail(str(err))
        return
    _exit_with(code)


def main() -> None:
    """Entry point: click's own usage errors also become one ``error:`` line with exit code 2."""
    # typer vendors click; its UsageError (bad option values, missing arguments) is not public.
    from typer._click.exceptions import UsageError

    try:
        code = app(args=optional_values(sys.argv[1:]), standalone_mode=False)
    except UsageError as err:
        hint = f" (see: tunefleet {err.ctx.command.name} --help)" if err.ctx and err.ctx.command.name else ""
        err_console.print(f"error: {err.format_message()}{hint}", markup=False, highlight=False)
        sys.exit(2)
    except typer.Abort:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
