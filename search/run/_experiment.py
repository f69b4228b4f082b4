"""From a validated spec to a running Ray Tune experiment, and the bookkeeping around it.

Our searcher names map onto Ray's own searchers (no registry of our own): ``optuna`` is
``OptunaSearch`` with a seeded TPE sampler (conditional spaces define-by-run), ``random`` is Ray's
seeded ``BasicVariantGenerator`` over Ray Tune domains (``spaces.tune_domains``), ``grid`` the same
generator over the spec's grid points. Schedulers, Optuna samplers and the ``search.stop_at``
stopper come from the tables in ``_schedulers`` (imported where a search is built: it loads Ray).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunefleet.spaces import (
    GRID_KEY,
    SearchSpec,
    define_by_run,
    grid_points,
    objective_modes,
    tune_domains,
)
from tunefleet.trainables import RunLink, TrialSettings, tune_trainable

if TYPE_CHECKING:
    from ._warm import WarmStart


def trial_settings(spec: SearchSpec, run_link: RunLink | None = None) -> TrialSettings:
    return TrialSettings.from_spec(spec, run_link=run_link)


def storage_uri(storage: str | Path) -> str:
    """Ray Tune's storage: a URI pyarrow understands (``s3://``, ``gs://``) as it is, else an
    absolute path (on a cluster, one every node shares)."""
    text = str(storage)
    return text if "://" in text else str(Path(text).expanduser().resolve())


def optuna_sampler(searcher: str, seed: int, sampler: str = "tpe") -> Any:
    """The Optuna sampler behind ``searcher`` (``optuna``: ``search.sampler``, seeded TPE by
    default; ``random``: seeded random); benchmarks reuse it. See ``_schedulers.SAMPLERS``."""
    from ._schedulers import optuna_sampler as from_table

    return from_table(searcher, seed, sampler)


def _searcher(spec: SearchSpec, warm: WarmStart | None = None) -> Any:
    """``optuna``: OptunaSearch (seeded TPE, define-by-run, so conditional knobs are sampled only
    under their option); ``random``: Tune's own seeded generator over ``tune_domains``;
    ``grid``: Tune's generator over the points in ``_param_space``. ``warm``: earlier trials as
    Optuna's history with the best enqueued (random: the best run first); ``search.start_with``
    enqueued before them."""
    s = spec.search
    if s.searcher in ("grid", "random"):
        from ray.tune.search import BasicVariantGenerator

        # Tune ignores max_concurrent_trials for a generator; it takes the limit itself (0 = none).
        first = warm.run_first() if warm is not None else None
        return BasicVariantGenerator(
            random_state=s.seed, max_concurrent=_concurrency(spec) or 0, points_to_evaluate=first
        )
    from ray.tune.search.optuna import OptunaSearch

    sampler = optuna_sampler(s.searcher, s.seed, s.sampler)
    study: dict[str, Any] = {}
    if warm is not None or s.start_with:
        from ._warm import warm_study

        study["storage"], study["study_name"] = warm_study(spec, warm, sampler)
    if s.objectives:  # several: Optuna's multi-objective study; the scheduler ranks on the first
        metric: Any = list(s.objectives)
        mode: Any = objective_modes(s.objectives)
    else:
        metric, mode = s.metric, s.mode
    return OptunaSearch(space=define_by_run(spec.space), metric=metric, mode=mode, sampler=sampler, **study)


def _param_space(spec: SearchSpec) -> dict[str, Any] | None:
    """Grid: one ``grid_search`` over whole points (conditional knobs make the grid a union of
    per-option products, which per-key grids cannot express). Random: Ray Tune domains, each
    option's knobs sampled flat and dropped by ``resolve`` when their option is not chosen."""
    if spec.search.searcher == "optuna":
        return None
    from ray import tune

    if spec.search.searcher == "random":
        return tune_domains(spec.space)
    return {GRID_KEY: tune.grid_search(grid_points(spec.space))}


def _scheduler(spec: SearchSpec) -> Any:
    from ._schedulers import SCHEDULERS

    return SCHEDULERS[spec.search.scheduler](spec)


