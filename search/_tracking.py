"""MLflow tracking from the Tune driver: one writer, batched, explicit run ids.

A search is one parent run; each trial a child run (``mlflow.parentRunId``) with its recipe as
params, every epoch's metrics at ``step = epoch``, a summary, its best checkpoint as artifacts,
and a status: FINISHED (ran its planned epochs), KILLED (stopped early by the scheduler) or
FAILED (raised; the reason in the ``tunefleet.error`` tag). The tag ``tunefleet.outcome`` says
the same in words.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from ray.tune import Callback

from tunefleet.spaces import SearchSpec, flatten_recipe
from tunefleet.spaces import records as rec
from tunefleet.trainables import scaled_lr

from ._ledger import TrialLedger

logger = logging.getLogger(__name__)
# MLflow caps a param value at 6000 characters and a batch at 1000 metrics.
_MAX_BATCH = 1000


def tracking_uri(cli_value: str | None, spec_value: str | None = None) -> str:
    """``--tracking-uri``, else the spec's, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``."""
    return cli_value or spec_value or os.environ.get("MLFLOW_TRACKING_URI") or rec.DEFAULT_TRACKING_URI


def sqlite_path(uri: str) -> Path | None:
    """The database file behind a ``sqlite:///`` URI (None for other stores)."""
    file = rec.sqlite_file(uri)
    return Path(file) if file is not None else None


def start_search_run(client: MlflowClient, spec: SearchSpec) -> str:
    """Create (or reuse) the experiment and open the parent run; return its id."""
    experiment = client.get_experiment_by_name(spec.tracking.experiment)
    if experiment is None:
        experiment_id = client.create_experiment(spec.tracking.experiment)
    else:
        experiment_id = experiment.experiment_id
        if experiment.lifecycle_stage == "deleted":  # deleted in the UI: names stay taken, so bring it back
            client.restore_experiment(experiment_id)
    run = client.create_run(
        experiment_id,
        run_name=f"{spec.name} {time.strftime('%Y-%m-%d %H:%M:%S')}",
        tags={rec.ROLE_TAG: rec.ROLE_SEARCH, rec.SPEC_NAME_TAG: spec.name},
    )
    params = [Param(k, str(v)) for k, v in spec.params().items()]
    client.log_batch(run.info.run_id, params=params)
    client.log_text(run.info.run_id, spec.to_yaml(), rec.SPEC_ARTIFACT)
    return str(run.info.run_id)


def trial_params(spec: SearchSpec, recipe: dict[str, Any], trial_id: str) -> dict[str, Any]:
    """A trial run's params: its recipe, and what the batch and LR become with several workers."""
    res = spec.resources
    return {
        **flatten_recipe(recipe),
        "resources.workers_per_trial": res.workers_per_trial,
        "resources.lr_scaling": res.lr_scaling,
        rec.EFFECTIVE_BATCH_SIZE: recipe["batch_size"] * res.workers_per_trial,
        rec.EFFECTIVE_LR: scaled_lr(recipe["lr"], res.workers_per_trial, res.lr_scaling),
        rec.TRIAL_ID_PARAM: trial_id,
    }


def trial_summary(best: dict[str, Any], epochs: int, metric: str) -> dict[str, float]:
    """A trial's summary metrics: every val/test metric (and the search metric) at its best epoch."""
    summary = {rec.best_key(k): float(v) for k, v in best.items() if k.startswith(("val_", "test_")) or k == metric}
    if best:
        summary[rec.BEST_EPOCH] = float(best["epoch"])
    summary[rec.EPOCHS_TRAINED] = float(epochs)
    return summary


