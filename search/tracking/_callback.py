"""MLflow tracking from the Tune driver: one ordered writer, batched, explicit run keys.

A search is one parent run; each trial a child run (``mlflow.parentRunId``) with its recipe as
params, every epoch's metrics at ``step = epoch``, a summary, its best checkpoint as artifacts,
and a status: FINISHED (ran its planned epochs), KILLED (stopped early by the scheduler, or
interrupted) or FAILED (raised, or timed out; the reason in the ``tunefleet.error`` tag and every
attempt's traceback in ``error.txt``). The tag ``tunefleet.outcome`` says the same in words.

Every write goes through a ``TrackingWriter`` (``_writer.py``): in order, on one thread, retried
through a locked SQLite file or a tracking server that is down, and spooled for ``tunefleet
replay`` if still undelivered when the search ends. Runs are named by key: the trial id, or
``SEARCH_KEY`` for the search run; the writer holds each key's run id (it learns a new run's id
only when it has created the run). Everything else the callback keeps about a trial's run is one
``TrialRun`` per trial, beside the ledger's ``TrialRecord`` (what the trial did).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient
from ray.tune import Callback

from tunefleet.spaces import SearchSpec
from tunefleet.spaces import records as rec

from ._ledger import TrialLedger
from ._search_run import trial_params, trial_summary
from ._store import CreateRun, LogArtifacts, LogBatch, LogText, Op, SetTerminated, UpdateRunStatus
from ._trial_records import (
    Row,
    best_report,
    driver_tags,
    epoch_rows,
    failures_text,
    lasting_best_dir,
    unlogged_epochs,
)
from ._writer import SpoolReport, TrackingWriter

logger = logging.getLogger(__name__)
SEARCH_KEY = "search"
_MAX_BATCH = 1000  # MLflow takes at most 1000 metrics per batch
_PLACE_TAGS = {rec.NODE_ID_KEY: rec.NODE_ID_TAG, rec.HOSTNAME_KEY: rec.HOSTNAME_TAG, rec.GPU_IDS_KEY: rec.GPU_IDS_TAG}
# How long the end of a search waits for an unreachable store before spooling: well within the
# grace a stopped job gets (``_jobs.STOP_WAIT_S``), so the spool is always written.
CLOSE_TIMEOUT_S = 60.0
END_FLUSH_S = 10.0


@dataclass
class TrialRun:
    """The callback's state of one trial's MLflow run."""

    started: bool = False  # its run was created (or adopted): a later start is a restart or a resume
    ended: bool = False  # its run was closed (or had ended before a resume): never written again
    adopted: bool = False  # an open run of the search this one resumes, not yet started again here
    rows: list[Row] = field(default_factory=list)  # epoch metrics not sent yet
    checkpoint: Any = None  # the latest checkpoint: best/ (uploaded when the run closes) and last/
    place: dict[str, str] = field(default_factory=dict)  # the node, host and GPU tags last written
    batch: tuple[int, int] | None = None  # the per-worker batch and gradient accumulation in use
    upload_owed: bool = False  # its own upload of best/ failed (a server down): the driver uploads


class MlflowTrialCallback(Callback):
    """Writes each trial's run from the driver; Tune's event loop never waits on MLflow."""

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
        self.parent_run_id = parent_run_id
        self.experiment_id = MlflowClient(tracking_uri=uri).get_run(parent_run_id).info.experiment_id
        self.spec, self.ledger = spec, ledger
        self.flush_every_s = flush_every_s
        self.driver_uploads = driver_uploads  # False: trials upload their own best checkpoints (a server)
        self.writer = TrackingWriter(uri)
        self.writer.bind(SEARCH_KEY, parent_run_id)
        self._runs: dict[str, TrialRun] = {}  # by trial id
        self._last_flush = self._beat = time.monotonic()
        self._reconciled = False

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the experiment state: no thread, just the run ids.
        return {**self.__dict__, "writer": None, "_run_ids": self.writer.run_ids()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        run_ids = state.pop("_run_ids")
        self.__dict__.update(state, writer=TrackingWriter(state["uri"]))
        for key, run_id in run_ids.items():
            self.writer.bind(key, run_id)

    def _run(self, trial_id: str) -> TrialRun:
        run = self._runs.get(trial_id)
        if run is None:
            run = self._runs[trial_id] = TrialRun()
        return run

    def adopt(self, trial_id: str, run_id: str, ended: bool) -> None:
        """A trial run of the search this one resumes: log to it, and never again once it ``ended``."""
        self.writer.bind(trial_id, run_id)
        self._runs[trial_id] = TrialRun(started=True, ended=ended, adopted=not ended)

    def close(self, final: list[Op] | None = None) -> SpoolReport | None:
        """Send what is buffered and ``final`` (the search run's summary), wait for delivery;
        what the store still does not take is spooled, and the report says how to replay it."""
        self._flush()
        for op in final or []:
            self.writer.submit(op)
        spool = Path(".tunefleet") / f"undelivered-{self.parent_run_id}.jsonl"
        try:
            return self.writer.close(CLOSE_TIMEOUT_S, spool)
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting, but keep what is undelivered
            return self.writer.close(0.0, spool)

    def _flush(self, trial_id: str | None = None) -> None:
        for tid in [trial_id] if trial_id else list(self._runs):
            run = self._run(tid)
            rows, run.rows = run.rows, []
            for i in range(0, len(rows), _MAX_BATCH):
                self.writer.submit(LogBatch(key=tid, metrics=tuple(rows[i : i + _MAX_BATCH])))
        self._last_flush = time.monotonic()

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        run = self._run(trial.trial_id)
        if run.started:
            if not run.ended:  # resumed or restarted: the same run goes on
                self._reopen(trial, run)
            return
        run.started = True
        record = self.ledger.record(trial)
        tags = {rec.PARENT_RUN_TAG: self.parent_run_id, rec.ROLE_TAG: rec.ROLE_TRIAL, rec.TRIAL_ID_TAG: trial.trial_id}
        self.writer.submit(
            CreateRun(key=trial.trial_id, experiment_id=self.experiment_id, run_name=record.name, tags=tags)
        )
        params = {k: str(v) for k, v in trial_params(self.spec, record.recipe, trial.trial_id).items()}
        self.writer.submit(LogBatch(key=trial.trial_id, params=params))

    def _reopen(self, trial: Any, run: TrialRun) -> None:
        """A trial of a resumed search starts again (a restart within this driver needs nothing:
        its run is open and every report it made is queued)."""
        if not run.adopted:
            return
        run.adopted = False
        self.writer.submit(UpdateRunStatus(key=trial.trial_id, status="RUNNING"))
        self.writer.submit(LogBatch(key=trial.trial_id, tags={rec.OUTCOME_TAG: rec.RUNNING}))
        checkpoint, run_id = trial.checkpoint, self.writer.run_id(trial.trial_id)
        if checkpoint is None or run_id is None:
            return
        run.checkpoint = checkpoint  # its best weights, should it end before the next
        record = self.ledger.record(trial)
        record.last = dict(trial.last_result or {})
        record.best = best_report(checkpoint) or record.best  # the best so far, as its checkpoint says
        try:  # epochs a killed driver had not written; the ones after the checkpoint run again
            logged = {int(m.value) for m in MlflowClient(self.uri).get_metric_history(run_id, "epoch")}
            run.rows.extend(unlogged_epochs(checkpoint, logged))
        except Exception as err:  # an unreachable store: those epochs stay in the checkpoint's history
            logger.warning("could not compare trial %s's epochs with MLflow: %s", trial.trial_id, err)

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        run = self._run(trial.trial_id)
        if run.ended:  # ended before a resume: its run stays as it was
            return
        run.rows.extend(epoch_rows(result))
        run.upload_owed = bool(result.get(rec.UPLOAD_PENDING_KEY))
        self._record_batch(trial.trial_id, run, result)
        self._tag_place(trial.trial_id, run, result)
        if rec.CHECKPOINT_PATH_KEY in result:  # multi-worker trials: Ray Train already stored it
            from ray.train import Checkpoint

            run.checkpoint = Checkpoint(result[rec.CHECKPOINT_PATH_KEY])
        if time.monotonic() - self._last_flush >= self.flush_every_s:
            self._flush()

    def _record_batch(self, trial_id: str, run: TrialRun, result: dict[str, Any]) -> None:
        """A trial retried after running out of memory: its new per-worker batch and gradient
        accumulation become params (one pair per retry; MLflow params cannot change)."""
        batch = (int(result.get(rec.PER_WORKER_BATCH_KEY, 0)), int(result.get(rec.GRAD_ACCUM_KEY, 1)))
        known, run.batch = run.batch, batch
        if batch[1] <= 1 or known == batch:
            return
        n = batch[1].bit_length() - 1  # the accumulation doubles with each retry: 2 -> 1, 4 -> 2
        params = {f"oom_retry_{n}.{rec.PER_WORKER_BATCH_KEY}": str(batch[0])}
        params[f"oom_retry_{n}.{rec.GRAD_ACCUM_KEY}"] = str(batch[1])
        self.writer.submit(LogBatch(key=trial_id, params=params))

    def _tag_place(self, trial_id: str, run: TrialRun, result: dict[str, Any]) -> None:
        """Tag the trial's run with the node, host and GPUs it runs on (again if a restart moved it)."""
        place = {tag: str(result.get(key, "")) for key, tag in _PLACE_TAGS.items()}
        if not place[rec.NODE_ID_TAG] or run.place == place:
            return
        run.place = place
        self.writer.submit(LogBatch(key=trial_id, tags=place))

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
                self._run(trial.trial_id).checkpoint = trial.checkpoint
                record.best = best_report(trial.checkpoint) or record.best
            if trial.status == "ERROR":
                self.ledger.on_trial_error(0, trials, trial)
            else:
                self.ledger.on_trial_complete(0, trials, trial)
            self._finish(trial)

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        if time.monotonic() - self._last_flush >= self.flush_every_s and any(r.rows for r in self._runs.values()):
            self._flush()
        if time.monotonic() - self._beat >= rec.HEARTBEAT_EVERY_S:
            self.heartbeat()

    def heartbeat(self) -> None:
        """Tell readers (``trials``, ``status``, ``resume``) this search's driver is alive."""
        self._beat = time.monotonic()
        self.writer.submit(LogBatch(key=SEARCH_KEY, tags=driver_tags()))

    def on_checkpoint(self, iteration: int, trials: list[Any], trial: Any, checkpoint: Any, **info: Any) -> None:
        # The latest checkpoint holds the best weights so far (best/) and the latest (last/).
        self._run(trial.trial_id).checkpoint = checkpoint

    def _close_run(self, trial_id: str, outcome: str, summary: dict[str, float], tags: dict[str, str]) -> None:
        """The summary, outcome, best weights (with a local store) and status of a trial's run."""
        now = int(time.time() * 1000)
        metrics = tuple((k, v, now, 0) for k, v in summary.items())
        self.writer.submit(LogBatch(key=trial_id, metrics=metrics, tags={rec.OUTCOME_TAG: outcome, **tags}))
        run = self._run(trial_id)
        checkpoint, run.checkpoint = run.checkpoint, None
        uploads = self.driver_uploads or run.upload_owed
        best = lasting_best_dir(checkpoint) if checkpoint is not None and uploads else None
        if best is not None:  # only the best weights go to MLflow; last/ is for resuming
            self.writer.submit(LogArtifacts(key=trial_id, local_dir=best, artifact_path=rec.CHECKPOINT_ARTIFACT_DIR))
        self.writer.submit(SetTerminated(key=trial_id, status=rec.OUTCOME_STATUS[outcome]))

    def _finish(self, trial: Any) -> None:
        run = self._run(trial.trial_id)
        if run.ended:
            return
        if not run.started:  # failed before Tune reported it started
            self.on_trial_start(0, [], trial)
        run.ended = True
        record = self.ledger.record(trial)
        self._flush(trial.trial_id)
        failed = rec.OUTCOME_STATUS[record.outcome] == "FAILED"
        failures = failures_text(trial) if failed or record.restarts else ""
        if failures:
            self.writer.submit(LogText(key=trial.trial_id, text=failures, artifact_file=rec.ERROR_ARTIFACT))
        tags = {rec.ERROR_TAG: record.error[:5000]} if failed and record.error else {}
        self._close_run(trial.trial_id, record.outcome, trial_summary(record.best, record.epochs, self._metric), tags)

    @property
    def _metric(self) -> str:
        return self.spec.search.metric

    def mark_interrupted(self) -> int:
        """Close the runs of trials that were still running when the search was interrupted
        (KILLED, outcome ``interrupted``) with their metrics and best weights so far."""
        self._flush()
        cut_short = sorted(tid for tid, run in self._runs.items() if run.started and not run.ended)
        for trial_id in cut_short:
            self._runs[trial_id].ended = True
            record = self.ledger.records.get(trial_id)
            summary = trial_summary(record.best, record.epochs, self._metric) if record else {}
            self._close_run(trial_id, rec.INTERRUPTED, summary, {})
        return len(cut_short)

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if not self._run(trial.trial_id).started:  # failed before Tune reported it started
            self.on_trial_start(0, [], trial)
        record = self.ledger.record(trial)  # the ledger has counted this restart; why: error.txt at the end
        self.writer.submit(LogBatch(key=trial.trial_id, tags={rec.RESTARTS_TAG: str(record.restarts)}))

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._finish(trial)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._finish(trial)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self._flush()  # what callers read right after the experiment is there (close() spools the rest)
        self.writer.flush(END_FLUSH_S)
