"""From a validated spec to a running Ray Tune experiment, and the bookkeeping around it.

Our searcher names map onto Ray's own searchers (no registry of our own): ``optuna`` is
``OptunaSearch`` with a seeded TPE sampler (conditional spaces define-by-run), ``random`` is Ray's
seeded ``BasicVariantGenerator`` over Ray Tune domains (``spaces.tune_domains``), ``grid`` the same
generator over the spec's grid points. ``asha`` is Ray's ``ASHAScheduler``.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from tunefleet.spaces import GRID_KEY, SearchSpec, SpecError, define_by_run, grid_points, grid_size, tune_domains
from tunefleet.trainables import TrialSettings, tune_trainable


def check_models(spec: SearchSpec) -> None:
    """Every model the space can pick must be a timm model name."""
    import timm

    domain = spec.space.get("model")
    names = [] if domain is None else domain.grid_values("space.model")
    for name in names:
        if not isinstance(name, str) or not timm.is_model(name):
            close = timm.list_models(f"*{str(name)[:6]}*")[:3]
            hint = f"; similar: {', '.join(close)}" if close else ""
            raise SpecError("space.model", f"unknown timm model {name!r}{hint}")


def preflight(spec: SearchSpec) -> int:
    """Everything checkable before Ray starts; returns how many trials will run."""
    check_models(spec)
    return planned_trials(spec)


def planned_trials(spec: SearchSpec) -> int:
    """How many trials will run; for grid search, the grid size (checked against num_samples)."""
    if spec.search.searcher != "grid":
        return spec.search.num_samples
    size = grid_size(spec.space)
    if size > spec.search.num_samples:
        raise SpecError(
            "search.num_samples", f"the grid has {size} points, more than num_samples={spec.search.num_samples}"
        )
    return size


def trial_settings(spec: SearchSpec) -> TrialSettings:
    gpus = spec.resources.gpus_per_worker
    return TrialSettings(
        data_kind=spec.data.kind,
        image_size=spec.data.image_size,
        split_seed=spec.data.split_seed,
        max_epochs=spec.search.max_epochs,
        metric=spec.search.metric,
        mode=spec.search.mode,
        seed=spec.search.seed,
        workers=spec.resources.workers_per_trial,
        device="cuda" if gpus > 0 else "cpu",
        threads=max(1, int(spec.resources.cpus_per_worker)),
    )


def optuna_sampler(searcher: str, seed: int) -> Any:
    """The Optuna sampler behind ``searcher`` (``optuna`` or ``random``); benchmarks reuse it."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if searcher == "optuna":
        # constant_liar keeps parallel TPE trials from all proposing the same point.
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    return optuna.samplers.RandomSampler(seed=seed)


def _searcher(spec: SearchSpec) -> Any:
    """``optuna``: OptunaSearch (seeded TPE, define-by-run, so conditional knobs are sampled only
    under their option); ``random``: Tune's own seeded generator over ``tune_domains``;
    ``grid``: Tune's generator over the points in ``_param_space``."""
    s = spec.search
    if s.searcher in ("grid", "random"):
        from ray.tune.search import BasicVariantGenerator

        return BasicVariantGenerator(random_state=s.seed)
    from ray.tune.search.optuna import OptunaSearch

    sampler = optuna_sampler(s.searcher, s.seed)
    return OptunaSearch(space=define_by_run(spec.space), metric=s.metric, mode=s.mode, sampler=sampler)


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
    s = spec.search
    if s.scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        return ASHAScheduler(
            time_attr="epoch", max_t=s.max_epochs, grace_period=s.grace_period, reduction_factor=s.reduction_factor
        )
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


def start_ray(address: str | None) -> None:
    """Connect to a cluster at ``address``, or start a quiet local Ray on this machine's CPUs."""
    import ray

    # Tune's default CSV/JSON/TensorBoard loggers duplicate what MLflow records; skip the writes.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Checkpoints come only on improvement; Tune's warning about frequent state syncs is noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # With the file loggers off, Tune's result analysis cannot find progress files; MLflow has them.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)


def run_experiment(
    spec: SearchSpec, callbacks: list[Any], storage: Path, num_trials: int, trainable: Any = None
) -> None:
    """Build the Tuner for ``spec`` and run it to the end; trial errors do not raise.

    ``trainable`` replaces the image-classification trial (a function taking ``(config, settings)``);
    benchmarks pass a sleep or table-lookup trainable to time the orchestration alone.
    """
    from ray import tune

    res = spec.resources
    trainable = tune.with_resources(
        tune.with_parameters(trainable or tune_trainable, settings=trial_settings(spec)),
        {"cpu": res.cpus_per_worker, "gpu": res.gpus_per_worker},
    )
    grid = spec.search.searcher == "grid"
    tuner = tune.Tuner(
        trainable,
        param_space=_param_space(spec),
        tune_config=tune.TuneConfig(
            metric=spec.search.metric,
            mode=spec.search.mode,
            search_alg=_searcher(spec),
            scheduler=_scheduler(spec),
            num_samples=1 if grid else num_trials,
            max_concurrent_trials=spec.search.max_concurrent,
            time_budget_s=spec.search.time_budget_s,
            # One actor per slot runs trial after trial: no process start, and the decoded
            # dataset cached in the worker is reused.
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(storage.resolve()),
            verbose=0,
            callbacks=callbacks,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )
    tuner.fit()
