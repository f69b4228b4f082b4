"""``resources.oom_retry``: a trial that runs out of GPU memory goes on with half the batch.

The retry happens inside the trial: it resumes from its latest reported checkpoint, loads half
as many images per micro-batch and accumulates twice as many micro-batches per optimizer step,
so the effective batch (and with it the LR rule) stays the same. It halves again on another
out-of-memory error, down to one image per micro-batch; then the trial fails as before. Each
report carries the per-worker batch and accumulation in use (``per_worker_batch``,
``grad_accum_steps``), which the driver records as params.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._loop import TrialOutOfMemory
from ._settings import TrialSettings
from ._trial import Report, run_trial

logger = logging.getLogger(__name__)
Latest = Callable[[], contextlib.AbstractContextManager[Path | None]]


def _free_memory() -> None:
    import torch

    gc.collect()  # the failed attempt's model and optimizer are garbage now
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def train_with_oom_retry(recipe: dict[str, Any], settings: TrialSettings, report: Report, latest: Latest) -> None:
    """Run the trial; on ``TrialOutOfMemory`` (with ``oom_retry`` on) halve the micro-batch,
    double the accumulation and go on from ``latest()``: the latest reported checkpoint."""
    accumulate = 1
    while True:
        with latest() as resume_from:
            try:
                run_trial(recipe, settings, report, resume_from=resume_from, accumulate=accumulate)
                return
            except TrialOutOfMemory as err:
                batch = int(recipe["batch_size"])
                # From the accumulation in use (a resumed checkpoint may have had more than ours).
                if not settings.resources.oom_retry or math.ceil(batch / err.accumulate) <= 1:
                    raise
                accumulate = err.accumulate * 2
                micro = math.ceil(batch / accumulate)
                logger.warning("%s; retrying with %d images per micro-batch x %d accumulated", err, micro, accumulate)
        _free_memory()
