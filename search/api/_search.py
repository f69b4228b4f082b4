"""Searches from Python: ``tune`` runs one, ``open_search`` finds one that ran earlier or elsewhere;
both hand back a ``Search`` to read, report, export and resume.

The CLI's ``search``, ``resume``, ``trials``, ``report`` and ``export`` call these same functions
(``prepare``, ``launch``, ``continue_search``, ``Search``), so a notebook and a terminal cannot
drift apart. Errors are the CLI's: bad input is one ``SpecError`` line naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from tunefleet.spaces import SearchSpec, SpecError, read_spec
from tunefleet.spaces import records as rec

from .._defaults import REPORTS_DIR, check_store
from .._defaults import tracking_uri as resolve_uri
from .._preflight import Plan, preflight

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.entities import Run

    from tunefleet.analysis import Ensemble, Report

    from ..run._driver import SearchEnd

SpecSource = str | Path | dict[str, Any] | SearchSpec


@dataclass(frozen=True)
class TrialTable:
    """A search's trials as ``tunefleet trials`` shows them (``Search.table``)."""

    frame: pd.DataFrame
    column: str  # what the rows are sorted by
    state: str  # running | finished | interrupted
    metric: str  # the search's ranking metric
    mode: str  # max | min
    experiment_id: str


STORAGE = "tunefleet-runs"  # Ray Tune's state and checkpoints, as `tunefleet search --storage`


@dataclass(frozen=True)
class Prepared:
    """A search checked and ready to run: the spec, the MLflow store, and the plan (trials, data, warm start)."""

    spec: SearchSpec
    uri: str
    plan: Plan


