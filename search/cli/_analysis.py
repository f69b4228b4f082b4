"""``tunefleet export``, ``report`` and ``predict``: read a search back, explain it, ship and run
its best trials as one model. The work is in ``tunefleet.analysis``; this module parses options
and prints results.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperCommand

from tunefleet.spaces import ExportCard, SpecError
from tunefleet.spaces import records as rec

from ._console import out
from ._options import REPORTS_DIR, SearchRun, TrackingUri
from ._options import tracking_uri as resolve_uri

if TYPE_CHECKING:
    from tunefleet.analysis import Exported

# Columns of the export table, from each card's test metrics.
_SCORES = ("acc", "top5_acc", "f1", "roc_auc", "ece")


def _score(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "-"


def export_table(card: ExportCard) -> Table:
    """Members and the ensemble on the test split; a member the combination left out has weight 0."""
    ensemble = card.ensemble.model_dump()  # as in card.json: a score the split cannot give is absent
    scores = [s for s in _SCORES if s in ensemble]
    title = f"{card.method} ensemble of the {len(card.members)} best trials, on the test split"
    if card.distilled is not None:
        teacher, student = card.distilled.teacher_method, card.distilled.student
        title = f"{student} distilled from the {teacher} ensemble of {len(card.members)} trials, on the test split"
    table = Table(title=title)
    for col in ("member", "epochs (best)", "weight", card.metric, *(f"test_{s}" for s in scores)):
        table.add_column(col, justify="left" if col == "member" else "right")
    for m in card.members:
        weight = "stacked" if m.weight is None else f"{m.weight:.3f}"  # a stack weighs logits, not members
        test = m.test.model_dump()
        # epochs trained, and the best one the member's weights come from ("4 (2)": stopped at 4)
        epochs = f"{m.epochs_trained if m.epochs_trained is not None else '?'} ({m.epoch})"
        table.add_row(m.name, epochs, weight, _score(m.score), *(_score(test.get(s)) for s in scores))
    if card.distilled is not None:  # the ensemble taught; the student is what ships
        taught = card.distilled.teacher_test.model_dump()
        table.add_row(
            f"ensemble ({card.distilled.teacher_method})", "", "", "", *(_score(taught.get(s)) for s in scores)
        )
        shipped = f"[bold]student {card.distilled.student}[/]"
        epochs = f"{card.distilled.epochs} ({card.distilled.best_epoch})"
        table.add_row(
            shipped,
            epochs,
            "",
            _score(card.distilled.val_acc),
            *(f"[bold]{_score(ensemble.get(s))}[/]" for s in scores),
        )
        return table
    table.add_row("[bold]ensemble[/]", "", "", "", *(f"[bold]{_score(ensemble.get(s))}[/]" for s in scores))
    return table


def variants_table(card: ExportCard) -> Table:
    """The shipped graph beside fp32: what each precision costs and keeps (CPU, onnxruntime)."""
    table = Table(title=f"shipped as {card.precision} (latency: onnxruntime on this CPU, median)")
    batch = card.variants[0].batch_n
    for col in ("precision", "test_acc", "agrees with fp32", "ms, batch 1", f"ms, batch {batch}", "file MB"):
        table.add_column(col, justify="left" if col == "precision" else "right")
    for v in card.variants:
        table.add_row(
            v.precision, f"{v.test_acc:.4f}", f"{v.agreement_with_fp32:.4f}", f"{v.latency_ms_batch_1:.2f}",
            f"{v.latency_ms_batch_n:.2f}", f"{v.file_bytes / 1e6:.2f}",
        )  # fmt: skip
    return table


class ExportCommand(TyperCommand):
    """``export``'s parser. ``--register NAME`` names the model; ``--register`` with no value after it
    (the end, or another option next) names it after the experiment. That is click's optional value
    (``Option(is_flag=False, flag_value=...)``), which this typer's options cannot declare: here a
    ``--register`` without its value is taken out before the options are parsed, and filled in after."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        args, bare = without_bare(args, "--register")
        args, bare_distill = without_bare(args, "--distill")
        rest = super().parse_args(ctx, args)
        if bare:
            ctx.params["register_as"] = ctx.params["experiment"]
        if bare_distill:
            ctx.params["distill"] = ""  # the fastest member's architecture
        return rest


