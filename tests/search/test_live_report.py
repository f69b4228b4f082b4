"""When the live report refreshes: every ``report_every`` ended trials, once one has completed, and at
most once in ``report_interval_s``; the refresh itself (``tunefleet report``) is tested on the shared
search (tests/analysis/test_report.py)."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest

from tunefleet.search.run._live import LiveReport
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
