"""The live report: while a search runs, its report on the search run is rebuilt every few ended
trials, so the MLflow UI is a live view of the study (as optuna-dashboard and W&B sweeps are).

Off the driver's hot path: the report is ``tunefleet report`` in a child process (its own
interpreter, so its pandas, matplotlib and image decoding never hold the driver's GIL), at most
one at a time, and at most once in ``tracking.report_interval_s`` (a refresh costs seconds of CPU
beside the trials, and a short search's final report comes soon anyway); when one is still
running as the next is due, that refresh is skipped, and the next ended trial tries again. It
reads what the tracking writer has delivered by then (a trial that ended a moment ago may show in
the next refresh). The search's own final report replaces the last live one: when the search
ends, ``close`` lets a refresh still running finish (the two would otherwise write the same files
at once), and stops it when the search was interrupted.
"""

from __future__ import annotations

import importlib
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial

from tunefleet.spaces import records as rec

from ..tracking._ledger import TrialLedger

logger = logging.getLogger(__name__)
FINISH_WAIT_S = 60.0  # the most a finished search waits for a refresh still running
STOP_WAIT_S = 10.0  # for one stopped (interrupted search) to exit


class LiveReport(Callback):
    """Rebuilds the search's report every ``every`` ended trials (completed, stopped, failed) and at
    most once in ``interval_s``, once a trial has completed (a report ranks completed trials)."""

    def __init__(
        self,
        experiment: str,
        uri: str,
        search_run_id: str,
        every: int,  # ended trials between refreshes
        interval_s: float,  # and at least these seconds since the start or the last refresh
        out_dir: Path,
        ledger: TrialLedger,
    ) -> None:
        self.command = [sys.executable, "-m", "tunefleet.search.cli", "report", experiment,
                        "--search-run", search_run_id, "--tracking-uri", uri, "--out", str(out_dir)]  # fmt: skip
        self.every, self.interval_s = every, interval_s
        self.log_path = out_dir / "live-report.log"
        self.ledger = ledger  # the search's ledger (its first callback, so it is current here)
        self.ended = 0
        self.refreshed_at = 0  # trials ended at the last refresh started
        self.refreshed_time = time.monotonic()  # the search's start, then each refresh's
        self._child: subprocess.Popen[bytes] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__ | {"_child": None}  # Tune pickles its callbacks with its state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A clock reading means nothing in another process (or after a reboot): restored, it restarts.
        self.__dict__.update(state, refreshed_time=time.monotonic())

    def _due(self) -> bool:
        if self.ended - self.refreshed_at < self.every:
            return False
        if time.monotonic() - self.refreshed_time < self.interval_s:
            return False
        if not self.ledger.counts()[rec.COMPLETED]:
            return False
        return self._child is None or self._child.poll() is not None

    def _trial_ended(self) -> None:
        self.ended += 1
        if not self._due():
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            try:
                self._child = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL)  # fmt: skip
            except OSError as err:  # a report is a view: never a reason to stop the search
                logger.warning("live report not started: %s", err)
                return
        self.refreshed_at, self.refreshed_time = self.ended, time.monotonic()

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._trial_ended()

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._trial_ended()

    def close(self, wait: bool) -> None:
        """Before the search's final report: let a refresh still running finish (``wait``), or stop it."""
        child, self._child = self._child, None
        if child is None or child.poll() is not None:
            return
        if wait:
            try:
                child.wait(FINISH_WAIT_S)
                return
            except subprocess.TimeoutExpired:
                pass
        child.terminate()
        try:
            child.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


class ReportImportsAhead(Callback):
    """Imports the final report's modules (``report_modules``: scikit-learn where the search has
    trials enough for fANOVA, matplotlib; about 1.2 s on one core) in a thread once the search is
    in its tail: every planned trial has started and one has ended, so a slot has nothing left to
    run. The report after the last trial then starts warm, where it would import them first. A
    search that never gets there (interrupted, or ended by its time budget) imports nothing ahead."""

    def __init__(self, planned: int) -> None:
        self.planned = planned  # the trials the search starts (plan.trials)
        self._thread: threading.Thread | None = None

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__ | {"_thread": None}  # Tune pickles its callbacks (tuner.pkl)

    def _trial_ended(self, trials: list[Any]) -> None:
        # Tune creates trials ahead of their start (random and grid searches, many at once): a
        # pending one will still take a slot.
        started = len(trials) >= self.planned and not any(t.status == Trial.PENDING for t in trials)
        if self._thread is None and started:
            # Not a daemon: an interpreter exiting waits for the imports rather than cutting one off.
            from tunefleet.analysis._report_modules import report_modules

            imports = report_modules(self.planned)
            self._thread = threading.Thread(target=_import_modules, args=(imports,), name="report-imports")
            self._thread.start()

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._trial_ended(trials)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._trial_ended(trials)

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()


def _import_modules(names: tuple[str, ...]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as err:  # the report imports it again and says what is missing
            logger.debug("report module %s not imported ahead: %s", name, err)
