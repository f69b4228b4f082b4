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
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from ray.tune import Callback

from tunefleet.spaces import SearchSpec
from tunefleet.spaces import records as rec

from ._ledger import TrialLedger
from ._search_run import trial_params, trial_summary

logger = logging.getLogger(__name__)
# MLflow caps a param value at 6000 characters and a batch at 1000 metrics.
_MAX_BATCH = 1000
_PLACE_TAGS = (rec.NODE_ID_TAG, rec.HOSTNAME_TAG, rec.GPU_IDS_TAG)


class MlflowTrialCallback(Callback):
    """Writes each trial's run from the driver: one background writer thread, batched metrics.

    Tune calls these hooks from its event loop; every MLflow request goes to a single writer
    thread in call order, so no slot waits on a database commit and a trial's run is always
    created before anything is logged to it. ``close()`` (and the end of the experiment) waits
    until everything queued has been written.
    """

    def __init__(
        self,
        uri: str,
        parent_run_id: str,
        spec: SearchSpec,
        ledger: TrialLedger,
        flush_every_s: float = 2.0,
        driver_uploads: bool = True,
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
        # False when trials upload their own best checkpoints through an MLflow server.
        self.driver_uploads = driver_uploads
        self._places: dict[str, tuple[str, ...]] = {}
        self._batches: dict[str, tuple[float, float]] = {}  # per-worker batch and accumulation, when retried
        self._beat = 0.0
        self._reconciled = False

    def adopt(self, trial_id: str, run_id: str, ended: bool) -> None:
        """A trial run of the search this one resumes: log to it, and never again once it ``ended``."""
        self.run_ids[trial_id] = run_id
        self._started.add(trial_id)
        if ended:
            self._finished.add(trial_id)

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
            if trial.trial_id not in self._finished:  # resumed: the same run goes on
                checkpoint = trial.checkpoint
                if checkpoint is not None:  # the best so far, as its checkpoint recorded it
                    record = self.ledger.record(trial)
                    record.best = _best_report(checkpoint) or record.best
                self._submit(functools.partial(self._reopen, trial.trial_id, checkpoint))
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

    def _reopen(self, trial_id: str, checkpoint: Any) -> None:
        run_id = self.run_ids[trial_id]
        self.client.update_run(run_id, status="RUNNING")
        self.client.set_tag(run_id, rec.OUTCOME_TAG, rec.RUNNING)
        if checkpoint is not None:
            self._backfill(run_id, checkpoint)

    def _backfill(self, run_id: str, checkpoint: Any) -> None:
        """Log the epochs a killed driver had not written yet, from the history the trial keeps
        in its checkpoint; the epochs after it are trained and reported again."""
        from tunefleet.trainables import read_meta, resumable_checkpoint

        with checkpoint.as_directory() as directory:
            source = resumable_checkpoint(Path(directory))
            history = read_meta(source).get(rec.HISTORY_KEY, []) if source is not None else []
        logged = {int(m.value) for m in self.client.get_metric_history(run_id, "epoch")}
        now = int(time.time() * 1000)
        missing = [h for h in history if int(h["epoch"]) not in logged]
        metrics = [Metric(k, float(h[k]), now, int(h["epoch"])) for h in missing for k in rec.EPOCH_METRICS if k in h]
        for i in range(0, len(metrics), _MAX_BATCH):
            self.client.log_batch(run_id, metrics=metrics[i : i + _MAX_BATCH])

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        if trial.trial_id in self._finished:  # ended before a resume: its run stays as it was
            return
        self._record_batch(trial.trial_id, result)
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        now = int(time.time() * 1000)
        batch = self._pending.setdefault(trial.trial_id, [])
        batch += [Metric(k, float(result[k]), now, step) for k in rec.EPOCH_METRICS if k in result]
        self._tag_place(trial.trial_id, result)
        if rec.CHECKPOINT_PATH_KEY in result:  # multi-worker trials: Ray Train already stored it
            from ray.train import Checkpoint

            self._checkpoints[trial.trial_id] = Checkpoint(result[rec.CHECKPOINT_PATH_KEY])
        if time.monotonic() - self._last_flush >= self.flush_every_s:
            self._flush()

    def _record_batch(self, trial_id: str, result: dict[str, Any]) -> None:
        """A trial retried after running out of memory: its new per-worker batch and gradient
        accumulation become params (one pair per retry; MLflow params cannot change)."""
        batch = (float(result.get(rec.PER_WORKER_BATCH_KEY, 0)), float(result.get(rec.GRAD_ACCUM_KEY, 1)))
        known = self._batches.get(trial_id)
        self._batches[trial_id] = batch
        if batch[1] <= 1 or known == batch:
            return
        n = int(batch[1]).bit_length() - 1  # the accumulation doubles with each retry: 2 -> 1, 4 -> 2
        params = [Param(f"oom_retry_{n}.{rec.PER_WORKER_BATCH_KEY}", str(int(batch[0])))]
        params.append(Param(f"oom_retry_{n}.{rec.GRAD_ACCUM_KEY}", str(int(batch[1]))))
        self._submit(functools.partial(self._log_params, trial_id, params))

    def _log_params(self, trial_id: str, params: list[Param]) -> None:
        self.client.log_batch(self.run_ids[trial_id], params=params)

    def _tag_place(self, trial_id: str, result: dict[str, Any]) -> None:
        """Tag the trial's run with the node, host and GPUs it runs on (again if a restart moved it)."""
        keys = (rec.NODE_ID_KEY, rec.HOSTNAME_KEY, rec.GPU_IDS_KEY)
        place = tuple(str(result.get(k, "")) for k in keys)
        if not place[0] or self._places.get(trial_id) == place:
            return
        self._places[trial_id] = place
        tags = [RunTag(tag, value) for tag, value in zip(_PLACE_TAGS, place, strict=True)]
        self._submit(functools.partial(self._log_tags, trial_id, tags))

    def _log_tags(self, trial_id: str, tags: list[RunTag]) -> None:
        self.client.log_batch(self.run_ids[trial_id], tags=tags)

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        if not self._reconciled:
            self._reconciled = True
            self._close_ended_elsewhere(trials)

    def _close_ended_elsewhere(self, trials: list[Any]) -> None:
        """Resumed: trials Ray Tune had seen end whose MLflow runs were not closed before the
        driver died (its writes lag Tune's state by a moment) are closed now, from Tune's record."""
        for trial in trials:
            record = self.ledger.records.get(trial.trial_id)
            if record is None or record.ended or trial.status not in ("TERMINATED", "ERROR"):
                continue
            record.last = dict(trial.last_result or {})
            record.epochs = int(record.last.get("epoch", record.epochs))
            if trial.checkpoint is not None:
                self._checkpoints[trial.trial_id] = trial.checkpoint
                record.best = _best_report(trial.checkpoint) or record.best
            if trial.status == "ERROR":
                self.ledger.on_trial_error(0, trials, trial)
            else:
                self.ledger.on_trial_complete(0, trials, trial)
            self._finish(trial)

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        if self._pending and time.monotonic() - self._last_flush >= self.flush_every_s:
            self._flush()
        if time.monotonic() - self._beat >= rec.HEARTBEAT_EVERY_S:
            self.heartbeat()

    def heartbeat(self) -> None:
        """Tell readers (``trials``, ``status``, ``resume``) this search's driver is alive."""
        self._beat = time.monotonic()
        tags = driver_tags()
        self._submit(functools.partial(self._log_search_tags, tags))

    def _log_search_tags(self, tags: list[RunTag]) -> None:
        self.client.log_batch(self.parent_run_id, tags=tags)

    def on_checkpoint(self, iteration: int, trials: list[Any], trial: Any, checkpoint: Any, **info: Any) -> None:
        # The latest checkpoint holds the best weights so far (best/) and the latest (last/).
        self._checkpoints[trial.trial_id] = checkpoint

    def _finish(self, trial: Any) -> None:
        if trial.trial_id in self._finished:
            return
        self._finished.add(trial.trial_id)
        record = self.ledger.record(trial)
        self._flush(trial.trial_id)
        summary = trial_summary(record.best, record.epochs, self.spec.search.metric)
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, 0) for k, v in summary.items()]
        trial_id, status = trial.trial_id, rec.OUTCOME_STATUS[record.outcome]
        tags = [RunTag(rec.OUTCOME_TAG, record.outcome)]
        if record.error and status == "FAILED":  # a trial that recovered keeps its reasons in error.txt
            tags.append(RunTag(rec.ERROR_TAG, record.error[:5000]))
        checkpoint = self._checkpoints.pop(trial.trial_id, None)
        failures = _failures_text(trial) if status == "FAILED" or record.restarts else ""

        def finish() -> None:
            run_id = self.run_ids[trial_id]
            self.client.log_batch(run_id, metrics=metrics, tags=tags)
            if failures:  # every failure's traceback, as Ray Tune recorded it
                self.client.log_text(run_id, failures, rec.ERROR_ARTIFACT)
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
            record = self.ledger.records.get(trial_id)
            summary = trial_summary(record.best, record.epochs, self.spec.search.metric) if record else {}
            now = int(time.time() * 1000)
            metrics = [Metric(k, v, now, 0) for k, v in summary.items()]  # the best so far, as for any trial
            self._submit(functools.partial(self._close_interrupted, trial_id, checkpoint, metrics))
        return len(cut_short)

    def _close_interrupted(self, trial_id: str, checkpoint: Any, metrics: list[Metric]) -> None:
        run_id = self.run_ids[trial_id]
        self.client.log_batch(run_id, metrics=metrics, tags=[RunTag(rec.OUTCOME_TAG, rec.INTERRUPTED)])
        self._log_best(run_id, checkpoint)  # the best weights so far are not lost
        self.client.set_terminated(run_id, rec.OUTCOME_STATUS[rec.INTERRUPTED])

    def _log_best(self, run_id: str, checkpoint: Any) -> None:
        if checkpoint is None or not self.driver_uploads:
            return
        with checkpoint.as_directory() as directory:
            best = Path(directory) / rec.BEST
            if best.is_dir():  # only the best weights go to MLflow; last/ is for resuming
                self.client.log_artifacts(run_id, str(best), rec.CHECKPOINT_ARTIFACT_DIR)

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        record = self.ledger.record(trial)  # the ledger has counted this restart and its reason
        tags = [RunTag(rec.RESTARTS_TAG, str(record.restarts))]  # why: error.txt when the trial ends
        self._submit(functools.partial(self._log_tags, trial.trial_id, tags))

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._finish(trial)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._finish(trial)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self.close()


def driver_tags() -> list[RunTag]:
    """Where this driver runs, and now: the search run's liveness tags."""
    import os
    import socket

    return [
        RunTag(rec.DRIVER_HOST_TAG, socket.gethostname()),
        RunTag(rec.DRIVER_PID_TAG, str(os.getpid())),
        RunTag(rec.HEARTBEAT_TAG, f"{time.time():.0f}"),
    ]


def _failures_text(trial: Any) -> str:
    path = Path(trial.error_file) if trial.error_file else None
    return path.read_text(errors="replace") if path is not None and path.is_file() else ""


def _best_report(checkpoint: Any) -> dict[str, Any]:
    """The metrics of the best epoch, as the checkpoint's ``best/meta.json`` recorded them."""
    from tunefleet.trainables import read_meta

    with checkpoint.as_directory() as directory:
        best = Path(directory) / rec.BEST
        return dict(read_meta(best).get("metrics", {})) if (best / rec.META).is_file() else {}
