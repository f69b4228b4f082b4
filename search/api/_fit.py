"""``tunefleet.fit`` and ``tunefleet fit DATA``: a search planned from the data, a preset and a
time (``tunefleet.search.fit``), then run, reported and exported, as ``make demo`` does with a
hand-written spec. The CLI prints the same plan and calls the same two steps: ``plan_fit_run``
(checks that need nothing loaded, then the data scan) and ``run_fit``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from tunefleet.spaces import SearchSpec, SpecError, preset_models, spec_from_dict

from .._defaults import REPORTS_DIR, check_store
from .._defaults import tracking_uri as resolve_uri
from .._preflight import preflight
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
from ._search import STORAGE, SearchFailed, SearchInterrupted, console_here

if TYPE_CHECKING:
    from tunefleet.analysis import Ensemble, Exported

EXPORTS_DIR = Path("exports")  # as `make demo` exports: exports/EXPERIMENT


@dataclass(frozen=True)
class FitRun:
    """A fit planned and checked: the plan, the search spec built from it, and when its time ends."""

    plan: FitPlan
    spec: SearchSpec
    deadline: float  # time.monotonic() at which --time is spent


def _seconds(duration: str, metric: str) -> float:
    """``--time`` in seconds and ``--metric`` checked, by the spec's own rules (no heavy import)."""
    fields = {"search.time_budget": "--time", "search.metric": "--metric"}
    try:
        parsed = spec_from_dict({"name": "fit", "search": {"time_budget": duration, "metric": metric}})
    except SpecError as err:
        raise SpecError(fields.get(err.path, err.path), err.message) from None
    assert parsed.search.time_budget is not None  # given above, and refused unless > 0
    return parsed.search.time_budget


def plan_fit_run(
    data: str, duration: str, preset: str, metric: str, gpus: int, register_as: str | None, seed: int
) -> FitRun:
    """Every check ``fit`` makes before it starts anything, then the plan; ``SpecError`` names the option."""
    deadline = time.monotonic()  # plus --time, once it is read
    check_options(preset, gpus)
    total_s = _seconds(duration, metric)
    if data != DIGITS:
        check_folder(data)
    if register_as:
        from tunefleet.analysis import check_model_name

        check_model_name(register_as)
    scan = scan_data(data)
    loadable = loadable_weights(m.name for m in preset_models(preset)) if scan.typical_px >= MIN_FINETUNE_PX else None
    plan = plan_fit(scan, preset, total_s, gpus, metric, os.cpu_count() or 1, seed=seed, loadable=loadable)
    return FitRun(plan, fit_search_spec(plan), deadline + total_s)


def run_fit(
    planned: FitRun, uri: str | None, storage: str, register_as: str | None, console: Console, show: Callable[..., Any]
) -> Exported:
    """Search, train the best again when the plan says so, report, export (and register): the
    shipped ensemble. ``show(exported, register_as)`` shows the export as ``tunefleet export``
    does and registers it."""
    resolved = resolve_uri(uri)
    check_store(resolved)
    from ..run._driver import run_search

    checked = preflight(planned.spec)  # models, data and input size, as `tunefleet search` checks them
    path = write_spec(planned.plan, planned.spec)
    console.print(f"wrote {path} (run it again with: tunefleet search {path})", highlight=False)
    _raise_for(run_search(planned.spec, checked, resolved, None, storage, console).code)
    run_id = _final_phase(planned.plan, resolved, storage, planned.deadline, console)
    return _ship(planned.plan, resolved, register_as, run_id, console, show)


def _raise_for(code: int) -> None:
    if code == 130:
        raise SearchInterrupted("fit interrupted; its search is kept: `tunefleet resume` continues it")
    if code == 1:
        raise SearchFailed("every trial failed; see the errors above")


def write_spec(plan: FitPlan, spec: SearchSpec) -> Path:
    """``reports/fit-NAME/SPEC-NAME.yaml`` (``fit-NAME``, and ``fit-NAME-final`` for the final
    phase): the spec as the search run logs it (``spec.yaml``), under a comment with the plan."""
    path = REPORTS_DIR / plan.name / f"{spec.name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(spec_header(plan, str(path)) + spec.to_yaml())
    return path