def search_overrides(
    num_samples: int | None, searcher: str | None, scheduler: str | None, experiment: str | None,
    warm_start: list[str] | None,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """The spec values ``tunefleet search``'s flags (and ``tune``'s keywords) replace; None keeps the spec's."""
    return {
        "search": {"num_samples": num_samples, "searcher": searcher, "scheduler": scheduler, "warm_start": warm_start},
        "tracking": {"experiment": experiment},
    }


def prepare(source: SpecSource, overrides: dict[str, dict[str, Any]], uri: str | None) -> Prepared:
    """Everything ``tunefleet search`` checks before it starts anything: the spec, the store's
    folder, model names, data, input size, the warm start's experiments."""
    spec = read_spec(source, overrides)
    resolved = resolve_uri(uri, spec.tracking.uri)
    check_store(resolved)
    from ..run._warm import warm_start

    return Prepared(spec, resolved, preflight(spec)._replace(warm=warm_start(resolved, spec)))


def launch(
    prepared: Prepared, address: str | None, storage: str | Path, console: Console, then_stop_ray: bool = False
) -> SearchEnd:
    """Run a prepared search to its end (Ctrl-C or SIGTERM stops it gracefully, resumable);
    ``then_stop_ray``: the caller needs Ray no more once the trials have ended (the CLI)."""
    from ..run._driver import run_search

    return run_search(
        prepared.spec, prepared.plan, prepared.uri, address, storage, console, then_stop_ray=then_stop_ray
    )


def continue_search(
    uri: str,
    experiment: str,
    search_run: str | None,
    address: str | None,
    console: Console,
    more: int | None = None,
    more_time: str | None = None,
    then_stop_ray: bool = False,
) -> SearchEnd:
    """``tunefleet resume``: an interrupted search from where it stopped; with ``more`` /
    ``more_time``, a finished one given more trials or time in the same search run (its trials
    the searcher's history, none run again); ``then_stop_ray`` as ``launch``."""
    if more is None and more_time is None:
        from ..resume._resume import find_resumable

        point = find_resumable(uri, experiment, search_run)  # MLflow and Tune's state, before Ray or torch
        from ..run._driver import run_search

        plan = preflight(point.spec)
        return run_search(
            point.spec, plan, uri, address, point.tune_path, console, resume=point, then_stop_ray=then_stop_ray
        )
    from ..resume._resume import find_extendable

    point = find_extendable(uri, experiment, search_run, more, more_time)
    from ..run._driver import run_search
    from ..run._warm import own_history

    plan = preflight(point.spec)._replace(warm=own_history(point.spec, point.trials, experiment))
    storage = point.tune_path.rstrip("/").rsplit("/", 1)[0] or STORAGE
    return run_search(
        point.spec, plan, uri, address, storage, console, resume=point, more=True, then_stop_ray=then_stop_ray
    )


class SearchFailed(RuntimeError):
    """A search ran and nothing came of it: every trial failed, or none finished to export (CLI exit code 1)."""


class SearchInterrupted(KeyboardInterrupt):
    """Ctrl-C, SIGTERM or a job stop ended a search early; it can be resumed (CLI exit code 130)."""


def ended(end: SearchEnd, experiment: str, uri: str) -> Search:
    """The ``Search`` a run ended with; Python's way to say what the CLI's exit codes say."""
    if end.code == 130:
        again = f"tunefleet.open({experiment!r}, search_run={end.run_id!r}, tracking_uri={uri!r}).resume()"
        raise SearchInterrupted(f"search interrupted; continue it with {again}")
    if end.code == 1:
        raise SearchFailed(f"every trial of search run {end.run_id} failed; see the errors above")
    return Search(experiment, end.run_id, uri)


class Search:
    """A search recorded in MLflow: its trials, best trial, report and export.

    >>> found = tunefleet.open("digits-demo")          # doctest: +SKIP
    >>> found.trials().head()                          # doctest: +SKIP
    >>> model = found.export(top_k=3)                  # doctest: +SKIP
    """

    def __init__(self, experiment: str, run_id: str, tracking_uri: str) -> None:
        self.experiment = experiment
        self.run_id = run_id
        self.tracking_uri = tracking_uri

    def _run(self) -> Run:
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri).get_run(self.run_id)

    @property
    def experiment_id(self) -> str:
        return str(self._run().info.experiment_id)

    @property
    def state(self) -> str:
        """``running`` (its driver is alive), ``finished``, or ``interrupted`` (``resume`` continues it)."""
        from ..resume._liveness import search_state

        return search_state(self._run())

    @property
    def metric(self) -> tuple[str, str]:
        """The metric trials are ranked by, and ``max`` or ``min``."""
        from tunefleet.analysis import ranking

        metric, mode = ranking(self._run())
        return metric, mode

    def table(self, sort: str | None = None, top: int | None = None, pareto: bool = False) -> TrialTable:
        """``trials()`` with what it was read from: the sort column, the search's state and
        ranking metric (``tunefleet trials`` prints all of it), from one read of the search run;
        ``pareto``: only the trials on the Pareto front (``pareto()``)."""
        if top is not None and top < 1:
            raise SpecError("--top", f"must be >= 1, got {top}")
        from mlflow.tracking import MlflowClient

        from tunefleet.analysis import front_objectives, ordered, pareto_front, ranking, sort_column, trials_frame

        from ..resume._liveness import search_state

        run = self._run()
        frame, state = trials_frame(MlflowClient(tracking_uri=self.tracking_uri), run), search_state(run)
        metric, mode = ranking(run)
        if state == "interrupted" and len(frame):  # runs a dead driver left RUNNING were cut short
            frame.loc[frame["status"] == "RUNNING", "outcome"] = rec.INTERRUPTED
        column = sort_column(frame, sort, metric)
        if pareto:
            frame = pareto_front(frame, front_objectives(run, frame))
        return TrialTable(ordered(frame, column, top), column, state, metric, mode, str(run.info.experiment_id))

    def pareto(self) -> pd.DataFrame:
        """The trials on the Pareto front of the search's objectives (``search.objectives``; a
        one-objective search that measured serving cost: its metric against ``latency_ms``), best
        first by the search's metric (``tunefleet trials --pareto``)."""
        return self.table(pareto=True).frame

    def trials(self, sort: str | None = None, top: int | None = None) -> pd.DataFrame:
        """One row per trial (params, metrics, outcome, duration, node), best first by ``sort``
        (default: the search's metric; ``val_loss`` means each trial's best): the table
        ``tunefleet trials`` prints, with every column."""
        return self.table(sort, top).frame

    @property
    def best(self) -> pd.Series:
        """The best trial that finished (all its epochs, or stopped early by the scheduler): the
        first row of ``trials()`` that did. A search with no such trial raises ``SpecError``."""
        from tunefleet.analysis import finished_trials

        read = self.table()
        return finished_trials(read.frame, read.metric, read.mode, stopped=True).iloc[0]

    def report(self, out: str | Path | None = None) -> Report:
        """The search explained (``tunefleet report``): figures written to ``out`` (default
        ``reports/EXPERIMENT``) and logged to the search run; shown inline in Jupyter."""
        from tunefleet.analysis import build_report

        return build_report(self.tracking_uri, self.experiment, Path(out or REPORTS_DIR / self.experiment), self.run_id)

    def export(
        self,
        top_k: int = 3,
        method: str = "auto",
        out: str | Path | None = None,
        finished_only: bool = False,
        register: str | None = None,
        precision: str = "fp32",
        batch: int = 32,
        pick: str | None = None,
        distill: str | None = None,
        distill_epochs: int | None = None,
    ) -> Ensemble:
        """The ``top_k`` best trials as one ONNX ensemble in ``out`` (default ``exports/EXPERIMENT``),
        combined by ``method`` (fit on validation predictions only), registered as ``register``.
        Every trial with a best epoch is a candidate, stopped early or not; ``finished_only``
        keeps to the trials that ran all their epochs. ``precision`` (fp32, fp16, int8) is the
        graph shipped; the card's ``variants`` give its accuracy, size and latency at batch 1 and
        ``batch`` beside fp32's. ``pick`` (``"latency_ms<=5"``, ``"model_mb<=20"``) keeps the pool to
        the Pareto trials (``pareto()``), best first while their summed cost stays within it.
        ``distill`` ships one student trained on the ensemble's soft targets instead: a timm name,
        or ``""`` for the fastest member's architecture, started from its weights;
        ``card.distilled`` compares it with the ensemble it replaces."""
        from tunefleet.analysis import check_export, export_model

        check_export(top_k, method, register, precision, batch, pick, distill, distill_epochs)
        folder = Path(out or Path("exports") / self.experiment)
        done = export_model(self.tracking_uri, self.experiment, folder, top_k=top_k, method=method,
                            search_run_id=self.run_id, stopped=not finished_only,
                            precision=precision, batch=batch, pick=pick, distill=distill,
                            distill_epochs=distill_epochs)  # fmt: skip
        if register is not None:
            done.ensemble.register(register)
        return done.ensemble

    def resume(self, address: str | None = None, more: int | None = None, more_time: str | None = None) -> Search:
        """Continue this search after an interruption; with ``more`` / ``more_time``, give a finished one more."""
        end = continue_search(self.tracking_uri, self.experiment, self.run_id, address, console_here(), more, more_time)
        return ended(end, self.experiment, self.tracking_uri)

    def __repr__(self) -> str:
        return f"Search({self.experiment!r}, run_id={self.run_id!r}, tracking_uri={self.tracking_uri!r})"


