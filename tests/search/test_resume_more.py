"""``tunefleet resume EXPERIMENT --more N``: a finished search gets more trials in the same search
run, its own trials the searcher's history; bad input is one line and starts nothing."""

from __future__ import annotations

import shutil

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tunefleet.search.resume._resume import find_resumable
from tunefleet.spaces import records as rec

from ..conftest import SMALL_SPEC, cli_in


def _search_run(client: MlflowClient, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    (run,) = client.search_runs([exp.experiment_id], f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_SEARCH}'")
    return run


def _trials(client: MlflowClient, parent) -> list:
    return client.search_runs(
        [parent.info.experiment_id], rec.trials_filter(parent.info.run_id), order_by=["attributes.start_time ASC"]
    )


@pytest.mark.slow
def test_more_adds_trials_to_the_finished_search_run(searched, tmp_path):
    """Nothing earlier is lost or rerun: the four trials stay as they were, two new ones follow
    them in the same search run (named on from t05, new configs), and the search run's summary
    counts all six."""
    shutil.copy(searched.folder / "mlflow.db", tmp_path / "mlflow.db")
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = _search_run(client, "small")
    # The new Ray Tune experiment goes beside the first one: here, not in the shared search's folder.
    client.set_tag(parent.info.run_id, rec.TUNE_PATH_TAG, str(tmp_path / "runs" / "small-first"))
    before = {r.info.run_id: (r.info.status, r.data.params, r.data.metrics) for r in _trials(client, parent)}
    configs = {(p["lr"], p["optimizer"]) for _, p, _ in before.values()}

    result = cli_in(tmp_path)("resume", "small", "--more", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"extending search run {parent.info.run_id}: 4 earlier trial(s) kept as they are; 2 more" in result.stdout
    assert "searcher history: the 4 earlier trials of this search" in result.stdout

    after = _search_run(client, "small")
    assert after.info.run_id == parent.info.run_id and after.info.status == "FINISHED"
    assert after.data.tags[rec.EXTENSIONS_TAG] == "1"
    assert after.data.tags[rec.TUNE_PATH_TAG].startswith(str(tmp_path / "runs"))
    trials = _trials(client, after)
    assert len(trials) == 6
    for run in trials[:4]:  # the earlier trials, untouched
        assert (run.info.status, run.data.params, run.data.metrics) == before[run.info.run_id]
    new = trials[4:]
    assert [r.info.run_name.split()[0] for r in new] == ["t05", "t06"]
    assert all(r.info.status == "FINISHED" and r.data.tags[rec.OUTCOME_TAG] == rec.COMPLETED for r in new)
    assert not {(r.data.params["lr"], r.data.params["optimizer"]) for r in new} & configs  # none rerun
    assert after.data.metrics[rec.TRIALS_COMPLETED] == 6
    assert after.data.metrics[rec.WALL_S] > parent.data.metrics[rec.WALL_S]

    # Had this driver died, a resume would restore the second Tune experiment, which holds only
    # the two new trials: the four earlier ones are kept as they are, never taken for trials
    # Tune lost (those runs are deleted and rerun).
    client.set_terminated(after.info.run_id, "KILLED")
    point = find_resumable(f"sqlite:///{tmp_path / 'mlflow.db'}", "small", None)
    assert [r.info.run_id for r in point.trials] == [r.info.run_id for r in trials]
    assert point.unsaved == []


def _unfinished_search(tmp_path, searcher: str = "optuna", status: str = "RUNNING") -> None:
    """A real SQLite store holding experiment ``small``'s search run with its spec."""
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("small")
    run = client.create_run(experiment, tags={rec.ROLE_TAG: rec.ROLE_SEARCH, rec.SPEC_NAME_TAG: "small"})
    spec = tmp_path / "recorded" / rec.SPEC_ARTIFACT
    spec.parent.mkdir()
    spec.write_text(yaml.safe_dump({**SMALL_SPEC, "search": {**SMALL_SPEC["search"], "searcher": searcher}}))
    client.log_artifact(run.info.run_id, str(spec))
    shutil.rmtree(spec.parent)
    if status != "RUNNING":
        client.set_terminated(run.info.run_id, status)


@pytest.mark.parametrize(
    ("searcher", "status", "args", "message"),
    [
        ("optuna", "KILLED", ["--more", "2"], "--more: search run"),
        ("grid", "FINISHED", ["--more", "2"], "is a grid search: it ran every grid point already"),
        ("optuna", "FINISHED", ["--more-time", "soon"], "search.time_budget"),
        ("optuna", "FINISHED", ["--more", "0"], "--more"),
    ],
    ids=["interrupted", "grid", "bad-time", "zero"],
)
def test_bad_more_is_one_line_and_starts_nothing(run_cli, tmp_path, searcher, status, args, message):
    _unfinished_search(tmp_path, searcher, status)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_cli("resume", "small", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == before
