"""The search driver behind ``tunefleet search`` (and, on a cluster, behind a submitted job).

It opens the search run, starts or joins Ray, runs the Tune experiment with the ledger, MLflow
and console callbacks, and closes every run however the search ends. SIGTERM (``kill``, a job
stop) is handled as Ctrl-C: Tune stops gracefully and trials cut short close as interrupted.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from rich.console import Console

from tunefleet.analysis import run_url
from tunefleet.spaces import MAX_NUM_SAMPLES, SearchSpec
from tunefleet.spaces import records as rec
from tunefleet.spaces.records import COMPLETED, INTERRUPTED, RUNNING, STOPPED
from tunefleet.trainables import RunLink

from .._defaults import REPORTS_DIR
from .._preflight import Plan
from ..resume._adopt import adopt_trials, discard_unsaved
from ..resume._liveness import resume_command
from ..resume._resume import Resumable
from ..tracking._callback import SEARCH_KEY, MlflowTrialCallback
from ..tracking._ledger import TrialLedger
from ..tracking._search_run import search_summary
from ._experiment import experiment_name, experiment_path, resume_experiment, run_experiment
from ._keeper import StateKeeper
from ._live import LiveReport, ReportImportsAhead
from ._opening import open_search
from ._progress import ConsoleProgress, trials_table
from ._ray import stop_ray_soon
from ._watchdog import TrialWatchdog

SERVER_SCHEMES = ("http://", "https://")


class SearchEnd(NamedTuple):
    """How a search ended: its exit code (0 done, 1 every trial failed, 130 interrupted) and its search run."""

    code: int
    run_id: str


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM routed to Tune's graceful-stop handler for SIGINT while the search runs; the
    handler it replaced back afterwards (a notebook's kernel keeps its own)."""
    previous = signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def print_plan(spec: SearchSpec, plan: Plan, console: Console) -> None:
    """What the search will run: trials, searcher, scheduler, data and its path (memory or stream)."""
    s, res = spec.search, spec.resources
    planned = f"grid of {plan.trials} points" if s.searcher == "grid" else f"{plan.trials} trials"
    console.print(
        f"[bold]{spec.name}[/]: {planned} · {s.searcher} searcher · {s.scheduler} scheduler · "
        f"{s.max_epochs} max epochs · ranking by {s.metric} ({s.mode})"
    )
    workers = (
        f" · {res.workers_per_trial} DDP workers per trial (batch and LR scaled: {res.lr_scaling})"
        if res.workers_per_trial > 1
        else ""
    )
    data = f"data: {plan.data} at {spec.data.image_size} px, {plan.cache.describe()}{workers}"
    console.print(data, markup=False, highlight=False)
    if plan.warm is not None:
        console.print(plan.warm.describe(s.metric), markup=False, highlight=False)


def run_search(
    spec: SearchSpec,
    plan: Plan,
    uri: str,
    address: str | None,
    storage: str | Path,
    console: Console,
    resume: Resumable | None = None,
    more: bool = False,
    then_stop_ray: bool = False,
) -> SearchEnd:
    """Run the search (or continue ``resume``, or with ``more`` give the finished ``resume`` more
    trials as a new Tune experiment) to its end: its exit code and search run. ``then_stop_ray``:
    Ray stops (``stop_ray_soon``) while the trials table and the report are written."""
    print_plan(spec, plan, console)
    with _sigterm_as_interrupt():
        name = experiment_name(spec)
        tune_path = resume.tune_path if resume and not more else experiment_path(storage, name)
        tags = {rec.TUNE_PATH_TAG: tune_path} | (_extension_tags(resume) if resume and more else {})
        client, parent_id = open_search(spec, plan, uri, address, tags, resume)
        on_server = uri.startswith(SERVER_SCHEMES)
        ledger = TrialLedger(spec.search.metric, spec.search.mode)
        tracker = MlflowTrialCallback(uri, parent_id, spec, ledger, driver_uploads=not on_server)
        track = spec.tracking
        live = LiveReport(track.experiment, uri, parent_id, track.report_every, track.report_interval_s,
                          REPORTS_DIR / track.experiment, ledger)  # fmt: skip
        ahead = ReportImportsAhead(plan.trials)
        callbacks = [*_callbacks(spec, plan, ledger, tracker, console, live), StateKeeper(tune_path), ahead]
        link = RunLink(uri, parent_id) if on_server else None
        earlier = resume.search_run.data.metrics.get(rec.WALL_S, 0.0) if resume else 0.0  # wall time before
        if resume is None or more:
            experiment = partial(
                run_experiment, spec, callbacks, storage, plan.trials, run_link=link, name=name, warm=plan.warm
            )
        else:
            discard_unsaved(client, resume)
            experiment = partial(resume_experiment, tune_path, spec, callbacks, run_link=link)
        if resume is not None:
            adopt_trials(resume, ledger, tracker)
            summary = _more_summary(ledger, plan) if more else _resume_summary(ledger, resume)
            console.print(f"{'extending' if more else 'resuming'} search run {parent_id}: {summary}", highlight=False)
            if resume.repaired:
                console.print(resume.repaired, style="yellow", highlight=False)
        try:
            status, wall, cut_short = _run_to_end(experiment, ledger, tracker, console, earlier)
        except BaseException:
            live.close(wait=False)
            raise
        if then_stop_ray:
            stop_ray_soon()
        live.close(wait=status == "FINISHED")
        if status == "FINISHED":
            ahead.join()  # the report imports nothing while another thread still does
        console.print(trials_table(ledger))
        if status == "KILLED":
            return SearchEnd(_interrupted(spec, uri, parent_id, cut_short, console), parent_id)
        return SearchEnd(_finished(spec, uri, parent_id, ledger, tracker.experiment_id, wall, console), parent_id)