def _final_phase(plan: FitPlan, uri: str, storage: str, deadline: float, console: Console) -> str:
    """Run the final phase (``tunefleet.search.fit._final``) when the plan has one and the time
    left allows. Returns the search run to export from. The final phase retrains the search's
    best trials that ran all their epochs (one ASHA stopped was stopped for being worse)."""
    from tunefleet.analysis import open_experiment, ranking, search_run, trials_frame

    from ..run._driver import run_search
    from ..run._warm import warm_start

    client, experiment = open_experiment(uri, plan.name)
    searched = search_run(client, experiment, None)
    if not plan.final_epochs:
        return searched.info.run_id
    metric, mode = ranking(searched)
    trials = trials_frame(client, searched)
    ranked = _candidates(trials, metric, mode, stopped=False)
    left = deadline - time.monotonic() - plan.budget.reserve_s
    final = final_phase(plan, ranked, trials, left)
    if final is None:
        console.print(f"final phase: skipped ({left:.0f}s left is too little to train longer than the search did)")
        return searched.info.run_id
    spec = spec_from_dict(final_search(plan, final, fit_spec(plan)))
    path = write_spec(plan, spec)
    console.print(
        f"final phase: {', '.join(final.models)} again for {final.epochs} epochs (~{final.epoch_s:.1f}s an epoch "
        f"measured), {final.time_budget}s; spec {path}",
        highlight=False,
    )
    code = run_search(spec, preflight(spec)._replace(warm=warm_start(uri, spec)), uri, None, storage, console).code
    if code == 130:
        _raise_for(code)
    done = search_run(client, experiment, None)
    if code == 0 and len(_candidates(trials_frame(client, done), metric, mode, stopped=True)):
        return done.info.run_id
    console.print("final phase: no trial to export; exporting the search's own trials", style="yellow")
    return searched.info.run_id


def _candidates(trials: Any, metric: str, mode: str, stopped: bool) -> Any:
    """``finished_trials`` (with ``stopped``, trials stopped early too), empty where it has none."""
    from tunefleet.analysis import finished_trials

    try:
        return finished_trials(trials, metric, mode, stopped)
    except SpecError:
        return trials.iloc[:0]


def _ship(
    plan: FitPlan,
    uri: str,
    register_as: str | None,
    run_id: str,
    console: Console,
    show: Callable[..., Any],
) -> Exported:
    """The ensemble of the (up to) ``TOP_K`` best trials of search run ``run_id`` (stopped early
    or not: the export's pool, so a search the time budget cut short still ships), exported and
    registered as ``tunefleet export`` does; a search without such a trial has nothing to ship.

    A member that does not reproduce its recorded test logits when rebuilt is refused by export;
    the export then runs again over the K - 1 best, rather than shipping nothing."""
    from tunefleet.analysis import export_model, finished_trials, open_experiment, ranking, search_run, trials_frame

    client, experiment = open_experiment(uri, plan.name)
    parent = search_run(client, experiment, run_id)
    metric, mode = ranking(parent)
    try:
        finished = len(finished_trials(trials_frame(client, parent), metric, mode, stopped=True))
    except SpecError as err:
        raise SearchFailed(f"nothing to export: {err.message}; give it more --time") from None
    name = plan.name if register_as == "" else register_as
    for top_k in range(min(TOP_K, finished), 0, -1):
        try:
            done = export_model(uri, plan.name, EXPORTS_DIR / plan.name, top_k=top_k, search_run_id=run_id,
                                say=console.print)  # fmt: skip
        except RuntimeError as err:
            if "does not reproduce" not in str(err) or top_k == 1:
                raise
            console.print(f"note: {err}; exporting the {top_k - 1} best without it", style="yellow", highlight=False)
            continue
        show(done, name)
        return done
    raise AssertionError("unreachable: finished >= 1 here")


def fit(
    data: str | Path,
    *,
    time: str = "30m",
    preset: str = "balanced",
    metric: str = "val_acc",
    gpus: int = 0,
    register: str | None = None,
    tracking_uri: str | None = None,
    storage: str = STORAGE,
    seed: int = 0,
) -> Ensemble:
    """``tunefleet fit``: search the model zoo for ``data`` (an image folder, or ``"digits"``)
    within ``time`` (``"90s"``, ``"30m"``, ``"2h"``), report, and export the best trials as one
    ONNX ensemble (registered as ``register``). Prints the plan and the progress as the CLI does.

    >>> model = tunefleet.fit("data/pets", time="20m")   # doctest: +SKIP
    """
    console = console_here()
    planned = plan_fit_run(str(data), time, preset, metric, gpus, register, seed)
    for line in plan_lines(planned.plan):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    return run_fit(planned, tracking_uri, storage, register, console, show=_register_only).ensemble


def _register_only(done: Exported, name: str | None) -> None:
    """``fit``'s ``show`` from Python: the caller has the ``Ensemble``; only the registry step is left."""
    if name is not None:
        done.ensemble.register(name)
