"""Opening a search while Ray starts (``search/run/_opening.py``): whatever stops the start (a
refusal, Ctrl-C) leaves no open search run behind, and is the error the user sees, even when
opening the store failed as well. Ray's start is where the fault is injected; the store is real."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from tunefleet.search._preflight import preflight
from tunefleet.search.run import _opening
from tunefleet.spaces import SpecError, load_spec
from tunefleet.spaces import records as rec

SPEC = Path(__file__).resolve().parents[2] / "examples" / "digits.yaml"


def _start_fails_with(error: BaseException):
    def start_ray(address: str | None, dashboard: bool = False) -> None:
        raise error

    return start_ray


def _search_runs(uri: str, name: str) -> list:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    return client.search_runs(
        [experiment.experiment_id], f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_SEARCH}'", run_view_type=ViewType.ALL
    )


@pytest.mark.parametrize(
    ("error", "left"),
    [(KeyboardInterrupt(), ("FAILED", "active")), (SpecError("--address", "no such cluster"), (None, "deleted"))],
)
def test_a_search_stopped_while_ray_starts_leaves_no_open_run(error, left, tmp_path, monkeypatch):
    spec = load_spec(SPEC)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)  # a new experiment's artifacts go to ./mlruns, as in a user's folder
    monkeypatch.setattr(_opening, "start_ray", _start_fails_with(error))
    with pytest.raises(type(error)):
        _opening.open_search(spec, preflight(spec), uri, None, {}, None)
    (run,) = _search_runs(uri, spec.tracking.experiment)  # the store was created, and the run opened (deleted ones too)
    status, stage = left
    assert run.info.lifecycle_stage == stage
    assert status is None or run.info.status == status


def test_the_error_in_flight_wins_over_a_store_that_failed_too(tmp_path, monkeypatch):
    spec = load_spec(SPEC)
    (tmp_path / "file").write_text("not a folder")
    uri = f"sqlite:///{tmp_path / 'file' / 'mlflow.db'}"  # the store cannot be created here
    monkeypatch.setattr(_opening, "start_ray", _start_fails_with(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C exits 130, not with the store's error
        _opening.open_search(spec, preflight(spec), uri, None, {}, None)
    assert not (tmp_path / "file").is_dir()
