"""``tunefleet trials``: one row per trial of a search, as a table, CSV or JSON.

The rows come from ``tunefleet.analysis.trials_frame`` (MLflow's own pandas search); CSV and JSON
carry every column of it, the table the ones a person compares trials by.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

import pandas as pd
import typer
from rich.table import Table

from tunefleet.spaces import SpecError
from tunefleet.spaces import records as rec

from ._console import out
from ._options import SearchRun, TrackingUri

FORMATS = ("table", "csv", "json")
# Shown in the table after the fixed columns: at most this many searched params (those that vary;
# the name already says optimizer, LR and batch). CSV and JSON have them all.
TABLE_PARAMS = 4
# Short table headings; CSV and JSON keep the full names.
HEADINGS = {rec.EPOCHS_TRAINED: "epochs", "duration_s": "time_s", rec.best_key(rec.TEST_ACC): "test_acc"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def to_json(frame: pd.DataFrame) -> str:
    rows = [{k: _jsonable(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
    return json.dumps(rows, indent=2, default=str)


def _searched_params(frame: pd.DataFrame) -> list[str]:
    named = ("params.trial_id", "params.lr", "params.batch_size", "params.optimizer")  # in the run name
    params = [c for c in frame.columns if c.startswith("params.") and frame[c].nunique(dropna=True) > 1]
    return [p for p in params if p not in named and not p.startswith("params.effective_")][:TABLE_PARAMS]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return str(int(value)) if value.is_integer() else f"{value:.4g}"
    if value is None or value is pd.NaT:
        return "-"
    try:  # params are strings in MLflow: show numbers short, as the metrics are
        return _cell(float(value)) if isinstance(value, str) and value not in ("True", "False") else str(value)
    except ValueError:
        return str(value)


def to_table(frame: pd.DataFrame, column: str, title: str) -> Table:
    fixed = ["name", "status", "outcome", rec.EPOCHS_TRAINED, "duration_s", "node", column, rec.best_key("test_acc")]
    fixed += list(rec.SERVING_METRICS)  # where the search measured them
    cols = list(dict.fromkeys(c for c in fixed if c in frame)) + _searched_params(frame)
    table = Table(title=title)
    for col in cols:
        heading = HEADINGS.get(col, col.rsplit(".", 1)[-1])  # a param by its knob: hflip, momentum
        table.add_column(
            heading, no_wrap=col == "name", justify="left" if col in ("name", "status", "outcome") else "right"
        )
    for _, row in frame.iterrows():
        table.add_row(*[_cell(row.get(c)) for c in cols])
    return table


def trials(
    experiment: Annotated[str, typer.Argument(help="MLflow experiment of the search")],
    top: Annotated[int | None, typer.Option("--top", help="only the best K trials")] = None,
    sort: Annotated[str | None, typer.Option("--sort", help="metric to rank by [default: the search's]")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | csv | json")] = "table",
    tracking_uri: TrackingUri = None,
    search_run: SearchRun = None,
    pareto: Annotated[
        bool,
        typer.Option(
            "--pareto", help="only the Pareto front of the search's objectives (or its metric against latency_ms)"
        ),
    ] = False,
) -> None:
    """The trials of a search as recorded in MLflow (params, metrics, outcome, duration, node), best first."""
    if fmt not in FORMATS:
        raise SpecError("--format", f"unknown format {fmt!r}; one of: {', '.join(FORMATS)}")
    if top is not None and top < 1:
        raise SpecError("--top", f"must be >= 1, got {top}")
    from tunefleet.analysis import run_url

    from ..api._search import open_search
    from ..resume._liveness import resume_command

    found = open_search(experiment, tracking_uri=tracking_uri, search_run=search_run)
    read, uri = found.table(sort, top, pareto), found.tracking_uri
    frame, column, state = read.frame, read.column, read.state
    if fmt == "csv":
        typer.echo(frame.to_csv(index=False), nl=False)
        return
    if fmt == "json":
        typer.echo(to_json(frame))
        return
    run = found.run_id
    console = out()
    what = "Pareto trials" if pareto else "trials"
    console.print(to_table(frame, column, f"{experiment}: {len(frame)} {what} (search run {run}, {state})"))
    url = run_url(uri, read.experiment_id, run)
    if url:
        console.print(f"search run: {url}", highlight=False, soft_wrap=True)
    if state == "interrupted":
        console.print(f"interrupted: continue it with {resume_command(experiment, run, uri)}", highlight=False)
