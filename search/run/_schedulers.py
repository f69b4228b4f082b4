"""Our scheduler and sampler names, mapped onto Ray Tune's schedulers and Optuna's samplers.

Two plain tables, as Ray Tune's searcher table is one (``ray.tune.search.SEARCH_ALG_IMPORT``):
``SCHEDULERS`` (name -> ``factory(spec)`` -> a Tune scheduler) and ``SAMPLERS`` (name ->
``factory(seed)`` -> an Optuna sampler). ``spaces._search_settings`` names the same keys as ``Literal``
types (a test keeps them equal), so a spec is checked before Ray or Optuna load. Each factory
imports its library inside: only the chosen one loads.

Time is counted in epochs (``time_attr="epoch"``, what every trial reports), so ``max_epochs``,
``grace_period`` and ``perturbation_interval`` mean epochs in every scheduler that takes them.

``TargetStopper`` is ``search.stop_at``: a Tune stopper that ends the search once a trial reaches
the target. This module loads Ray Tune (the stopper's base classes): ``_experiment`` imports it
only where a search is built, so the CLI still answers bad input before Ray loads.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from ray.tune import Callback
from ray.tune.stopper import Stopper

from tunefleet.spaces import Categorical, Float, Int, SearchSettings, SearchSpec, tune_domains

# Knobs a PBT exploit may change in a running trial: the LR (the optimizer keeps its moments and
# the schedule restarts from the new peak at the same point; see trainables/_restore.py) and the
# augmentation (its transforms are rebuilt from the config). Anything else (model, batch size,
# optimizer) would not fit the donor's weights or optimizer state.
PBT_KNOBS = ("lr",)
PBT_GROUPS = ("augmentation.",)


def _asha(spec: SearchSpec) -> Any:
    from ray.tune.schedulers import ASHAScheduler

    s = spec.search
    return ASHAScheduler(
        time_attr="epoch", max_t=s.max_epochs, grace_period=s.grace_period, reduction_factor=s.reduction_factor
    )


def _hyperband(spec: SearchSpec) -> Any:
    # Synchronous HyperBand pauses a bracket's trials at each rung and resumes the best (from
    # their checkpoints); it has no grace period: its smallest rung follows from max_t and eta.
    from ray.tune.schedulers import HyperBandScheduler

    s = spec.search
    return HyperBandScheduler(time_attr="epoch", max_t=s.max_epochs, reduction_factor=s.reduction_factor)


def _median(spec: SearchSpec) -> Any:
    from ray.tune.schedulers import MedianStoppingRule

    return MedianStoppingRule(time_attr="epoch", grace_period=spec.search.grace_period)


def _fifo(spec: SearchSpec) -> Any:
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


class ClampToSpace:
    """PBT's explore step multiplies a number by 0.8 or 1.2, which can leave the spec's range
    (an lr above its ``loguniform`` high); each perturbed number is put back inside its domain.
    A class, not a closure: Tune pickles the scheduler with the experiment state."""

    def __init__(self, bounds: dict[str, tuple[float, float]]) -> None:
        self.bounds = bounds

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        for key, (low, high) in self.bounds.items():
            if key in config:
                value = min(max(config[key], low), high)
                config[key] = type(config[key])(value)
        return config


def pbt_mutations(spec: SearchSpec) -> tuple[dict[str, Any], dict[str, tuple[float, float]]]:
    """What PBT may perturb: the searched ``lr`` and ``augmentation.*`` knobs, as Tune domains for
    numbers (multiplied by 0.8/1.2, or resampled) and lists for choices (shifted to a neighbour,
    or resampled); and each number's bounds."""
    domains = tune_domains(spec.space)
    mutations: dict[str, Any] = {}
    bounds: dict[str, tuple[float, float]] = {}
    for key, domain in spec.space.items():
        if key not in PBT_KNOBS and not key.startswith(PBT_GROUPS):
            continue
        if isinstance(domain, Categorical) and len(domain.choices) > 1:
            mutations[key] = list(domain.choices)
        elif isinstance(domain, Float | Int):
            mutations[key], bounds[key] = domains[key], (domain.low, domain.high)
    return mutations, bounds


def _pbt(spec: SearchSpec) -> Any:
    from ray.tune.schedulers import PopulationBasedTraining

    mutations, bounds = pbt_mutations(spec)
    if not mutations:
        from tunefleet.spaces import SpecError

        raise SpecError("search.scheduler", "pbt needs a searched space.lr or space.augmentation knob to perturb")
    return PopulationBasedTraining(
        time_attr="epoch",
        perturbation_interval=spec.search.perturbation_interval,
        hyperparam_mutations=mutations,
        custom_explore_fn=ClampToSpace(bounds),
        log_config=False,  # Tune's policy files; MLflow records each trial's epochs and lr
    )


