"""``tunefleet resume``: find an interrupted search, check that it can go on, and hand its state
to the driver.

What is resumed comes from two records that the search kept: MLflow (the search run, its spec
and each trial's run) and Ray Tune's experiment state in the storage (trial statuses and
checkpoints, the searcher's and scheduler's state). Both are checked before anything starts: a
search that finished, is still running, or whose Tune state is missing or truncated gets one line
and exit code 2, never a fresh search started over the old runs.
"""

from __future__ import annotations

import json
import pickletools
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from tunefleet.spaces import MAX_NUM_SAMPLES, SearchSpec, SpecError, load_spec
from tunefleet.spaces import records as rec

from ._liveness import driver_alive
from ._state_copy import STATE_FILE, list_folder, open_folder, repair_state

ENDED = {rec.COMPLETED, rec.STOPPED, rec.FAILED, rec.TIMED_OUT}


@dataclass(frozen=True)
class Resumable:
    spec: SearchSpec
    search_run: Run
    tune_path: str
    trials: list[Run]  # the trial runs of trials in Tune's saved state
    # Runs of trials started after Tune last saved its state (it saves every second): Tune does
    # not know them, and its restored searcher proposes their configs again as new trials.
    unsaved: list[Run]
    repaired: str = ""  # what was put back of Tune's state after a kill cut it off, in words

    @property
    def run_id(self) -> str:
        return str(self.search_run.info.run_id)


def find_resumable(uri: str, experiment: str, search_run_id: str | None) -> Resumable:
    """The search to resume: ``search_run_id``, else the latest search of ``experiment``."""
    from tunefleet.analysis import open_experiment, search_run, trial_runs

    client, exp = open_experiment(uri, experiment)
    parent = search_run(client, exp, search_run_id)
    run_id, status = parent.info.run_id, parent.info.status
    if status == "FINISHED":
        raise SpecError("--search-run", f"search run {run_id} finished; there is nothing to resume")
    if status == "RUNNING" and driver_alive(parent):
        where = f"pid {parent.data.tags.get(rec.DRIVER_PID_TAG)} on {parent.data.tags.get(rec.DRIVER_HOST_TAG)}"
        raise SpecError("--search-run", f"search run {run_id} is still running ({where}); stop it before resuming")
    path = parent.data.tags.get(rec.TUNE_PATH_TAG)
    if not path:
        raise SpecError("--search-run", f"search run {run_id} recorded no Ray Tune state path; it cannot be resumed")
    repaired = repair_state(path) or ""
    saved = check_tune_state(path)
    runs = trial_runs(client, parent, with_trial_id=True)  # a run without its trial id matches no Tune trial
    # A search extended with --more: the trials before its latest Tune experiment all ended, and
    # are kept as they are (Tune's state for the latest experiment does not hold them).
    segment_start = int(parent.data.tags.get(rec.SEGMENT_START_TAG, 0))
    earlier = [r for r in runs if r.info.start_time < segment_start]
    runs = [r for r in runs if r.info.start_time >= segment_start]
    known = [r for r in runs if r.data.tags[rec.TRIAL_ID_TAG] in saved]
    unknown = [r for r in runs if r.data.tags[rec.TRIAL_ID_TAG] not in saved]
    return Resumable(_recorded_spec(client, run_id), parent, path, earlier + known, unknown, repaired)


def find_extendable(
    uri: str, experiment: str, search_run_id: str | None, trials: int | None, time_budget: str | None
) -> Resumable:
    """A finished search to give ``trials`` more trials (or ``time_budget`` more time), with the
    spec they run under: the recorded one, with that budget and a seed moved past the earlier
    trials (so random search does not propose its first configs again)."""
    from tunefleet.analysis import open_experiment, search_run, trial_runs

    client, exp = open_experiment(uri, experiment)
    parent = search_run(client, exp, search_run_id)
    run_id, status = parent.info.run_id, parent.info.status
    if status != "FINISHED":
        raise SpecError(
            "--more",
            f"search run {run_id} has not finished ({status}); continue it first: tunefleet resume {experiment}",
        )
    runs = trial_runs(client, parent, with_trial_id=True)
    recorded = _recorded_spec(client, run_id)
    if recorded.search.searcher == "grid":
        raise SpecError("--more", f"search run {run_id} is a grid search: it ran every grid point already")
    search: dict[str, Any] = {
        "num_samples": trials or MAX_NUM_SAMPLES,  # --more-time alone: as many as the time allows
        "time_budget": time_budget,
        "seed": recorded.search.seed + len(runs),
        "warm_start": [],  # the search's own trials are its history now
        "start_with": [],  # ... and its start configs ran already
    }
    spec = _recorded_spec(client, run_id, {"search": search})
    return Resumable(spec, parent, parent.data.tags.get(rec.TUNE_PATH_TAG, ""), runs, [])


def _recorded_spec(client: MlflowClient, run_id: str, overrides: dict[str, dict[str, Any]] | None = None) -> SearchSpec:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(run_id, rec.SPEC_ARTIFACT, tmp)
        except Exception as err:
            raise SpecError("--search-run", f"search run {run_id} has no readable {rec.SPEC_ARTIFACT}: {err}") from None
        return load_spec(Path(local), overrides)


def check_tune_state(path: str) -> set[str]:
    """Ray Tune's experiment folder must hold an intact ``tuner.pkl`` and experiment state;
    returns the ids of the trials that state holds."""
    filesystem, root = open_folder(path)

    def refuse(reason: str) -> SpecError:
        return SpecError("search state", f"{path}: {reason}; it cannot be resumed (start a new search instead)")

    names = list_folder(filesystem, root)
    if not names:
        raise refuse("the folder is missing or empty")
    states = sorted(n for n in names if STATE_FILE.match(n))
    if "tuner.pkl" not in names or not states:
        raise refuse("tuner.pkl or experiment_state-*.json is missing")
    try:
        with filesystem.open_input_file(f"{root}/tuner.pkl") as f:
            # Walk the pickle's opcodes to its STOP without running it (Tune itself loads it).
            for _ in pickletools.genops(f.readall()):
                pass
        with filesystem.open_input_file(f"{root}/{states[-1]}") as f:
            state = json.loads(f.readall())
        # Each entry is a trial's own JSON state (and its run metadata), as Tune wrote it.
        return {json.loads(entry[0])["trial_id"] for entry in state["trial_data"]}
    except Exception as err:
        raise refuse(f"its saved state is truncated or unreadable ({type(err).__name__})") from None
