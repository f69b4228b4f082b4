"""``tunefleet export``, ``report`` and ``predict``: read a search back, explain it, ship and run
its best trials as one model. The work is in ``tunefleet.analysis``; this module parses options
and prints results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tunefleet.spaces import SpecError
from tunefleet.spaces import records as rec

from ._options import REPORTS_DIR, SearchRun, TrackingUri
from ._options import tracking_uri as resolve_uri

# `--register` alone names the model after the experiment; `--register NAME` names it. Typer
# has no option with an optional value, so ``optional_values`` fills in this placeholder.
_FROM_EXPERIMENT = "\0experiment"
_OPTIONAL_VALUES = {"--register": _FROM_EXPERIMENT}


def optional_values(argv: list[str]) -> list[str]:
    """``argv`` with a placeholder after each option of ``_OPTIONAL_VALUES`` given without its value."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        out.append(arg)
        following = argv[i + 1] if i + 1 < len(argv) else None
        if arg in _OPTIONAL_VALUES and (following is None or following.startswith("-")):
            out.append(_OPTIONAL_VALUES[arg])
    return out


# Columns of the export table, from each card's test metrics.
_SCORES = ("acc", "top5_acc", "f1", "roc_auc", "ece")


def _score(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "-"


def export_table(card: dict[str, Any]) -> Table:
    """Members and the ensemble on the test split; a member the combination left out has weight 0."""
    scores = [s for s in _SCORES if s in card["ensemble"]]
    table = Table(title=f"{card['method']} ensemble of the {len(card['members'])} best trials, on the test split")
    for col in ("member", "weight", card["metric"], *(f"test_{s}" for s in scores)):
        table.add_column(col, justify="left" if col == "member" else "right")
    for m in card["members"]:
        weight = "stacked" if m["weight"] is None else f"{m['weight']:.3f}"  # a stack weighs logits, not members
        table.add_row(m["name"], weight, _score(m.get(card["metric"])), *(_score(m["test"].get(s)) for s in scores))
    ens = card["ensemble"]
    table.add_row("[bold]ensemble[/]", "", "", *(f"[bold]{_score(ens.get(s))}[/]" for s in scores))
    return table


def register(app: typer.Typer, console: Any, fail: Any) -> None:
    """Add ``export``, ``report`` and ``predict`` to the ``tunefleet`` app (``fail`` prints one line and exits)."""

    @app.command()
    def export(
        experiment: Annotated[str, typer.Argument(help="MLflow experiment of the search")],
        top_k: Annotated[int, typer.Option("--top-k", help="candidate pool: the K best finished trials")] = 3,
        method: Annotated[
            str, typer.Option("--method", help="mean | weighted | caruana | stacking | auto (fit on validation only)")
        ] = "auto",
        out: Annotated[Path, typer.Option("--out", help="output directory")] = Path("exports"),
        register_as: Annotated[
            str | None,
            typer.Option(
                "--register",
                metavar="[NAME]",
                help="also register it in the MLflow Model Registry as NAME [default NAME: the experiment]",
            ),
        ] = None,
        tracking_uri: TrackingUri = None,
        search_run: SearchRun = None,
    ) -> None:
        """Ensemble the best trials of a search; write OUT/ensemble.onnx and OUT/card.json."""
        from tunefleet.analysis import METHODS, check_model_name, export_ensemble, register_model, run_url

        uri = resolve_uri(tracking_uri)
        name = experiment if register_as == _FROM_EXPERIMENT else register_as
        try:
            if top_k < 1:
                raise SpecError("--top-k", f"must be >= 1, got {top_k}")
            if method not in METHODS:
                raise SpecError("--method", f"unknown method {method!r}; one of: {', '.join(METHODS)}")
            if name is not None:
                check_model_name(name)
            result = export_ensemble(uri, experiment, top_k, out, search_run, method, say=console.print)
        except SpecError as err:
            fail(str(err))
            return
        card = result.card
        console.print(export_table(card))
        diff = card["onnx"]["max_abs_diff_vs_torch"]
        console.print(
            f"ensemble test accuracy {card['ensemble']['acc']:.4f} · ONNX matches PyTorch (max abs diff {diff:.1e})"
        )
        console.print(f"wrote {out / rec.ONNX_FILE} and {out / rec.CARD_FILE}", highlight=False)
        url = run_url(uri, card["experiment_id"], card["search_run_id"])
        if url:
            console.print(f"search run: {url}", highlight=False, soft_wrap=True)
        if name is not None:
            done = register_model(uri, name, out / rec.ONNX_FILE, card, result.example)
            console.print(f"registered {done.uri} (export run {done.run_id})", highlight=False)

    @app.command()
    def report(
        experiment: Annotated[str, typer.Argument(help="MLflow experiment of the search")],
        out: Annotated[Path | None, typer.Option("--out", help="folder [default: reports/EXPERIMENT]")] = None,
        tracking_uri: TrackingUri = None,
        search_run: SearchRun = None,
    ) -> None:
        """Explain a search: importance, parallel coordinates, curves, confusion, bad cases (PNG + HTML)."""
        from tunefleet.analysis import build_report, run_url

        uri = resolve_uri(tracking_uri)
        folder = out or REPORTS_DIR / experiment
        try:
            done = build_report(uri, experiment, folder, search_run)
        except SpecError as err:
            fail(str(err))
            return
        for note in done.notes:
            console.print(f"note: {note}", highlight=False)
        console.print(f"wrote {len(done.files)} figures and {done.html}", highlight=False)
        console.print(f"logged as artifacts {done.artifact_path}/ of search run {done.search_run_id}", highlight=False)
        url = run_url(uri, done.experiment_id, done.search_run_id)
        if url:
            console.print(f"search run: {url}", highlight=False, soft_wrap=True)

    @app.command()
    def predict(
        model: Annotated[str, typer.Argument(help="an export folder, or models:/NAME/VERSION")],
        images: Annotated[list[Path], typer.Argument(help="image files or folders")],
        fmt: Annotated[str, typer.Option("--format", help="table | csv")] = "table",
        tracking_uri: TrackingUri = None,
    ) -> None:
        """Class and probability per image, through onnxruntime, prepared as the model's card says."""
        from tunefleet.analysis import predict as run_predict

        try:
            if fmt not in ("table", "csv"):
                raise SpecError("--format", f"unknown format {fmt!r}; one of: table, csv")
            result = run_predict(model, images, resolve_uri(tracking_uri))
        except SpecError as err:
            fail(str(err))
            return
        frame = result.frame[["file", "class", "probability"]] if fmt == "table" else result.frame
        if fmt == "csv":
            typer.echo(frame.to_csv(index=False), nl=False)
        else:
            table = Table(title=f"{len(frame)} images")
            for col in frame.columns:
                table.add_column(col, justify="right" if col == "probability" else "left")
            for row in frame.itertuples(index=False):
                table.add_row(row.file, row[1], f"{row.probability:.4f}")
            console.print(table)
        if result.skipped:
            typer.echo(f"skipped {len(result.skipped)} unreadable image(s):", err=True)
            for path, why in result.skipped:
                typer.echo(f"  {path}: {why}", err=True)
