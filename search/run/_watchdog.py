"""``search.trial_timeout``: a trial that reports nothing for that long is stopped and marked.

A hung trial (a deadlocked collective, a stuck data loader, a frozen process) never reports, so
no scheduler or stopper hears of it: Tune consults those only on results. The watchdog is a Tune
callback that looks at the clock on every step of Tune's loop and kills the actor of a trial that
has been silent for longer than the timeout. Tune then handles it like any lost worker: the trial
restarts from its latest checkpoint while ``search.max_failures`` allows, else it ends failed,
and the ledger marks it ``timed_out`` with the reason.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ray.tune import Callback

from ..tracking._ledger import TrialLedger

logger = logging.getLogger(__name__)


class TrialWatchdog(Callback):
    def __init__(self, timeout_s: float, ledger: TrialLedger) -> None:
        self.timeout_s = timeout_s
        self.ledger = ledger
        self._last_heard: dict[str, float] = {}

    def _heard(self, trial: Any) -> None:
        self._last_heard[trial.trial_id] = time.monotonic()

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._heard(trial)

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: Any, **info: Any) -> None:
        self._heard(trial)

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._last_heard.pop(trial.trial_id, None)  # the clock starts again when it restarts

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._last_heard.pop(trial.trial_id, None)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._last_heard.pop(trial.trial_id, None)

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        now = time.monotonic()
        for trial in trials:
            heard = self._last_heard.get(trial.trial_id)
            if heard is None or now - heard < self.timeout_s or trial.status != "RUNNING":
                continue
            self._stop(trial, now - heard)

    def _stop(self, trial: Any, silent_s: float) -> None:
        import ray

        # The trial's actor handle: Tune keeps it on the trial and exposes no public accessor.
        actor = trial.temporary_state.ray_actor
        self._last_heard.pop(trial.trial_id, None)
        if actor is None:
            return
        reason = f"reported nothing for {silent_s:.0f} s (search.trial_timeout = {self.timeout_s:g} s)"
        logger.warning("trial %s %s: stopping it", trial.trial_id, reason)
        self.ledger.mark_timed_out(trial.trial_id, reason)
        ray.kill(actor, no_restart=True)  # SIGKILL: works on a frozen process too
