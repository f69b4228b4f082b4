"""Checkpoints to MLflow from the process that trained them, through the tracking server.

On a cluster a trial's files live on the node that ran it; the driver may be elsewhere. So when
the search records to an MLflow server, the trial itself uploads ``best/`` to its own run each
time it improves (MLflow's proxied artifacts: the server writes to its artifact store, no node
needs a path the driver sees). The trial finds its run by the Ray trial id the driver tagged it
with; the driver creates runs on a background writer, so the lookup waits a little for it.
With a local store (SQLite) the driver uploads instead, as it sees the same disk.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunefleet.spaces import records as rec

logger = logging.getLogger(__name__)
FIND_RUN_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class RunLink:
    """Where a search's trial runs live: the tracking server and the search (parent) run."""

    tracking_uri: str
    search_run_id: str


@dataclass
class CheckpointUploader:
    """Uploads ``best/`` to the trial's MLflow run whenever a report says it improved."""

    link: RunLink
    trial_id: str
    pending: bool = field(default=False, init=False)  # an upload failed and is still owed
    _run_id: str | None = field(default=None, init=False)
    _client: Any = field(default=None, init=False)

    def _trial_run(self) -> str:
        if self._run_id is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.link.tracking_uri)
            parent = self._client.get_run(self.link.search_run_id)
            query = f"tags.`{rec.TRIAL_ID_TAG}` = '{self.trial_id}' and {rec.trials_filter(self.link.search_run_id)}"
            deadline = time.monotonic() + FIND_RUN_TIMEOUT_S
            while True:
                runs = self._client.search_runs([parent.info.experiment_id], query, max_results=1)
                if runs:
                    self._run_id = str(runs[0].info.run_id)
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no MLflow run for trial {self.trial_id} after {FIND_RUN_TIMEOUT_S:.0f} s")
                time.sleep(0.5)
        return self._run_id

    def after_report(self, metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        """Upload when this report carried a new best checkpoint (improving reports carry test
        metrics), or an earlier upload failed. A tracking server down past MLflow's retries must
        not fail the trial: the report then carries ``UPLOAD_PENDING_KEY`` and the driver uploads
        the best weights from the trial's checkpoint when it ends."""
        best = checkpoint_dir / rec.BEST if checkpoint_dir is not None else None
        if best is not None and best.is_dir() and (rec.TEST_ACC in metrics or self.pending):
            try:
                run_id = self._trial_run()
                self._client.log_artifacts(run_id, str(best), rec.CHECKPOINT_ARTIFACT_DIR)
                self.pending = False
            except Exception as err:  # the trial goes on; its weights are in its checkpoint
                logger.warning("could not upload the best checkpoint of trial %s: %s", self.trial_id, err)
                self.pending = True
        if self.pending:
            metrics[rec.UPLOAD_PENDING_KEY] = 1.0


def where_am_i() -> dict[str, str]:
    """The Ray node id, host name and GPU ids of this process, for the trial's MLflow tags."""
    import socket

    import ray

    context = ray.get_runtime_context()
    gpu_ids = ",".join(str(g) for g in ray.get_gpu_ids())
    return {rec.NODE_ID_KEY: context.get_node_id(), rec.HOSTNAME_KEY: socket.gethostname(), rec.GPU_IDS_KEY: gpu_ids}
