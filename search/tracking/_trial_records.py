"""What the driver reads back from a trial to record it: its best report, the epochs a killed
driver never wrote, its failures, and where its checkpoint's files can be uploaded from.

Kept apart from ``_callback.py`` (which decides *when* to write) because these read checkpoints
and Tune's error files, and resume needs them too.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from tunefleet.spaces import records as rec

logger = logging.getLogger(__name__)

Row = tuple[str, float, int, int]  # an MLflow metric: key, value, timestamp (ms), step


def driver_tags() -> dict[str, str]:
    """Where this driver runs, and now: the search run's liveness tags."""
    import psutil

    return {
        rec.DRIVER_HOST_TAG: socket.gethostname(),
        rec.DRIVER_PID_TAG: str(os.getpid()),
        rec.DRIVER_STARTED_TAG: f"{psutil.Process().create_time():.0f}",
        rec.HEARTBEAT_TAG: f"{time.time():.0f}",
    }


def epoch_rows(report: dict[str, Any]) -> list[Row]:
    """The per-epoch metrics of one report, at ``step = epoch``."""
    step = int(report.get("epoch", report.get("training_iteration", 0)))
    now = int(time.time() * 1000)
    return [(k, float(report[k]), now, step) for k in (*rec.EPOCH_METRICS, *rec.SERVING_METRICS) if k in report]


def failures_text(trial: Any) -> str:
    """Every failure's traceback, as Ray Tune recorded it for the trial ("" if none)."""
    path = Path(trial.error_file) if trial.error_file else None
    return path.read_text(errors="replace") if path is not None and path.is_file() else ""


def best_report(checkpoint: Any) -> dict[str, Any]:
    """The metrics of the best epoch, as the checkpoint's ``best/meta.json`` recorded them ({} if
    it has none or it does not verify: a damaged file must not stop the driver)."""
    from tunefleet.trainables import verify_checkpoint

    try:
        with checkpoint.as_directory() as directory:
            return dict(verify_checkpoint(Path(directory) / rec.BEST).metrics)
    except (ValueError, OSError) as err:  # CorruptCheckpoint is a ValueError
        logger.warning("no best report from checkpoint %s: %s", checkpoint.path, err)
        return {}


def unlogged_epochs(checkpoint: Any, logged_epochs: set[int]) -> list[Row]:
    """The epochs in the history a trial keeps in its checkpoint that MLflow does not have."""
    from tunefleet.trainables import read_meta, resumable_checkpoint

    try:
        with checkpoint.as_directory() as directory:
            source = resumable_checkpoint(Path(directory))
            history = read_meta(source).history if source is not None else []
    except (ValueError, OSError) as err:
        logger.warning("no epoch history from checkpoint %s: %s", checkpoint.path, err)
        return []
    return [row for report in history if int(report["epoch"]) not in logged_epochs for row in epoch_rows(report)]


def lasting_best_dir(checkpoint: Any) -> str | None:
    """A local folder holding the checkpoint's ``best/`` that outlives this call (the upload may
    be queued, or spooled for replay): the checkpoint's own folder on local storage, else a copy."""
    with checkpoint.as_directory() as directory:
        best = Path(directory) / rec.BEST
        if not best.is_dir():
            return None
        if Path(directory) == Path(checkpoint.path):  # local storage: the files stay where they are
            return str(best)
        copy = Path(tempfile.mkdtemp(prefix="tunefleet-best-")) / rec.BEST
        shutil.copytree(best, copy)
        return str(copy)