def _concurrency(spec: SearchSpec) -> int | None:
    """The spec's limit on parallel trials, else for multi-worker trials how many fit the cluster
    at once (their coordinators reserve almost nothing, so Tune alone would start them all)."""
    res = spec.resources
    if spec.search.max_concurrent or res.workers_per_trial == 1:
        return spec.search.max_concurrent
    import ray

    total = ray.cluster_resources()
    fits = [total.get("CPU", 1.0) // (res.cpus_per_worker * res.workers_per_trial)]
    if res.gpus_per_worker > 0:
        fits.append(total.get("GPU", 0.0) // (res.gpus_per_worker * res.workers_per_trial))
    return max(1, int(min(fits)))


def _checkpoints_kept(spec: SearchSpec) -> int:
    """Checkpoints Tune keeps per trial. One is enough to resume; under PBT a weak trial restarts
    from a strong trial's checkpoint, which must outlive the strong trial's next reports until
    the weak one has loaded it (Tune warns below three)."""
    return 4 if spec.search.scheduler == "pbt" else 1


def experiment_name(spec: SearchSpec) -> str:
    """The name of a new search's Ray Tune experiment (a folder under the storage)."""
    return f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def experiment_path(storage: str | Path, name: str) -> str:
    """Where Ray Tune keeps the experiment's state and checkpoints; ``resume`` restores from it."""
    return f"{storage_uri(storage).rstrip('/')}/{name}"


def _trainable(spec: SearchSpec, trainable: Any, run_link: RunLink | None) -> Any:
    from ray import tune

    res = spec.resources
    # A multi-worker trial only coordinates: its Ray Train workers reserve the CPUs/GPUs. Tune
    # refuses an empty reservation, and any CPU fraction here would leave the last worker group
    # of a full machine unplaceable, so it reserves one byte of memory instead.
    reserve: Any = (
        {"cpu": res.cpus_per_worker, "gpu": res.gpus_per_worker}
        if res.workers_per_trial == 1
        else tune.PlacementGroupFactory([{"memory": 1}])
    )
    return tune.with_resources(
        tune.with_parameters(trainable or tune_trainable, settings=trial_settings(spec, run_link)), reserve
    )


def _save_state_often() -> None:
    # Ray Tune saves the experiment state (trial statuses, searcher and scheduler) at most every
    # 10 s by default; a driver killed in between resumes trials that had already ended. Every
    # second costs a small JSON write per second on local storage.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")


def run_experiment(
    spec: SearchSpec,
    callbacks: list[Any],
    storage: str | Path,
    num_trials: int,
    trainable: Any = None,
    run_link: RunLink | None = None,
    name: str | None = None,
    warm: WarmStart | None = None,
) -> None:
    """Build the Tuner for ``spec`` and run it to the end; trial errors do not raise.

    ``trainable`` replaces the image-classification trial (a function taking ``(config, settings)``);
    benchmarks pass a sleep or table-lookup trainable to time the orchestration alone.
    ``run_link``: trials upload their best checkpoints to MLflow themselves (an MLflow server).
    ``name``: the experiment's folder under ``storage`` (default: a new ``experiment_name``).
    ``warm``: earlier trials the searcher starts from (``search.warm_start``).
    """
    from ray import tune

    from ._schedulers import stopper

    _save_state_often()
    grid = spec.search.searcher == "grid"
    stop = stopper(spec, callbacks)
    if stop is not None:  # it closes the trials its stop_all ends for the other callbacks
        callbacks = [*callbacks, stop]
    tuner = tune.Tuner(
        _trainable(spec, trainable, run_link),
        param_space=_param_space(spec),
        tune_config=tune.TuneConfig(
            metric=spec.search.metric,
            mode=spec.search.mode,
            search_alg=_searcher(spec, warm),
            scheduler=_scheduler(spec),
            num_samples=1 if grid else num_trials,
            max_concurrent_trials=None if spec.search.searcher in ("grid", "random") else _concurrency(spec),
            # search.time_budget: the stopper keeps it, so trials it cuts close as stopped.
            # One actor per slot runs trial after trial: no process start, and the decoded
            # dataset cached in the worker is reused.
            # Multi-worker trials start a fresh worker group each anyway, and Tune cannot reset
            # a coordinator whose Ray Train run is still winding down.
            reuse_actors=spec.resources.workers_per_trial == 1,
        ),
        run_config=tune.RunConfig(
            name=name or experiment_name(spec),
            storage_path=storage_uri(storage),
            verbose=0,
            callbacks=callbacks,
            stop=stop,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=_checkpoints_kept(spec)),
            # A failed trial (worker lost, out of memory) restarts from its latest checkpoint.
            failure_config=tune.FailureConfig(max_failures=spec.search.max_failures),
        ),
    )
    tuner.fit()


def resume_experiment(
    path: str, spec: SearchSpec, callbacks: list[Any], trainable: Any = None, run_link: RunLink | None = None
) -> None:
    """Continue the experiment saved at ``path`` (``Tuner.restore``): finished and failed trials
    stay as they are, unfinished ones continue from their latest checkpoints, and the searcher
    goes on from its saved state, so no config is proposed twice (Tune saves no scheduler state)."""
    from ray import tune

    from ._schedulers import stopper

    _save_state_often()
    tuner = tune.Tuner.restore(path, trainable=_trainable(spec, trainable, run_link), resume_unfinished=True)
    # Restore brings back the callbacks pickled when the search started (stale ledger, no
    # console); Tune has no public way to pass new ones, so they are set on the restored config,
    # with a stopper that tells these callbacks (not the pickled ones) of the trials it ends.
    stop = stopper(spec, callbacks)
    config = tuner._local_tuner._run_config  # type: ignore[union-attr]
    config.callbacks, config.stop = ([*callbacks, stop], stop) if stop is not None else (callbacks, None)
    tuner.fit()