class MlflowTrialCallback(Callback):
    """Writes each trial's run from the driver: one background writer thread, batched metrics.

    Tune calls these hooks from its event loop; every MLflow request goes to a single writer
    thread in call order, so no slot waits on a database commit and a trial's run is always
    created before anything is logged to it. ``close()`` (and the end of the experiment) waits
    until everything queued has been written.
    """

    def __init__(
        self, uri: str, parent_run_id: str, spec: SearchSpec, ledger: TrialLedger, flush_every_s: float = 2.0
    ) -> None:
        self.uri = uri
        self._client: MlflowClient | None = None
        self.parent_run_id = parent_run_id
        self.experiment_id = self.client.get_run(parent_run_id).info.experiment_id
        self.spec = spec
        self.ledger = ledger
        self.flush_every_s = flush_every_s
        self.run_ids: dict[str, str] = {}
        self._pending: dict[str, list[Metric]] = {}
        self._last_flush = time.monotonic()
        self._checkpoints: dict[str, Any] = {}
        self._started: set[str] = set()
        self._finished: set[str] = set()
        self._writer: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self.write_errors = 0

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the experiment state: no client (it holds locks), no
        # thread; the lock keeps the writer from adding to run_ids while it is copied.
        with self._lock:
            state = {**self.__dict__, "_client": None, "_writer": None, "_lock": None}
            state["run_ids"] = dict(self.run_ids)
            return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    def _submit(self, write: Callable[[], None]) -> None:
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="mlflow-writer")

        def guarded() -> None:
            try:
                write()
            except Exception as err:  # tracking trouble must not stop the search
                self.write_errors += 1
                logger.warning("MLflow write failed (%s: %s); the search goes on", type(err).__name__, err)

        self._writer.submit(guarded)

    def close(self) -> None:
        """Send what is buffered and wait until every queued write is done."""
        self._flush()
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None

    def _flush(self, trial_id: str | None = None) -> None:
        ids = [trial_id] if trial_id else list(self._pending)
        for tid in ids:
            metrics = self._pending.pop(tid, [])
            for i in range(0, len(metrics), _MAX_BATCH):
                self._submit(functools.partial(self._log_metrics, tid, metrics[i : i + _MAX_BATCH]))
        self._last_flush = time.monotonic()

    def _log_metrics(self, trial_id: str, metrics: list[Metric]) -> None:
        self.client.log_batch(self.run_ids[trial_id], metrics=metrics)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if trial.trial_id in self._started:
            return
        self._started.add(trial.trial_id)
        record = self.ledger.record(trial)
        params = trial_params(self.spec, record.recipe, trial.trial_id)
        tags = {rec.PARENT_RUN_TAG: self.parent_run_id, rec.ROLE_TAG: rec.ROLE_TRIAL, rec.TRIAL_ID_TAG: trial.trial_id}
        trial_id, name = trial.trial_id, record.name

        def create() -> None:
            run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
            with self._lock:
                self.run_ids[trial_id] = run.info.run_id
            self.client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])

        self._submit(create)

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        now = int(time.time() * 1000)
        batch = self._pending.setdefault(trial.trial_id, [])
        batch += [Metric(k, float(result[k]), now, step) for k in rec.EPOCH_METRICS if k in result]
        if rec.CHECKPOINT_PATH_KEY in result:  # multi-worker trials: Ray Train already stored it
            from ray.train import Checkpoint

            self._checkpoints[trial.trial_id] = Checkpoint(result[rec.CHECKPOINT_PATH_KEY])
        if time.monotonic() - self._last_flush >= self.flush_every_s:
            self._flush()

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        if self._pending and time.monotonic() - self._last_flush >= self.flush_every_s:
            self._flush()

    def on_checkpoint(self, iteration: int, trials: list[Any], trial: Any, checkpoint: Any, **info: Any) -> None:
        # The latest checkpoint holds the best weights so far (best/) and the latest (last/).
        self._checkpoints[trial.trial_id] = checkpoint

    def _finish(self, trial: Any) -> None:
        self._finished.add(trial.trial_id)
        record = self.ledger.record(trial)
        self._flush(trial.trial_id)
        summary = trial_summary(record.best, record.epochs, self.spec.search.metric)
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, 0) for k, v in summary.items()]
        tags = [RunTag(rec.OUTCOME_TAG, record.outcome)]
        if record.error:
            tags.append(RunTag(rec.ERROR_TAG, record.error[:5000]))
        checkpoint = self._checkpoints.pop(trial.trial_id, None)
        trial_id, status = trial.trial_id, rec.OUTCOME_STATUS[record.outcome]

        def finish() -> None:
            run_id = self.run_ids[trial_id]
            self.client.log_batch(run_id, metrics=metrics, tags=tags)
            self._log_best(run_id, checkpoint)
            self.client.set_terminated(run_id, status)

        self._submit(finish)

    def mark_interrupted(self) -> int:
        """Close the runs of trials that were still running when the search was interrupted
        (KILLED, outcome ``interrupted``); their metrics so far are kept. Returns how many."""
        self._flush()
        cut_short = sorted(self._started - self._finished)
        for trial_id in cut_short:
            self._finished.add(trial_id)
            checkpoint = self._checkpoints.pop(trial_id, None)
            self._submit(functools.partial(self._close_interrupted, trial_id, checkpoint))
        return len(cut_short)

    def _close_interrupted(self, trial_id: str, checkpoint: Any) -> None:
        run_id = self.run_ids[trial_id]
        self.client.log_batch(run_id, tags=[RunTag(rec.OUTCOME_TAG, rec.INTERRUPTED)])
        self._log_best(run_id, checkpoint)  # the best weights so far are not lost
        self.client.set_terminated(run_id, rec.OUTCOME_STATUS[rec.INTERRUPTED])

    def _log_best(self, run_id: str, checkpoint: Any) -> None:
        if checkpoint is None:
            return
        with checkpoint.as_directory() as directory:
            best = Path(directory) / rec.BEST
            if best.is_dir():  # only the best weights go to MLflow; last/ is for resuming
                self.client.log_artifacts(run_id, str(best), rec.CHECKPOINT_ARTIFACT_DIR)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._finish(trial)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._finish(trial)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self.close()


def finish_search_run(client: MlflowClient, run_id: str, ledger: TrialLedger, wall_s: float, status: str) -> None:
    """Summarize the search on its parent run and close it with ``status``."""
    counts = ledger.counts()
    now = int(time.time() * 1000)
    metrics = {
        rec.TRIALS_COMPLETED: counts[rec.COMPLETED],
        rec.TRIALS_STOPPED_EARLY: counts[rec.STOPPED],
        rec.TRIALS_FAILED: counts[rec.FAILED],
        rec.EPOCHS_TRAINED: sum(r.epochs for r in ledger.records.values()),
        rec.WALL_S: wall_s,
    }
    tags = []
    best = ledger.best_record()
    if best is not None:
        metrics[rec.best_key(ledger.metric)] = best.best[ledger.metric]
        if "test_acc" in best.best:
            metrics[rec.BEST_TRIAL_TEST_ACC] = best.best["test_acc"]
        tags.append(RunTag(rec.BEST_TRIAL_TAG, best.name))
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()], tags=tags)
    client.set_terminated(run_id, status)