def _callbacks(
    spec: SearchSpec,
    plan: Plan,
    ledger: TrialLedger,
    tracker: MlflowTrialCallback,
    console: Console,
    live: LiveReport,
) -> list[Any]:
    """Tune's callbacks, in order: the ledger first (the others read it), MLflow, the console, the
    live report when ``tracking.report_every`` is set, and the watchdog when
    ``search.trial_timeout`` is."""
    callbacks: list[Any] = [ledger, tracker, ConsoleProgress(ledger, console, plan.trials)]
    if live.every:
        callbacks.append(live)
    if spec.search.trial_timeout is not None:
        callbacks.append(TrialWatchdog(spec.search.trial_timeout, ledger))
    return callbacks


def _run_to_end(
    experiment: Callable[[], None],
    ledger: TrialLedger,
    tracker: MlflowTrialCallback,
    console: Console,
    earlier_wall_s: float = 0.0,
) -> tuple[str, float, int]:
    """Run the Tune ``experiment``, then close every run however it ended: the search run's status
    (FINISHED, KILLED or, when it raised, FAILED), its wall time in seconds, and how many running
    trials were cut short. What MLflow does not take is spooled, and the console says so."""
    started, status, cut_short = time.perf_counter(), "FAILED", 0
    try:
        experiment()
        # On Ctrl-C Tune stops gracefully and returns: trials still running mean an interruption.
        counts = ledger.counts()
        status = "KILLED" if counts[RUNNING] + counts[INTERRUPTED] else "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
    finally:
        wall = time.perf_counter() - started
        if status != "FINISHED":
            cut_short = tracker.mark_interrupted()
        # Every trial write, then the search run's summary; what MLflow does not take is spooled.
        spooled = tracker.close(search_summary(SEARCH_KEY, ledger, earlier_wall_s + wall, status))
        if spooled is not None:
            console.print(spooled.message(), style="yellow", markup=False, highlight=False)
    return status, wall, cut_short


def _interrupted(spec: SearchSpec, uri: str, parent_id: str, cut_short: int, console: Console) -> int:
    """What an interrupted search kept and how to continue it; exit code 130."""
    console.print(
        f"interrupted: {cut_short} running trial(s) stopped (MLflow status KILLED, outcome interrupted); "
        "finished trials and their checkpoints are kept"
    )
    again = resume_command(spec.tracking.experiment, parent_id, uri)
    console.print(f"continue it with: {again}", highlight=False)
    return 130


def _finished(
    spec: SearchSpec, uri: str, parent_id: str, ledger: TrialLedger, experiment_id: str, wall: float, console: Console
) -> int:
    """The best trial, the report and where to look; exit code 0, or 1 when every trial failed."""
    best, counts, metric = ledger.best_record(), ledger.counts(), spec.search.metric
    if best is not None:
        console.print(f"best: {best.name}  {metric}={best.best[metric]:.4f}")
    console.print(
        f"wall time {wall:.1f}s · MLflow experiment [bold]{spec.tracking.experiment}[/] (search run {parent_id})"
    )
    if counts[COMPLETED]:
        _report(spec.tracking.experiment, uri, parent_id, console)
    url = run_url(uri, experiment_id, parent_id)  # no request: the server may be the one that is down
    console.print(f"open the results: {url or f'mlflow ui --backend-store-uri {uri}'}", highlight=False)
    return 0 if counts[COMPLETED] + counts[STOPPED] else 1


def _report(experiment: str, uri: str, parent_id: str, console: Console) -> None:
    """The search's report (``tunefleet report``), logged to its run. The search is done and
    recorded by now: a report that cannot be made is a warning, never a failed search."""
    try:
        from tunefleet.analysis import build_report

        done = build_report(uri, experiment, REPORTS_DIR / experiment, parent_id)
    except Exception as err:
        console.print(f"no report: {err}; make it later with: tunefleet report {experiment}", style="yellow")
        return
    console.print(f"report: {done.html} (also on the search run, under {done.artifact_path}/)", highlight=False)


def _extension_tags(finished: Resumable) -> dict[str, str]:
    """What the search run records about a --more: the count, and when this Tune experiment began."""
    count = int(finished.search_run.data.tags.get(rec.EXTENSIONS_TAG, 0)) + 1
    return {rec.EXTENSIONS_TAG: str(count), rec.SEGMENT_START_TAG: str(int(time.time() * 1000))}


def _more_summary(ledger: TrialLedger, plan: Plan) -> str:
    more = f"up to {plan.trials}" if plan.trials >= MAX_NUM_SAMPLES else str(plan.trials)
    return f"{len(ledger.records)} earlier trial(s) kept as they are; {more} more"


def _resume_summary(ledger: TrialLedger, resume: Resumable) -> str:
    counts = ledger.counts()
    ended = sum(v for k, v in counts.items() if k not in (RUNNING, INTERRUPTED))
    text = f"{ended} trial(s) ended and are kept as they are, {counts[INTERRUPTED]} continue from their checkpoints"
    if resume.unsaved:
        names = ", ".join(str(r.info.run_name) for r in resume.unsaved)
        text += f"; {len(resume.unsaved)} started after Ray Tune last saved its state ({names}) start again"
    return text
