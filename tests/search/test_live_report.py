"""When the live report refreshes: every ``report_every`` ended trials, once one has completed, and at
most once in ``report_interval_s``; the refresh itself (``tunefleet report``) is tested on the shared
search (tests/analysis/test_report.py)."""

from __future__ import annotations

import pickle
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tunefleet.search.run._live import LiveReport, ReportImportsAhead
from tunefleet.search.tracking._ledger import COMPLETED, TrialLedger, TrialRecord


def _live(tmp_path: Path, every: int, interval_s: float) -> LiveReport:
    ledger = TrialLedger("val_acc", "max")
    ledger.adopt("done", TrialRecord(1, "t01", {}, outcome=COMPLETED))
    live = LiveReport("x", "sqlite:///unused.db", "run", every, interval_s, tmp_path, ledger)
    live.command = [sys.executable, "-c", "pass"]  # the refresh's command line; its work is not under test
    return live


@pytest.mark.parametrize(
    ("every", "interval_s", "refreshes"),
    [(1, 0.0, [1, 2, 3, 4]), (2, 0.0, [0, 2, 2, 4]), (1, 3600.0, [0, 0, 0, 0])],
)
def test_a_refresh_waits_for_its_trials_and_its_interval(tmp_path, every, interval_s, refreshes):
    live = _live(tmp_path, every, interval_s)
    seen = []
    for _ in range(4):
        live.on_trial_complete(0, [], None)
        live.close(wait=True)  # the child exits before the next trial ends, as a quick refresh would
        seen.append(live.refreshed_at)
    assert seen == refreshes


def test_a_restored_callback_restarts_its_clock(tmp_path):
    live = _live(tmp_path, 1, 3600.0)
    live.refreshed_time -= 7200.0  # due by the clock of the process that pickled it
    restored = pickle.loads(pickle.dumps(live))
    restored.on_trial_complete(0, [], None)
    assert restored.refreshed_at == 0  # a new process counts its interval from its own start


AHEAD = """
import sys
from types import SimpleNamespace as T
from tunefleet.analysis._report_modules import REPORT_MODULES
from tunefleet.search.run._live import ReportImportsAhead

ahead = ReportImportsAhead(planned=3)
ahead.on_trial_complete(0, [T(status="TERMINATED"), T(status="RUNNING")], None)  # t03 not created yet
ahead.on_trial_complete(0, [T(status="TERMINATED"), T(status="RUNNING"), T(status="PENDING")], None)  # nor started
assert ahead._thread is None
loaded = [m for m in REPORT_MODULES if m in sys.modules]
assert not loaded, f"imported before the tail: {loaded}"
# every trial started, one ended: the tail
ahead.on_trial_error(0, [T(status="TERMINATED"), T(status="ERROR"), T(status="RUNNING")], None)
thread = ahead._thread
ahead.on_trial_complete(0, [T(status="TERMINATED"), T(status="ERROR"), T(status="TERMINATED")], None)
assert ahead._thread is thread, "a second thread"
ahead.join()
missing = [m for m in REPORT_MODULES if m not in sys.modules]
assert not missing, f"not imported ahead: {missing}"
print("ok")
"""

AHEAD_OF_TWO = """
import sys
from types import SimpleNamespace as T
from tunefleet.analysis._report_modules import FANOVA_MODULES, FIGURE_MODULES
from tunefleet.search.run._live import ReportImportsAhead

ahead = ReportImportsAhead(planned=2)
ahead.on_trial_complete(0, [T(status="TERMINATED"), T(status="RUNNING")], None)
ahead.join()
assert all(m in sys.modules for m in FIGURE_MODULES)
assert not any(m in sys.modules for m in FANOVA_MODULES), "fANOVA needs 3 trials: its import is wasted"
print("ok")
"""


@pytest.mark.parametrize("script", [AHEAD, AHEAD_OF_TWO], ids=["three trials", "two trials"])
def test_the_reports_modules_are_imported_ahead_once_in_the_searchs_tail(script):
    """In a fresh interpreter, so that "imported" means imported by the callback."""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_a_pickled_imports_ahead_callback_carries_no_thread():
    ahead = ReportImportsAhead(planned=1)
    ahead._thread = threading.Thread(target=lambda: None)
    assert pickle.loads(pickle.dumps(ahead))._thread is None
