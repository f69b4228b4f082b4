"""Warm start: earlier searches' completed trials become the new search's history, best first.

From a trial run's params back to a point of the space (every built-in space, sampled), the
Optuna study a warm search starts from, bad ``search.warm_start`` input, and one real warm search
from the session's shared search (``searched``: four completed trials).
"""

from __future__ import annotations

import shutil

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tunefleet.search.run._warm import RUN_FIRST, WarmPoint, WarmStart, warm_study
from tunefleet.spaces import (
    BUILTIN_SPACES,
    builtin_space,
    contains,
    define_by_run,
    flatten_recipe,
    point_from_params,
    resolve,
    spec_from_dict,
)
from tunefleet.spaces import records as rec

from ..conftest import SMALL_SPEC


def _sampled_points(space, n: int, seed: int = 0) -> list[dict]:
    """``n`` points of ``space`` as Optuna's define-by-run samples them (constants included)."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    sample = define_by_run(space)
    points = []
    for _ in range(n):
        trial = study.ask()
        constants = sample(trial) or {}
        points.append({**trial.params, **constants})
        study.tell(trial, 0.0)
    return points


@pytest.mark.parametrize("name", sorted(BUILTIN_SPACES))
def test_a_trials_params_map_back_to_its_point_in_every_builtin_space(name):
    space = spec_from_dict({"name": "x", "space": {"base": name}}).space
    for point in _sampled_points(space, 12):
        params = {k: str(v) for k, v in flatten_recipe(resolve(point)).items()}  # as MLflow holds them
        assert point_from_params(space, params) == point
        assert contains(space, point)


def test_params_outside_the_space_are_no_point():
    space = spec_from_dict(SMALL_SPEC).space
    (point,) = _sampled_points(space, 1)
    params = {k: str(v) for k, v in flatten_recipe(resolve(point)).items()}
    assert point_from_params(space, {**params, "lr": "0.5"}) is None  # outside loguniform [0.01, 0.08]
    assert point_from_params(space, {**params, "batch_size": "48"}) is None  # not a choice
    del params["lr"]
    assert point_from_params(space, params) is None
    assert point_from_params(builtin_space("default"), {"model": "resnet18"}) is None


def test_the_warm_study_holds_the_earlier_trials_and_asks_the_best_first():
    spec = spec_from_dict(SMALL_SPEC)
    points = _sampled_points(spec.space, 5, seed=1)
    warm = WarmStart([WarmPoint(p, 0.9 - i / 10, f"run{i}") for i, p in enumerate(points)], ("earlier",))
    storage, name = warm_study(spec, warm, optuna.samplers.TPESampler(seed=0))
    study = optuna.load_study(study_name=name, storage=storage)
    done = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert [t.value for t in done] == [p.value for p in warm.points]
    assert [t.user_attrs["mlflow_run_id"] for t in done] == [f"run{i}" for i in range(5)]
    sample = define_by_run(spec.space)
    for expected in points[:RUN_FIRST]:  # the enqueued best run first, as the searcher asks
        trial = study.ask()
        sample(trial)
        assert trial.params == {k: v for k, v in expected.items() if k in trial.params}
        study.tell(trial, 0.5)
    assert len(warm.tags()[rec.WARM_RUNS_TAG].split(",")) == 5


def test_start_configs_run_first_then_the_warm_best_and_the_sampler_fills_the_rest():
    start = {"optimizer": "sgd", "optimizer.sgd.momentum": 0.9, "lr": 0.02}  # batch_size left to the sampler
    spec = spec_from_dict({**SMALL_SPEC, "search": {**SMALL_SPEC["search"], "start_with": [start]}})
    points = _sampled_points(spec.space, 2, seed=1)
    warm = WarmStart([WarmPoint(p, 0.9 - i / 10, f"run{i}") for i, p in enumerate(points)], ("earlier",))
    sample = define_by_run(spec.space)
    for given in (None, warm):  # with no earlier search, and before the earlier best
        storage, name = warm_study(spec, given, optuna.samplers.TPESampler(seed=0))
        study = optuna.load_study(study_name=name, storage=storage)
        trial = study.ask()
        sample(trial)
        assert {k: trial.params[k] for k in start} == start and trial.params["batch_size"] in (32, 64)
        study.tell(trial, 0.5)
        if given is not None:  # then the earlier best, enqueued after
            trial = study.ask()
            sample(trial)
            assert trial.params == {k: v for k, v in points[0].items() if k in trial.params}


def _store_with(tmp_path, params: dict[str, str]) -> None:
    """A real SQLite MLflow store holding one completed trial run of experiment ``other``."""
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("other")
    tags = {rec.ROLE_TAG: rec.ROLE_TRIAL, rec.OUTCOME_TAG: rec.COMPLETED}
    run = client.create_run(experiment, tags=tags)
    for key, value in params.items():
        client.log_param(run.info.run_id, key, value)
    client.log_metric(run.info.run_id, rec.best_key("val_acc"), 0.5)
    client.set_terminated(run.info.run_id)


@pytest.mark.parametrize(
    ("store", "args", "message"),
    [
        (None, ["--warm-start", "earlier"], "search.warm_start: no experiment 'earlier': the tracking store"),
        ({"lr": "0.02"}, ["--warm-start", "nope"], "search.warm_start: no experiment 'nope' in the tracking store"),
        ({"width": "3"}, ["--warm-start", "other"], "search.warm_start: the trials of 'other' share no searched knob"),
        ({"lr": "0.5"}, ["--warm-start", "other"], "search.warm_start: none of the 1 completed trials of 'other' fits"),
        ({"lr": "0.02"}, ["--warm-start", "other", "--searcher", "grid"], "search.warm_start: grid search"),
    ],
    ids=["no-store", "unknown-experiment", "no-shared-knob", "no-fitting-trial", "grid"],
)
def test_bad_warm_start_is_one_line_and_starts_nothing(run_cli, write_spec, tmp_path, store, args, message):
    spec = {**SMALL_SPEC, "space": {**SMALL_SPEC["space"], "lr": {"loguniform": [0.01, 0.08], "grid": [0.01]}}}
    spec["space"]["optimizer"] = {"choice": ["adamw"]}
    path = write_spec(spec)
    if store is not None:
        _store_with(tmp_path, store)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_cli("search", str(path), *args)
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no store, no reports, no Ray folders


@pytest.mark.slow
def test_a_warm_search_starts_from_the_earlier_trials_best_first(searched, tmp_path):
    """Nothing the warm search needs is copied: it reads the earlier runs from the store. Its
    first trials are the earlier best configs in order, and its search run names what it learned from."""
    shutil.copy(searched.folder / "mlflow.db", tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    earlier = client.search_runs(
        [client.get_experiment_by_name("small").experiment_id],
        f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_TRIAL}'",
        order_by=[f"metrics.`{rec.best_key('val_acc')}` DESC"],
    )
    spec = {**SMALL_SPEC, "name": "warm", "search": {**SMALL_SPEC["search"], "num_samples": 3, "max_epochs": 1}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({**spec, "search": {**spec["search"], "warm_start": ["small"]}}))
    from ..conftest import cli_in

    result = cli_in(tmp_path)("search", "spec.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warm start: 4 earlier trials from small" in result.stdout
    warm = client.get_experiment_by_name("warm").experiment_id
    (search_run,) = client.search_runs([warm], f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_SEARCH}'")
    assert search_run.data.tags[rec.WARM_START_TAG] == "small"
    assert set(search_run.data.tags[rec.WARM_RUNS_TAG].split(",")) == {r.info.run_id for r in earlier}
    trials = client.search_runs(
        [warm], f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_TRIAL}'", order_by=["attributes.start_time ASC"]
    )
    knobs = ("lr", "batch_size", "optimizer", "optimizer.momentum")
    config = {r.info.run_id: tuple(r.data.params.get(k) for k in knobs) for r in earlier}
    value = {config[r.info.run_id]: r.data.metrics[rec.best_key("val_acc")] for r in earlier}
    first = [tuple(r.data.params.get(k) for k in knobs) for r in trials]
    assert all(c in value for c in first), (first, value)  # each an earlier config, rerun
    # ... the best three, best first (trials that tied may come in either order)
    assert [value[c] for c in first] == sorted(value.values(), reverse=True)[:3]


def test_a_multi_objective_warm_study_holds_every_objective_of_the_earlier_trials():
    objectives = {"objectives": ["val_acc", "latency_ms"]}
    spec = spec_from_dict({**SMALL_SPEC, "search": {**SMALL_SPEC["search"], **objectives}})
    points = _sampled_points(spec.space, 3, seed=1)
    warm = WarmStart(
        [WarmPoint(p, 0.9 - i / 10, f"run{i}", (0.9 - i / 10, 4.0 - i)) for i, p in enumerate(points)], ("e",)
    )
    storage, name = warm_study(spec, warm, optuna.samplers.NSGAIISampler(seed=0))
    study = optuna.load_study(study_name=name, storage=storage)
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    assert [t.values for t in study.get_trials(states=[optuna.trial.TrialState.COMPLETE])] == [
        [0.9, 4.0], [0.8, 3.0], [0.7, 2.0]
    ]  # fmt: skip
    assert [t.number for t in study.best_trials] == [0, 1, 2]  # each trades accuracy for latency