def console_here() -> Console:
    """Progress lines as the CLI prints them; in Jupyter rich renders them in the cell's output."""
    console = Console()
    return console if console.is_jupyter or console.is_terminal else Console(width=160)


def tune(
    spec: SpecSource,
    *,
    num_samples: int | None = None,
    searcher: str | None = None,
    scheduler: str | None = None,
    experiment: str | None = None,
    warm_start: list[str] | None = None,
    address: str | None = None,
    tracking_uri: str | None = None,
    storage: str | Path = STORAGE,
) -> Search:
    """Run a search (``tunefleet search``) and return it once it has ended.

    ``spec`` is a YAML path, its document as a dict, or a ``SearchSpec``; the keywords replace the
    spec's values as the CLI's flags do. Blocks, printing the CLI's progress lines; Ctrl-C (a
    kernel interrupt) stops the search gracefully and raises ``KeyboardInterrupt`` (continue it
    with ``tunefleet.open(...).resume()``). Bad input raises ``SpecError`` before anything starts.

    >>> search = tunefleet.tune("examples/digits.yaml", num_samples=4)   # doctest: +SKIP
    """
    prepared = prepare(spec, search_overrides(num_samples, searcher, scheduler, experiment, warm_start), tracking_uri)
    return ended(launch(prepared, address, storage, console_here()), prepared.spec.tracking.experiment, prepared.uri)


def open_search(experiment: str, *, tracking_uri: str | None = None, search_run: str | None = None) -> Search:
    """A search run earlier or elsewhere: ``search_run`` (an id), else the experiment's latest."""
    from tunefleet.analysis import open_experiment
    from tunefleet.analysis import search_run as find_search

    uri = resolve_uri(tracking_uri)
    client, exp = open_experiment(uri, experiment)
    return Search(experiment, find_search(client, exp, search_run).info.run_id, uri)