def without_bare(args: list[str], option: str) -> tuple[list[str], bool]:
    """``args`` less each ``option`` that has no value after it, and whether the last ``option`` had none."""
    kept: list[str] = []
    bare = False
    for i, arg in enumerate(args):
        if arg == "--":  # the rest are arguments, whatever they look like
            return [*kept, *args[i:]], bare
        following = args[i + 1] if i + 1 < len(args) else None
        if arg == option and (following is None or following.startswith("-")):
            bare = True
            continue
        if arg == option or arg.startswith(f"{option}="):
            bare = False  # the last one given wins, as for any option
        kept.append(arg)
    return kept, bare


def export(
    experiment: Annotated[str, typer.Argument(help="MLflow experiment of the search")],
    top_k: Annotated[int, typer.Option("--top-k", help="candidate pool: the K best trials")] = 3,
    method: Annotated[
        str, typer.Option("--method", help="mean | weighted | caruana | stacking | auto (fit on validation only)")
    ] = "auto",
    out_dir: Annotated[Path, typer.Option("--out", help="output directory")] = Path("exports"),
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
    finished_only: Annotated[
        bool,
        typer.Option(
            "--finished-only",
            help="only trials that ran all their epochs (default: stopped early ones too, at their best epoch)",
        ),
    ] = False,
    precision: Annotated[
        str,
        typer.Option(
            "--precision", help="the graph shipped: fp32 | fp16 | int8 (static, calibrated on training images)"
        ),
    ] = "fp32",
    batch: Annotated[int, typer.Option("--batch", help="latency is measured at batch 1 and at this batch size")] = 32,
    pick: Annotated[
        str | None,
        typer.Option(
            "--pick",
            help="a serving budget, latency_ms<=X (or latency_ms_batch, model_mb): only Pareto trials, best first "
            "while their summed cost stays within it",
        ),
    ] = None,
    distill: Annotated[
        str | None,
        typer.Option(
            "--distill",
            metavar="[STUDENT]",
            help="ship one student trained on the ensemble's soft targets instead: a timm model "
            "[default: the fastest member's architecture, from its weights]",
        ),
    ] = None,
    distill_epochs: Annotated[
        int | None, typer.Option("--distill-epochs", help="the student's epochs [default: its recipe member's]")
    ] = None,
) -> None:
    """Ensemble the best trials of a search; write OUT/ensemble.onnx and OUT/card.json."""
    from tunefleet.analysis import check_export

    check_export(top_k, method, register_as, precision, batch, pick, distill, distill_epochs)  # before MLflow loads
    from tunefleet.analysis import export_model

    console = out()
    done = export_model(resolve_uri(tracking_uri), experiment, out_dir, top_k=top_k, method=method,
                        search_run_id=search_run, stopped=not finished_only, precision=precision,
                        batch=batch, pick=pick, distill=distill, distill_epochs=distill_epochs,
                        say=console.print)  # fmt: skip
    show_export(done, register_as)
    if pick is not None and done.result.card.variants:
        _pick_measured(pick, done.result.card)


def _pick_measured(pick: str, card: ExportCard) -> None:
    """The budget applies to the trials' own measurements (one thread each, while the search
    trained); the shipped graph, measured here, may differ: say so when it is over."""
    from tunefleet.analysis import Pick

    budget, shipped = Pick.parse(pick), card.variants[-1]
    measured = {"latency_ms": shipped.latency_ms_batch_1, "model_mb": shipped.file_bytes / 1e6}.get(budget.metric)
    if measured is not None and measured > budget.limit:
        out().print(
            f"note: the shipped graph measures {budget.metric}={measured:.4g} here, over the --pick budget "
            f"{budget.limit:g} its members' own measurements met (the ensemble's combination, and this "
            "machine's threads and load, add to them)",
            highlight=False,
        )


