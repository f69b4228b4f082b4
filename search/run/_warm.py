"""Warm start: the finished trials of earlier searches become this search's history.

``search.warm_start`` names MLflow experiments in the same store. Their completed trial runs whose
params fit this spec's space (``spaces.point_from_params``) are handed to the searcher: to
Optuna as evaluated trials (``Study.add_trials``: its sampler learns from them as from its own),
and the best few also run first (``Study.enqueue_trial``; for random search, Tune's
``points_to_evaluate``), so a warm search starts where the earlier ones ended. The search run
records which runs it learned from.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from tunefleet.spaces import (
    SearchSpec,
    SpecError,
    define_by_run,
    objective_key,
    objective_modes,
    point_from_params,
    shared_knobs,
)
from tunefleet.spaces import records as rec

from ..tracking._open import sqlite_database

FIELD = "search.warm_start"
RUN_FIRST = 3  # the best earlier configs that run again first (at this search's epochs and seed)
_PAGE = 10_000


class WarmPoint(NamedTuple):
    point: dict[str, Any]  # in the space's own names (what the searcher samples)
    value: float  # the earlier trial's best value of this search's metric
    run_id: str
    values: tuple[float, ...] = ()  # each of this search's objectives (its metric alone when it has one)


class WarmStart(NamedTuple):
    points: list[WarmPoint]  # best first
    experiments: tuple[str, ...]
    rerun: int = RUN_FIRST  # 0 when the points are this search's own trials (``resume --more``)

    def run_first(self) -> list[dict[str, Any]]:
        """The configs that run before the searcher proposes its own."""
        return [p.point for p in self.points[: self.rerun]]

    def describe(self, metric: str) -> str:
        """One line for the plan."""
        best = f", best {metric}={self.points[0].value:.4g}" if self.points else ""
        if not self.rerun:
            return f"searcher history: the {len(self.points)} earlier trials of this search{best}"
        first = min(self.rerun, len(self.points))
        return (
            f"warm start: {len(self.points)} earlier trials from {', '.join(self.experiments)}{best}; "
            f"the best {first} run first"
        )

    def tags(self) -> dict[str, str]:
        """What the search run records about it (MLflow tag values hold up to 8000 characters)."""
        runs = ",".join(p.run_id for p in self.points)
        return {rec.WARM_START_TAG: ",".join(self.experiments), rec.WARM_RUNS_TAG: runs[:7900]}


def _completed_trials(client: MlflowClient, experiment_id: str) -> list[Run]:
    query = f"tags.`{rec.ROLE_TAG}` = '{rec.ROLE_TRIAL}' and tags.`{rec.OUTCOME_TAG}` = '{rec.COMPLETED}'"
    runs: list[Run] = []
    token: str | None = None
    while True:
        page = client.search_runs([experiment_id], query, max_results=_PAGE, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _experiment_points(client: MlflowClient, spec: SearchSpec, name: str) -> list[WarmPoint]:
    experiment = client.get_experiment_by_name(name)
    if experiment is None or experiment.lifecycle_stage == "deleted":
        raise SpecError(FIELD, f"no experiment {name!r} in the tracking store")
    runs = _completed_trials(client, experiment.experiment_id)
    if not runs:
        raise SpecError(FIELD, f"experiment {name!r} has no completed trial to learn from")
    if not any(shared_knobs(spec.space, r.data.params) for r in runs):
        knobs = ", ".join(sorted(spec.space))
        raise SpecError(FIELD, f"the trials of {name!r} share no searched knob with this space ({knobs})")
    points = _scored_points(spec, runs)
    if not points:
        metric = " and ".join(objective_key(n) for n in _objectives(spec))
        raise SpecError(FIELD, f"none of the {len(runs)} completed trials of {name!r} fits this space or has {metric}")
    return points


def _objectives(spec: SearchSpec) -> tuple[str, ...]:
    return spec.search.objectives or (spec.search.metric,)


def _scored_points(spec: SearchSpec, runs: list[Run]) -> list[WarmPoint]:
    """The runs that are points of ``spec``'s space and have a value of each objective (the best
    epoch's for a metric; a serving cost as measured)."""
    keys = [objective_key(name) for name in _objectives(spec)]
    points = []
    for run in runs:
        point = point_from_params(spec.space, run.data.params)
        if point is not None and all(k in run.data.metrics for k in keys):
            values = tuple(run.data.metrics[k] for k in keys)
            points.append(WarmPoint(point, values[0], run.info.run_id, values))
    return points


def warm_start(uri: str, spec: SearchSpec) -> WarmStart | None:
    """The earlier trials ``spec`` learns from, best first; None when it names no experiment.
    Bad names are ``SpecError`` on ``search.warm_start``, raised before anything starts."""
    names = tuple(spec.search.warm_start)
    if not names:
        return None
    if spec.search.searcher == "grid":
        raise SpecError(FIELD, "grid search runs every grid point anyway; warm start needs optuna or random")
    database = sqlite_database(uri)
    if database is not None and not database.is_file():  # opening it would create it: nothing is written
        raise SpecError(FIELD, f"no experiment {names[0]!r}: the tracking store {database} does not exist")
    client = MlflowClient(tracking_uri=uri)
    points = [p for name in names for p in _experiment_points(client, spec, name)]
    points.sort(key=lambda p: p.value, reverse=spec.search.mode == "max")
    return WarmStart(points, names)


def own_history(spec: SearchSpec, runs: list[Run], experiment: str) -> WarmStart:
    """A finished search's own trials (completed, or stopped early with a score) as the history a
    searcher extended by ``resume --more`` goes on from; none of them runs again."""
    points = _scored_points(spec, runs)
    points.sort(key=lambda p: p.value, reverse=spec.search.mode == "max")
    return WarmStart(points, (experiment,), rerun=0)


def warm_study(spec: SearchSpec, warm: WarmStart | None, sampler: Any) -> tuple[Any, str]:
    """An Optuna study (in memory) that already holds the earlier trials (``warm``), with
    ``search.start_with`` and then the best earlier configs enqueued to run first;
    ``OptunaSearch(storage=..., study_name=...)`` loads it. Returns the storage and the study name."""
    import optuna

    storage = optuna.storages.InMemoryStorage()
    name = f"{spec.name}-warm"
    # One direction per objective (OptunaSearch's own study for several, as Ray builds it).
    best = {"max": optuna.study.StudyDirection.MAXIMIZE, "min": optuna.study.StudyDirection.MINIMIZE}
    directions = [best[mode] for mode in objective_modes(_objectives(spec))]
    study = optuna.create_study(storage=storage, sampler=sampler, study_name=name, directions=directions)
    space = define_by_run(spec.space)
    trials = []
    for p in warm.points if warm is not None else []:
        fixed = optuna.trial.FixedTrial(p.point)
        space(fixed)  # records the distributions of the searched params, as the search's own trials have them
        trials.append(
            optuna.trial.create_trial(
                params=fixed.params,
                distributions=fixed.distributions,
                values=list(p.values or (p.value,)),
                user_attrs={"mlflow_run_id": p.run_id},
            )
        )
    study.add_trials(trials)
    for point in spec.search.start_with:  # partial configs: the sampler fills in the rest
        study.enqueue_trial(dict(point))
    for trial in trials[: warm.rerun if warm is not None else 0]:
        study.enqueue_trial(trial.params)
    return storage, name
