"""``tunefleet fit DATA``: a search planned from the data, a preset and a time, then run, reported
and exported, as ``make demo`` does with a hand-written spec.

The plan is ``tunefleet.search.fit``'s; this module checks the options that need nothing loaded
(before the data is scanned, and so before torch), prints the plan, writes the spec it built,
and then calls what ``tunefleet search`` and ``tunefleet export --register`` call, in that order.
The written spec runs again unchanged with ``tunefleet search``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from tunefleet.spaces import PRESETS, SearchSpec, SpecError, preset_models, spec_from_dict

from ..fit import (
    DIGITS,
    TOP_K,
    FitPlan,
    check_folder,
    check_options,
    final_phase,
    final_search,
    fit_search_spec,
    fit_spec,
    loadable_weights,
    plan_fit,
    plan_lines,
    scan_data,
    spec_header,
)
from ..fit._budget import MIN_FINETUNE_PX
from ._analysis import export, without_bare
from ._console import fail, out
from ._options import REPORTS_DIR, TrackingUri, check_store, exit_with
from ._options import tracking_uri as resolve_uri

EXPORTS_DIR = Path("exports")  # as `make demo` exports: exports/EXPERIMENT


class FitCommand(TyperCommand):
    """``fit``'s parser: ``--register`` with no value after it names the model after the search's
    experiment (``fit-DATA``), which is known only once the data is found: ``""`` until then."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        args, bare = without_bare(args, "--register")
        rest = super().parse_args(ctx, args)
        if bare:
            ctx.params["register_as"] = ""
        return rest


def _seconds(duration: str, metric: str) -> float:
    """``--time`` in seconds and ``--metric`` checked, by the spec's own rules (no heavy import)."""
    fields = {"search.time_budget": "--time", "search.metric": "--metric"}
    try:
        parsed = spec_from_dict({"name": "fit", "search": {"time_budget": duration, "metric": metric}})
    except SpecError as err:
        raise SpecError(fields.get(err.path, err.path), err.message) from None
    assert parsed.search.time_budget is not None  # given above, and refused unless > 0
    return parsed.search.time_budget


def _register_check(register_as: str | None) -> None:
    if register_as:
        from tunefleet.analysis import check_model_name

        check_model_name(register_as)


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
    deadline = time.monotonic()  # plus --time, once it is read
    check_options(preset, gpus)
    total_s = _seconds(duration, metric)
    deadline += total_s
    if data != DIGITS:
        check_folder(data)
    _register_check(register_as)
    scan = scan_data(data)
    loadable = loadable_weights(m.name for m in preset_models(preset)) if scan.typical_px >= MIN_FINETUNE_PX else None
    plan = plan_fit(scan, preset, total_s, gpus, metric, os.cpu_count() or 1, seed=seed, loadable=loadable)
    spec = fit_search_spec(plan)
    console = out()
    for line in plan_lines(plan):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if dry_run:
        return
    uri = resolve_uri(tracking_uri)
    check_store(uri)
    from ..run._driver import run_search
    from ..run._experiment import preflight

    checked = preflight(spec)  # models, data and input size, as `tunefleet search` checks them
    path = write_spec(plan, spec)
    console.print(f"wrote {path} (run it again with: tunefleet search {path})", highlight=False)
    exit_with(run_search(spec, checked, uri, None, storage, console).code)
    _ship(plan, uri, register_as, *_final_phase(plan, uri, storage, deadline))


def write_spec(plan: FitPlan, spec: SearchSpec) -> Path:
    """``reports/fit-NAME/SPEC-NAME.yaml`` (``fit-NAME``, and ``fit-NAME-final`` for the final
    phase): the spec as the search run logs it (``spec.yaml``), under a comment with the plan."""
    path = REPORTS_DIR / plan.name / f"{spec.name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(spec_header(plan, str(path)) + spec.to_yaml())
    return path


def _final_phase(plan: FitPlan, uri: str, storage: str, deadline: float) -> tuple[str, bool]:
    """Run the final phase (``tunefleet.search.fit._final``) when the plan has one and the time
    left allows. Returns the search run to export from, and whether its trials stopped early
    count: the final one's do (a final trial the time budget cut short still has its best
    epoch), the search's do not (ASHA stopped them for being worse)."""
    from tunefleet.analysis import open_experiment, ranking, search_run, trials_frame

    from ..run._driver import run_search
    from ..run._experiment import preflight
    from ..run._warm import warm_start

    client, experiment = open_experiment(uri, plan.name)
    searched = search_run(client, experiment, None)
    if not plan.final_epochs:  # a portfolio's trials that the time budget cut short count
        return searched.info.run_id, plan.portfolio
    metric, mode = ranking(searched)
    trials = trials_frame(client, searched)
    ranked = _candidates(trials, metric, mode, stopped=False)
    left = deadline - time.monotonic() - plan.budget.reserve_s
    final = final_phase(plan, ranked, trials, left)
    console = out()
    if final is None:
        console.print(f"final phase: skipped ({left:.0f}s left is too little to train longer than the search did)")
        return searched.info.run_id, False
    spec = spec_from_dict(final_search(plan, final, fit_spec(plan)))
    path = write_spec(plan, spec)
    console.print(
        f"final phase: {', '.join(final.models)} again for {final.epochs} epochs (~{final.epoch_s:.1f}s an epoch "
        f"measured), {final.time_budget}s; spec {path}",
        highlight=False,
    )
    code = run_search(spec, preflight(spec)._replace(warm=warm_start(uri, spec)), uri, None, storage, console).code
    if code == 130:
        exit_with(code)
    done = search_run(client, experiment, None)
    if code == 0 and len(_candidates(trials_frame(client, done), metric, mode, stopped=True)):
        return done.info.run_id, True
    console.print("final phase: no trial to export; exporting the search's own trials", style="yellow")
    return searched.info.run_id, False


def _candidates(trials: Any, metric: str, mode: str, stopped: bool) -> Any:
    """``finished_trials`` (with ``stopped``, trials stopped early too), empty where it has none."""
    from tunefleet.analysis import finished_trials

    try:
        return finished_trials(trials, metric, mode, stopped)
    except SpecError:
        return trials.iloc[:0]


def _ship(plan: FitPlan, uri: str, register_as: str | None, run_id: str, stopped: bool) -> None:
    """The ensemble of the (up to) ``TOP_K`` best finished trials of search run ``run_id`` (with
    ``stopped``, trials stopped early too), exported and registered as ``tunefleet export``
    does; a search without such a trial has nothing to ship.

    A member that does not reproduce its recorded test logits when rebuilt is refused by export;
    the export then runs again over the K - 1 best, rather than shipping nothing."""
    from tunefleet.analysis import finished_trials, open_experiment, ranking, search_run, trials_frame

    client, experiment = open_experiment(uri, plan.name)
    parent = search_run(client, experiment, run_id)
    metric, mode = ranking(parent)
    try:
        finished = len(finished_trials(trials_frame(client, parent), metric, mode, stopped))
    except SpecError as err:
        fail(f"nothing to export: {err.message}; give it more --time", code=1)
    name = plan.name if register_as == "" else register_as
    for top_k in range(min(TOP_K, finished), 0, -1):
        try:
            export(plan.name, top_k, out_dir=EXPORTS_DIR / plan.name, register_as=name, tracking_uri=uri,
                   search_run=parent.info.run_id, include_stopped=stopped)  # fmt: skip
            return
        except RuntimeError as err:
            if "does not reproduce" not in str(err) or top_k == 1:
                raise
            out().print(f"note: {err}; exporting the {top_k - 1} best without it", style="yellow", highlight=False)
