"""``tunefleet fit DATA``: a search planned from the data, a preset and a time, then run, reported
and exported, as ``make demo`` does with a hand-written spec.

The work is ``tunefleet.search.api._fit``'s (``tunefleet.fit`` from Python): this module parses
the options, prints the plan, and prints the export as ``tunefleet export`` does. The written spec
runs again unchanged with ``tunefleet search``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from tunefleet.spaces import PRESETS

from ._analysis import show_export, without_bare
from ._console import out
from ._options import TrackingUri


class FitCommand(TyperCommand):
    """``fit``'s parser: ``--register`` with no value after it names the model after the search's
    experiment (``fit-DATA``), which is known only once the data is found: ``""`` until then."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        args, bare = without_bare(args, "--register")
        rest = super().parse_args(ctx, args)
        if bare:
            ctx.params["register_as"] = ""
        return rest


def fit(
    data: Annotated[
        str, typer.Argument(help="an image folder (root/<class>/*.png, or root/train|val[|test]/...) or 'digits'")
    ],
    duration: Annotated[str, typer.Option("--time", help="all of it, search and export: 90s, 30m, 2h")] = "30m",
    preset: Annotated[str, typer.Option(help=" | ".join(PRESETS))] = "balanced",
    metric: Annotated[str, typer.Option(help="rank trials by: val_acc, val_loss, val_f1, ...")] = "val_acc",
    gpus: Annotated[int, typer.Option(help="GPUs on this machine to use (one trial each); 0: CPUs only")] = 0,
    register_as: Annotated[
        str | None,
        typer.Option("--register", metavar="[NAME]", help="register the ensemble as NAME (NAME left out: fit-DATA)"),
    ] = None,
    tracking_uri: TrackingUri = None,
    storage: Annotated[str, typer.Option(help="Ray Tune's state and checkpoints")] = "tunefleet-runs",
    seed: Annotated[int, typer.Option(help="the search's seed (search.seed)")] = 0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan; start and write nothing")] = False,
) -> None:
    """Search the model zoo for DATA within --time, then report and export the best trials as one ONNX ensemble."""
    from ..api._fit import plan_fit_run, run_fit
    from ..fit import plan_lines

    planned = plan_fit_run(data, duration, preset, metric, gpus, register_as, seed)
    console = out()
    for line in plan_lines(planned.plan):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if not dry_run:
        run_fit(planned, tracking_uri, storage, register_as, console, show=show_export)
