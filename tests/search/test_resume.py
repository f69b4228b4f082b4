"""A search survives its driver: SIGKILL (again and again) or Ctrl-C, then ``tunefleet resume``.

"Nothing lost" here means, checked against MLflow after the search completes:
- exactly ``num_samples`` trial runs, one per Ray Tune trial id (none duplicated), none RUNNING;
- every trial that had ended before a kill is untouched: same status, end time and metric rows;
- every trial ran each epoch up to where it ended, with no gap (a resumed trial may repeat the
  epochs after its last checkpoint: duplicates are allowed);
- no two trials got the same config (the searcher's history was restored);
- the number of ended trials never goes down from one kill to the next.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tunefleet.spaces import records as rec

ENDED = ("FINISHED", "KILLED", "FAILED")


def _start(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.Popen(
        [sys.executable, "-m", "tunefleet.search.cli", *args],
        cwd=tmp_path,
        env={**env, "COLUMNS": "160"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its Ray goes down with it, as on a reboot
    )


def _trial_runs(client: MlflowClient) -> list:
    experiment = client.get_experiment_by_name("small")
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_TRIAL}'")


def _ended(client: MlflowClient) -> dict[str, tuple]:
    """Trial runs that ended and were closed in MLflow: their status, end time and metric rows."""
    out = {}
    for run in _trial_runs(client):
        if run.info.status in ENDED and run.data.tags.get(rec.OUTCOME_TAG) != rec.INTERRUPTED:
            rows = len(client.get_metric_history(run.info.run_id, "val_acc"))
            out[run.info.run_id] = (run.info.status, run.info.end_time, rows)
    return out


def _wait_until(check, proc: subprocess.Popen[str], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the search ended early:\n{proc.stdout.read()[-3000:] if proc.stdout else ''}")
        time.sleep(1)
    raise TimeoutError("the search made no progress")


def _kill(proc: subprocess.Popen[str], sig: int) -> str:
    if sig == signal.SIGKILL:
        proc.kill()  # the driver alone, as `kill -9 PID` would; Ray's reaper takes down its Ray
        proc.wait(timeout=60)
        time.sleep(3)
        with contextlib.suppress(ProcessLookupError):  # anything left of that session, as a reboot would
            os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.send_signal(sig)
        proc.wait(timeout=240)
    return proc.stdout.read() if proc.stdout else ""


def _check_complete(client: MlflowClient, num_samples: int, max_epochs: int) -> None:
    runs = _trial_runs(client)
    trial_ids = [r.data.tags[rec.TRIAL_ID_TAG] for r in runs]
    assert len(runs) == num_samples and len(set(trial_ids)) == num_samples
    assert all(r.info.status in ENDED for r in runs), [(r.info.run_name, r.info.status) for r in runs]
    configs = {tuple(sorted((k, v) for k, v in r.data.params.items() if k != rec.TRIAL_ID_PARAM)) for r in runs}
    assert len(configs) == num_samples  # no config proposed twice
    for run in runs:
        epochs = {int(m.value) for m in client.get_metric_history(run.info.run_id, "epoch")}
        assert epochs == set(range(1, int(run.data.metrics[rec.EPOCHS_TRAINED]) + 1)), run.info.run_name
    (search,) = client.search_runs([runs[0].info.experiment_id], f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_SEARCH}'")
    assert search.info.status == "FINISHED"
    summary = (rec.TRIALS_COMPLETED, rec.TRIALS_STOPPED_EARLY, rec.TRIALS_FAILED)
    assert sum(search.data.metrics[k] for k in summary) == num_samples


@pytest.mark.slow
def test_driver_killed_again_and_again_then_resumed(write_spec, small_spec, tmp_path):
    # 6 trials, 2 at a time. The first kill lands once a trial has ended: at most the first two have
    # (two can end in the same second). The second lands once one more has: at most four have, so
    # two are still to run and the search cannot have finished and closed before the kill. With 4
    # trials (and 3 before that) the last two could end together and the driver close the search
    # first: full suites caught that race twice.
    small_spec["search"].update(num_samples=6, max_epochs=4, max_concurrent=2)
    spec = write_spec(small_spec)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    proc = _start(tmp_path, "search", str(spec))
    ended: dict[str, tuple] = {}
    for kill in range(2):
        # Kill once the search has gone a step further: a trial has ended since the last kill.
        seen = len(ended)
        _wait_until(lambda seen=seen: len(_ended(client)) > seen, proc)
        out = _kill(proc, signal.SIGKILL)
        now = _ended(client)
        # An ended trial stays ended and untouched: progress never goes backwards.
        assert all(now[run_id] == before for run_id, before in ended.items()), "an ended trial was touched"
        ended = now
        if kill == 0:  # a dead driver's search reads as interrupted, with the way to go on
            shown = subprocess.run(
                [sys.executable, "-m", "tunefleet.search.cli", "trials", "small"],
                cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"},
            )  # fmt: skip
            assert "interrupted" in shown.stdout and "tunefleet resume small --search-run" in shown.stdout
        proc = _start(tmp_path, "resume", "small")
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out[-4000:]
    assert "resuming search run" in out
    now = _ended(client)
    assert all(now[run_id] == before for run_id, before in ended.items())
    _check_complete(client, 6, 4)


@pytest.mark.slow
def test_ctrl_c_then_resume_and_what_cannot_be_resumed(cli, write_spec, small_spec, tmp_path):
    # 8 epochs: Ctrl-C must land after a trial's first epoch and before both trials end, seen by
    # polling MLflow; a fast machine can run 4 epochs of this spec between two polls.
    small_spec["search"].update(num_samples=2, max_epochs=8, max_concurrent=2)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    proc = _start(tmp_path, "search", str(write_spec(small_spec)))
    _wait_until(lambda: any("val_acc" in r.data.metrics for r in _trial_runs(client)), proc)
    out = _kill(proc, signal.SIGINT)
    assert proc.returncode == 130 and "continue it with: tunefleet resume small --search-run" in out, out[-3000:]
    (search,) = client.search_runs(
        [client.get_experiment_by_name("small").experiment_id], f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_SEARCH}'"
    )
    state = Path(search.data.tags[rec.TUNE_PATH_TAG])
    before = {r.info.run_id: r.info.status for r in _trial_runs(client)}

    # The driver kept a whole copy of Tune's final state, for a kill that cuts the state off.
    latest = sorted(state.glob("experiment_state-*.json"))[-1]
    copy = latest.with_name(f"tunefleet-copy-{latest.name}")
    intact = latest.read_bytes()
    assert copy.read_bytes() == intact
    # Truncated state and no copy, or missing state: one line, exit 2, and nothing changed in MLflow.
    latest.write_bytes(intact[: len(intact) // 2])
    shutil.move(copy, state / "aside")
    truncated = cli("resume", "small")
    assert truncated.returncode == 2 and "truncated" in truncated.stderr and len(truncated.stderr.splitlines()) == 1
    shutil.move(state / "aside", copy)  # the state stays cut off: resume puts the copy back
    shutil.move(state, state.with_name("moved"))
    missing = cli("resume", "small")
    assert missing.returncode == 2 and "missing" in missing.stderr, missing.stderr
    shutil.move(state.with_name("moved"), state)
    assert {r.info.run_id: r.info.status for r in _trial_runs(client)} == before
    assert client.get_run(search.info.run_id).info.status == "KILLED"

    resumed = cli("resume", "small")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr
    assert "was cut off; resuming from its last whole copy" in resumed.stdout
    _check_complete(client, 2, 8)

    again = cli("resume", "small")
    assert again.returncode == 2 and "finished; there is nothing to resume" in again.stderr
    unknown = cli("resume", "no-such-search")
    assert unknown.returncode == 2 and "no experiment 'no-such-search'" in unknown.stderr