SCHEDULERS: dict[str, Callable[[SearchSpec], Any]] = {
    "asha": _asha,
    "hyperband": _hyperband,
    "median": _median,
    "pbt": _pbt,
    "fifo": _fifo,
}


def _tpe(seed: int) -> Any:
    import optuna

    # constant_liar keeps parallel TPE trials from all proposing the same point.
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def _gp(seed: int) -> Any:
    import optuna

    return optuna.samplers.GPSampler(seed=seed)


def _cmaes(seed: int) -> Any:
    import optuna

    # CMA-ES models numbers only: categorical knobs (and an option's conditional knobs) come from
    # Optuna's independent (random) sampler; every trial would warn about it.
    return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)


def _nsga2(seed: int) -> Any:
    import optuna

    # NSGA-II: a genetic multi-objective sampler (its first generation, 50 trials, is random).
    return optuna.samplers.NSGAIISampler(seed=seed)


SAMPLERS: dict[str, Callable[[int], Any]] = {"tpe": _tpe, "gp": _gp, "cmaes": _cmaes, "nsga2": _nsga2}


def optuna_sampler(searcher: str, seed: int, sampler: str = "tpe") -> Any:
    """The Optuna sampler behind ``searcher`` (``optuna``: ``SAMPLERS[sampler]``; ``random``:
    Optuna's seeded random sampler); benchmarks reuse it."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if searcher == "optuna":
        return SAMPLERS[sampler](seed)
    return optuna.samplers.RandomSampler(seed=seed)


def reached_target(search: SearchSettings, value: float | None) -> bool:
    """Whether ``value`` of the search's metric meets ``search.stop_at`` (>= for max, <= for min)."""
    if search.stop_at is None or value is None or math.isnan(value):
        return False
    return value >= search.stop_at if search.mode == "max" else value <= search.stop_at


class TargetStopper(Stopper, Callback):
    """``search.stop_at``: once a trial reports the metric at the target, every trial that reports
    next is stopped (``__call__``) and ``stop_all`` ends the search: no new trials.

    It also keeps ``search.time_budget`` (in place of Tune's ``time_budget_s``, which ends the
    search the same way): once the budget has passed since its first check, ``stop_all`` ends the
    search, and the trials it cuts close as stopped with their best checkpoints, never as
    interrupted (a search that ran out of its time budget finished; it was not Ctrl-C).

    Tune's ``stop_all`` ends the trials still running without telling the callbacks
    (``on_trial_complete``, which a per-trial stop sends); the search's callbacks would then take
    them for interrupted. So this stopper is a callback too, and at the end of that step tells
    ``notify`` (the search's callbacks, in their order) that those trials completed: they close
    as stopped, the way a scheduler's stop closes them.
    """

    def __init__(self, search: SearchSettings, notify: list[Any]) -> None:
        self.search = search
        self.notify = notify
        self.reached_by: tuple[str, float] | None = None  # (trial id, its value), once reached
        self._deadline: float | None = None  # monotonic seconds, from the first stop_all check
        self._started: set[str] = set()
        self._ended: set[str] = set()
        self._closed = False

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        value = result.get(self.search.metric)
        if self.reached_by is None and reached_target(self.search, value):
            self.reached_by = (trial_id, float(value))  # type: ignore[arg-type]  # reached: a number
        return self.reached_by is not None

    def stop_all(self) -> bool:
        return self.reached_by is not None or self._out_of_time()

    def _out_of_time(self) -> bool:
        if self.search.time_budget is None:
            return False
        if self._deadline is None:
            self._deadline = time.monotonic() + self.search.time_budget
        return time.monotonic() >= self._deadline

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._started.add(trial.trial_id)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._ended.add(trial.trial_id)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._ended.add(trial.trial_id)

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        if self._closed or not (self.reached_by is not None or self._out_of_time()):
            return
        self._closed = True
        for trial in trials:
            if trial.trial_id in self._started and trial.trial_id not in self._ended:
                self._ended.add(trial.trial_id)
                for callback in self.notify:
                    callback.on_trial_complete(iteration=iteration, trials=trials, trial=trial)


def stopper(spec: SearchSpec, callbacks: list[Any]) -> TargetStopper | None:
    """The search's stopper (``search.stop_at``, ``search.time_budget``), or None; ``callbacks``:
    the search's own."""
    wanted = spec.search.stop_at is not None or spec.search.time_budget is not None
    return TargetStopper(spec.search, list(callbacks)) if wanted else None
