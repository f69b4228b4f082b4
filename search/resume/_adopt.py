"""Handing a resumed search's trials to the new driver: its ledger and its MLflow callback learn
every trial Tune's saved state holds, read back from the trials' runs; runs of trials Tune never
saved are set aside. Kept apart from ``_resume`` (finding and checking what can be resumed, which
``tunefleet resume`` does before Ray loads): the ledger and the callback are Ray Tune callbacks.
"""

from __future__ import annotations

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from tunefleet.spaces import records as rec

from ..tracking._callback import MlflowTrialCallback
from ..tracking._ledger import TrialLedger, TrialRecord
from ._resume import ENDED, Resumable


def _record(index: int, run: Run) -> TrialRecord:
    """A trial as the ledger knew it, read back from its run."""
    tags, metrics = run.data.tags, run.data.metrics
    outcome = tags.get(rec.OUTCOME_TAG, rec.RUNNING)
    ended = outcome in ENDED and run.info.status != "RUNNING"
    # The summary (best_val_acc, best_epoch, ...) is the best report minus its prefix.
    best = {k.removeprefix(rec.BEST_PREFIX): v for k, v in metrics.items() if k.startswith(rec.BEST_PREFIX)}
    return TrialRecord(
        index=index,
        name=run.info.run_name or f"t{index:02d}",
        recipe={},
        outcome=outcome if ended else rec.INTERRUPTED,
        epochs=int(metrics.get(rec.EPOCHS_TRAINED, metrics.get("epoch", 0))),
        best=best,
        error=tags.get(rec.ERROR_TAG, ""),
        restarts=int(tags.get(rec.RESTARTS_TAG, 0)),
    )


def discard_unsaved(client: MlflowClient, point: Resumable) -> None:
    """Delete (in MLflow's sense: restorable from the UI) the runs of trials Tune never saved;
    their configs run again as new trials, so keeping them would count those trials twice."""
    for run in point.unsaved:
        client.delete_run(run.info.run_id)


def adopt_trials(point: Resumable, ledger: TrialLedger, tracker: MlflowTrialCallback) -> None:
    """Give the new driver's ledger and MLflow callback every trial Tune's state holds."""
    for index, run in enumerate(point.trials, start=1):
        record = _record(index, run)
        trial_id = run.data.tags[rec.TRIAL_ID_TAG]
        ledger.adopt(trial_id, record)
        tracker.adopt(trial_id, run.info.run_id, ended=record.ended)
