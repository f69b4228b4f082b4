"""What a person watching the terminal sees: one line per trial event, then a table of all trials."""

from __future__ import annotations

from typing import Any

from ray.tune import Callback
from rich.console import Console
from rich.table import Table

from tunefleet.spaces.records import COMPLETED, FAILED, INTERRUPTED, RUNNING, STOPPED, TIMED_OUT

from ..tracking._ledger import TrialLedger, TrialRecord

_STYLE = {COMPLETED: "green", STOPPED: "yellow", FAILED: "red", TIMED_OUT: "red", RUNNING: "cyan", INTERRUPTED: "cyan"}


class ConsoleProgress(Callback):
    def __init__(self, ledger: TrialLedger, console: Console, total: int) -> None:
        self.ledger, self.console, self.total = ledger, console, total

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the experiment state; a console holds a lock.
        return {**self.__dict__, "console": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.console = Console()

    def _status_line(self) -> str:
        c = self.ledger.counts()
        best = self.ledger.best_record()
        best_text = (
            f"best {self.ledger.metric}={best.best[self.ledger.metric]:.4f} ({best.name.split()[0]})" if best else ""
        )
        return (
            f"running {c[RUNNING]} · done {c[COMPLETED]} · stopped early {c[STOPPED]}"
            f" · failed {c[FAILED] + c[TIMED_OUT]}"
            f" of {self.total} · {best_text}"
        )

    def _event(self, rec: TrialRecord, what: str) -> None:
        style = _STYLE.get(rec.outcome, "white")
        self.console.print(f"[{style}]{what:>13}[/] {rec.name:<34} [dim]{self._status_line()}[/]")

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        rec = self.ledger.record(trial)
        if rec.restarts == 0:  # a restart has its own line (on_trial_recover)
            self._event(rec, "resumed" if rec.epochs else "started")

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        rec = self.ledger.record(trial)
        self._event(rec, f"{rec.outcome.replace('_', ' ')} @{rec.epochs}")

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        rec = self.ledger.record(trial)
        self._event(rec, rec.outcome.replace("_", " "))
        self.console.print(f"              {rec.error}", style="red", markup=False, highlight=False)

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        rec = self.ledger.record(trial)
        self._event(rec, f"restart {rec.restarts}")
        line = f"              {rec.error}; restarting from its latest checkpoint"
        self.console.print(line, style="yellow", markup=False, highlight=False)


def trials_table(ledger: TrialLedger) -> Table:
    """All trials, best first, with how each ended."""
    metric = ledger.metric
    sign = -1 if ledger.mode == "max" else 1
    rows = sorted(ledger.records.values(), key=lambda r: (metric not in r.best, sign * r.best.get(metric, 0.0)))
    table = Table(title="trials", show_lines=False)
    for col in ("trial", "outcome", "epochs", f"best {metric}", "best epoch", "test_acc"):
        table.add_column(col, justify="left" if col in ("trial", "outcome") else "right")
    for r in rows:
        table.add_row(
            r.name,
            f"[{_STYLE[r.outcome]}]{r.outcome}[/]",
            str(r.epochs),
            f"{r.best[metric]:.4f}" if metric in r.best else "-",
            str(int(r.best["epoch"])) if r.best else "-",
            f"{r.best['test_acc']:.4f}" if "test_acc" in r.best else "-",
        )
    return table