def show_export(done: Exported, register_as: str | None) -> None:
    """What ``tunefleet export`` (and ``fit``) print of an export: members and ensemble on the test
    split, the ONNX check, the files, the search run; then it is registered as ``register_as``."""
    from tunefleet.analysis import run_url

    console, card, folder = out(), done.result.card, done.result.out
    console.print(export_table(card))
    if card.variants:
        console.print(variants_table(card))
    diff = card.onnx.max_abs_diff_vs_torch
    what = "ensemble" if card.distilled is None else "student"
    console.print(f"{what} test accuracy {card.ensemble.acc:.4f} · ONNX matches PyTorch (max abs diff {diff:.1e})")
    if card.distilled is not None and card.variants:
        d, fp32 = card.distilled, card.variants[0]
        kept = card.ensemble.acc / d.teacher_test.acc if d.teacher_test.acc else float("nan")
        speedup = d.teacher_latency_ms_batch_1 / fp32.latency_ms_batch_1
        console.print(
            f"the student keeps {kept:.1%} of the ensemble's test accuracy and runs {speedup:.1f}x faster at batch 1 "
            f"({fp32.latency_ms_batch_1:.2f} ms against {d.teacher_latency_ms_batch_1:.2f} ms; fp32, onnxruntime, CPU)"
        )
    console.print(f"wrote {folder / rec.ONNX_FILE} and {folder / rec.CARD_FILE}", highlight=False)
    url = run_url(done.ensemble.tracking_uri, card.experiment_id, card.search_run_id)
    if url:
        console.print(f"search run: {url}", highlight=False, soft_wrap=True)
    if register_as is not None:
        registered = done.ensemble.register(register_as)
        console.print(f"registered {registered.uri} (export run {registered.run_id})", highlight=False)


def report(
    experiment: Annotated[str, typer.Argument(help="MLflow experiment of the search")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="folder [default: reports/EXPERIMENT]")] = None,
    tracking_uri: TrackingUri = None,
    search_run: SearchRun = None,
) -> None:
    """Explain a search: importance, parallel coordinates, curves, confusion, bad cases (PNG + HTML)."""
    from tunefleet.analysis import run_url

    from ..api._search import open_search

    found = open_search(experiment, tracking_uri=tracking_uri, search_run=search_run)
    uri, done = found.tracking_uri, found.report(out_dir or REPORTS_DIR / experiment)
    console = out()
    console.print(done.summary, highlight=False, markup=False, soft_wrap=True)
    for note in done.notes:
        console.print(f"note: {note}", highlight=False)
    console.print(f"wrote {len(done.files)} figures and {done.html}", highlight=False)
    console.print(f"logged as artifacts {done.artifact_path}/ of search run {done.search_run_id}", highlight=False)
    url = run_url(uri, done.experiment_id, done.search_run_id)
    if url:
        console.print(f"search run: {url}", highlight=False, soft_wrap=True)


def predict(
    model: Annotated[str, typer.Argument(help="an export folder, or models:/NAME/VERSION")],
    images: Annotated[list[Path], typer.Argument(help="image files or folders")],
    fmt: Annotated[str, typer.Option("--format", help="table | csv")] = "table",
    tracking_uri: TrackingUri = None,
) -> None:
    """Class and probability per image, through onnxruntime, prepared as the model's card says."""
    from tunefleet.analysis import predict as run_predict

    if fmt not in ("table", "csv"):
        raise SpecError("--format", f"unknown format {fmt!r}; one of: table, csv")
    result = run_predict(model, images, resolve_uri(tracking_uri))
    frame = result.frame[["file", "class", "probability"]] if fmt == "table" else result.frame
    if fmt == "csv":
        typer.echo(frame.to_csv(index=False), nl=False)
    else:
        table = Table(title=f"{len(frame)} images")
        for col in frame.columns:
            table.add_column(col, justify="right" if col == "probability" else "left")
        for row in frame.itertuples(index=False):
            table.add_row(row.file, row[1], f"{row.probability:.4f}")
        out().print(table)
    if result.skipped:
        typer.echo(f"skipped {len(result.skipped)} unreadable image(s):", err=True)
        for path, why in result.skipped:
            typer.echo(f"  {path}: {why}", err=True)
