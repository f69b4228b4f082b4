"""The driver's keeper of a whole copy of Ray Tune's experiment state (see ``resume._state_copy``
for why): a Tune callback that looks every few seconds on the driver's own loop, and once more
when the experiment ends."""

from __future__ import annotations

import logging
import time
from typing import Any

from ray.tune import Callback

from ..resume._state_copy import Seen, keep_copy

logger = logging.getLogger(__name__)

_EVERY_S = 3.0  # how often the keeper looks; Tune saves at most every second (_save_state_often)
# The state grows with the trials (about 15 kB each): a look that took t seconds waits at least
# 20 t before the next, so the copies never take more than 5 % of the driver's loop.
_SHARE = 20.0


class StateKeeper(Callback):
    """Keeps ``tunefleet-copy-<newest saved file>`` of each kind whole in the experiment folder at ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._last_look = 0.0
        self._wait_s = _EVERY_S
        self._copied: Seen = {}

    def __getstate__(self) -> dict[str, Any]:
        # Pickled with the Tuner when the search starts; what it last copied belongs to this driver.
        return {"path": self.path, "_last_look": 0.0, "_wait_s": _EVERY_S, "_copied": {}}

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        if time.monotonic() - self._last_look < self._wait_s:
            return
        self._keep()

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self._keep()

    def _keep(self) -> None:
        started = time.monotonic()
        try:
            self._copied = keep_copy(self.path, self._copied)
        except Exception as err:  # a storage hiccup must not stop the search; the next look retries
            logger.debug("could not copy Tune's experiment state: %s", err)
        self._last_look = time.monotonic()
        self._wait_s = max(_EVERY_S, _SHARE * (self._last_look - started))
