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
from rich.table import Table

from tunefleet.spaces import SpecError, load_spec, records

from ._replay_cli import register as register_replay_command
from ._service_cli import register as register_service_commands
from ._spaces_cli import app as spaces_app

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
    console = Console(width=140)
err_console = Console(stderr=True, soft_wrap=True)
app.add_typer(spaces_app, name="spaces")

TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI [default: the spec's tracking.uri (search), $MLFLOW_TRACKING_URI, sqlite:///mlflow.db]",
    ),
]


def _fail(message: str, code: int = 2) -> None:
    err_console.print(f"error: {message}", markup=False, highlight=False)
    raise typer.Exit(code)


register_service_commands(app, console, _fail)
register_replay_command(app, console, _fail)


def _check_store(uri: str) -> None:
    from ._store import sqlite_database

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
) -> None:
    """Run a hyperparameter search described by SPEC and record it in MLflow."""
    try:
        overrides: dict[str, dict[str, Any]] = {
            "search": {"num_samples": num_samples, "searcher": searcher, "scheduler": scheduler},
            "tracking": {"experiment": experiment},
        }
        parsed = load_spec(spec, overrides)
        from ._experiment import preflight
        from ._search_run import tracking_uri as resolve_uri

        plan = preflight(parsed)
        uri = resolve_uri(tracking_uri, parsed.tracking.uri)
        _check_store(uri)
        from ._driver import run_search

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
def export(
    experiment: Annotated[str, typer.Argument(help="MLflow experiment of the search")],
    top_k: Annotated[int, typer.Option("--top-k", help="how many of the best finished trials to ensemble")] = 3,
    out: Annotated[Path, typer.Option("--out", help="output directory")] = Path("exports"),
    tracking_uri: TrackingUri = None,
    search_run: Annotated[str | None, typer.Option("--search-run", help="parent run id [default: latest]")] = None,
) -> None:
    """Ensemble the top-k trials of a search; write OUT/ensemble.onnx and OUT/card.json."""
    from ._search_run import tracking_uri as resolve_uri

    uri = resolve_uri(tracking_uri)
    if top_k < 1:
        _fail(f"--top-k: must be >= 1, got {top_k}")
    from tunefleet.analysis import export_ensemble

    try:
        result = export_ensemble(uri, experiment, top_k, out, search_run)
    except SpecError as err:
        _fail(str(err))
        return
    card = result.card
    table = Table(title=f"ensemble of {len(card['members'])} ({card['method']}) on the test split")
    for col in ("member", card["metric"], "test_acc", "test_f1"):
        table.add_column(col, justify="left" if col == "member" else "right")
    for m in card["members"]:
        val = m.get(card["metric"])
        table.add_row(
            m["name"],
            f"{val:.4f}" if val is not None else "-",
            f"{m['test']['test_acc']:.4f}",
            f"{m['test']['test_f1']:.4f}",
        )
    ens = card["ensemble"]
    table.add_row("[bold]ensemble[/]", "", f"[bold]{ens['test_acc']:.4f}[/]", f"{ens['test_f1']:.4f}")
    console.print(table)
    diff = card["onnx"]["max_abs_diff_vs_torch"]
    console.print(f"ensemble test accuracy {ens['test_acc']:.4f} · ONNX matches PyTorch (max abs diff {diff:.1e})")
    console.print(f"wrote {out / 'ensemble.onnx'} and {out / 'card.json'}")


@app.command()
def trials(
    experiment: Annotated[str, typer.Argument(help="MLflow experiment of the search")],
    tracking_uri: TrackingUri = None,
    search_run: Annotated[str | None, typer.Option("--search-run", help="parent run id [default: latest]")] = None,
) -> None:
    """Show the trials of a search as recorded in MLflow, best first."""
    from tunefleet.analysis import open_experiment, ranking, trials_frame
    from tunefleet.analysis import search_run as find_search

    from ._search_run import tracking_uri as resolve_uri

    try:
        client, exp = open_experiment(resolve_uri(tracking_uri), experiment)
        parent = find_search(client, exp, search_run)
    except SpecError as err:
        _fail(str(err))
        return
    from ._liveness import resume_command, search_state

    metric, mode = ranking(parent)
    frame = trials_frame(client, parent)
    state = search_state(parent)
    if state == "interrupted" and len(frame):  # runs a dead driver left RUNNING were cut short
        frame.loc[frame["status"] == "RUNNING", "outcome"] = records.INTERRUPTED
    column = records.best_key(metric)
    if column in frame:
        frame = frame.sort_values(column, ascending=mode == "min", na_position="last")
    table = Table(title=f"{experiment}: {len(frame)} trials (search run {parent.info.run_id}, {state})")
    cols = ["name", "status", "outcome", records.EPOCHS_TRAINED, column, records.best_key("test_acc")]
    for col in cols:
        table.add_column(col)

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return str(int(value)) if value.is_integer() else f"{value:.4f}"
        return "-" if value is None else str(value)

    for _, row in frame.iterrows():
        table.add_row(*[cell(row.get(c)) for c in cols])
    console.print(table)
    if state == "interrupted":
        uri = resolve_uri(tracking_uri)
        console.print(
            f"interrupted: continue it with {resume_command(experiment, parent.info.run_id, uri)}", highlight=False
        )


@app.command()
def resume(
    experiment: Annotated[str, typer.Argument(help="MLflow experiment of the search")],
    search_run: Annotated[str | None, typer.Option("--search-run", help="search run id [default: latest]")] = None,
    tracking_uri: TrackingUri = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address; default: start Ray here")] = None,
) -> None:
    """Continue an interrupted search (driver killed, Ctrl-C, reboot, `tunefleet stop`) where it stopped."""
    from ._search_run import tracking_uri as resolve_uri

    try:
        uri = resolve_uri(tracking_uri)
        from ._experiment import preflight
        from ._resume import find_resumable

        point = find_resumable(uri, experiment, search_run)
        plan = preflight(point.spec)
        from ._driver import run_search

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
        code = app(standalone_mode=False)
    except UsageError as err:
        hint = f" (see: tunefleet {err.ctx.command.name} --help)" if err.ctx and err.ctx.command.name else ""
        err_console.print(f"error: {err.format_message()}{hint}", markup=False, highlight=False)
        sys.exit(2)
    except typer.Abort:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
