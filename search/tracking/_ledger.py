"""The driver's book of trials: a readable name, latest and best results, and how each ended.

One ``TrialLedger`` (a Ray Tune callback with no I/O) is shared by the MLflow and the console
callbacks, so both name a trial the same way and agree on its outcome.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.tune import Callback

from tunefleet.spaces import resolve
from tunefleet.spaces.records import COMPLETED, FAILED, INTERRUPTED, IS_LAST, RUNNING, STOPPED, TEST_ACC, TIMED_OUT


def run_name(index: int, recipe: dict[str, Any]) -> str:
    """A name a person can scan in a list: ``t07 adamw lr=3.2e-03 bs=64``."""
    return f"t{index:02d} {recipe['optimizer']['name']} lr={recipe['lr']:.1e} bs={recipe['batch_size']}"


def _error_reason(trial: Any) -> str:
    """The exception line (``FloatingPointError: train loss became nan ...``) of a failed trial.

    Tune writes the error to the trial's local directory at once and to storage later, so the
    local file is read first.
    """
    text = ""
    if trial.error_file and Path(trial.error_file).is_file():
        text = Path(trial.error_file).read_text(errors="replace")
    text = text or str(trial.get_error() or "")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    raised = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception|Interrupt)\b", ln)]
    return (raised or lines or ["unknown error"])[-1]


@dataclass
class TrialRecord:
    index: int
    name: str
    recipe: dict[str, Any]
    outcome: str = RUNNING
    epochs: int = 0
    last: dict[str, Any] = field(default_factory=dict)
    best: dict[str, Any] = field(default_factory=dict)  # the report that came with the best checkpoint
    error: str = ""
    restarts: int = 0  # times Tune restarted it after a failure (search.max_failures)
    timed_out: str = ""  # why the watchdog stopped its latest attempt, until it restarts

    @property
    def ended(self) -> bool:
        return self.outcome not in (RUNNING, INTERRUPTED)


class TrialLedger(Callback):
    def __init__(self, metric: str, mode: str) -> None:
        self.metric, self.mode = metric, mode
        self.records: dict[str, TrialRecord] = {}

    def record(self, trial: Any) -> TrialRecord:
        if trial.trial_id not in self.records:  # Tune fails a trial whose actor never started unannounced
            self.on_trial_start(0, [], trial)
        return self.records[trial.trial_id]

    def adopt(self, trial_id: str, record: TrialRecord) -> None:
        """A trial of the search this one resumes (read back from MLflow)."""
        self.records[trial_id] = record

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        record = self.records.get(trial.trial_id)
        if record is None:
            recipe = resolve(trial.config)
            index = len(self.records) + 1
            self.records[trial.trial_id] = TrialRecord(index, run_name(index, recipe), recipe)
        elif record.outcome == INTERRUPTED:  # resumed
            record.outcome = RUNNING

    def mark_timed_out(self, trial_id: str, reason: str) -> None:
        self.records[trial_id].timed_out = reason

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        rec = self.record(trial)
        rec.restarts += 1
        rec.error = rec.timed_out or _error_reason(trial)  # the latest failure, until the trial ends
        rec.timed_out = ""

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        rec = self.record(trial)
        rec.last = result
        rec.epochs = int(result.get("epoch", rec.epochs))
        if TEST_ACC in result:  # only reports that carried a (new best) checkpoint have test metrics
            rec.best = result

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        rec = self.record(trial)
        if not rec.ended:  # a trial that had ended before a resume keeps its outcome
            rec.outcome = COMPLETED if rec.last.get(IS_LAST) else STOPPED

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        rec = self.record(trial)
        if rec.ended:
            return
        rec.outcome = TIMED_OUT if rec.timed_out else FAILED
        rec.error = rec.timed_out or _error_reason(trial)

    def best_record(self) -> TrialRecord | None:
        scored = [r for r in self.records.values() if self.metric in r.best]
        if not scored:
            return None
        sign = 1 if self.mode == "max" else -1
        return max(scored, key=lambda r: sign * r.best[self.metric])

    def counts(self) -> dict[str, int]:
        out = {RUNNING: 0, COMPLETED: 0, STOPPED: 0, FAILED: 0, TIMED_OUT: 0, INTERRUPTED: 0}
        for r in self.records.values():
            out[r.outcome] += 1
        return out
