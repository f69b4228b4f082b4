"""Which searched parameters mattered: Optuna's fANOVA over a search's finished trials.

A conditional knob (``optimizer.sgd.momentum``) exists only in trials that chose its option, and
fANOVA needs every trial of a study to carry every parameter. So importance is computed per
*scope*: one over all finished trials with the knobs every trial has, and one per option of a
conditional (``optimizer=sgd``) over the trials that chose it, with that option's knobs added.

Trials come from ``trials_frame`` (MLflow params are strings); the spec's space says how to read
each one back and which Optuna distribution it was drawn from.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import pandas as pd

from tunefleet.spaces import Categorical, Conditional, Constant, Domain, Float, Int
from tunefleet.spaces import records as rec

from ._report_modules import FANOVA_MIN_TRIALS as MIN_TRIALS

COLUMNS = ["param", "importance", "scope", "trials"]
GLOBAL_SCOPE = "all finished trials"
# Its forest's cost grows faster than the trial count (24 s of a report over 1,000 trials, most of
# the report): past this many, a scope uses a seeded sample of its trials, and its note says so.
# 200 trials cost 0.8 s per scope (300: 1.4 s; same ranking on benchmarks/scale.py's 2,000 trials).
MAX_TRIALS = 200


@dataclass(frozen=True)
class Knob:
    """One searched parameter: its path in the spec, its MLflow param and its domain.

    ``option`` is ``(conditional path, option name)`` for a knob that exists only under an option.
    """

    path: str
    param: str
    domain: Domain
    option: tuple[str, str] | None = None


@dataclass(frozen=True)
class Importance:
    """fANOVA importances (``COLUMNS``; empty when none could be computed) and why scopes were skipped."""

    frame: pd.DataFrame
    notes: tuple[str, ...] = ()


def _single(domain: Domain) -> bool:
    """Whether a domain can only ever take one value (so there is nothing to attribute to it)."""
    if isinstance(domain, Constant):
        return True
    if isinstance(domain, Categorical):
        return len(domain.choices) < 2
    if isinstance(domain, Conditional):
        return len(domain.options) < 2
    if isinstance(domain, Int):
        return domain.high - domain.low < domain.step
    return False  # a Float always has low < high


def searched_knobs(space: dict[str, Domain]) -> list[Knob]:
    """The knobs a search actually varied, in spec order, each with the MLflow param it is logged as.

    A conditional knob's spec path names its option (``optimizer.sgd.momentum``) but the trial logs
    it without (``optimizer.momentum``, see ``flatten_recipe``). Under a single-option conditional
    every trial has the option's knobs, so they are not tied to an option.
    """
    knobs: list[Knob] = []
    for path, domain in space.items():
        if not _single(domain):
            knobs.append(Knob(path, path, domain))
        if isinstance(domain, Conditional):
            for option, sub_space in domain.options.items():
                tied = (path, option) if len(domain.options) > 1 else None
                for name, sub in sub_space.items():
                    if not _single(sub):
                        knobs.append(Knob(f"{path}.{option}.{name}", f"{path}.{name}", sub, tied))
    return knobs


def parse_value(domain: Domain, text: Any) -> Any:
    """A logged param (a string in MLflow) as the domain's own value; None if it is missing or foreign."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return None
    text = str(text)
    try:
        if isinstance(domain, Float):
            value: Any = float(text)
        elif isinstance(domain, Int):
            value = int(float(text))
        elif isinstance(domain, Categorical):
            # Choices may be bools or numbers; MLflow kept str(choice).
            value = next((c for c in domain.choices if str(c) == text), None)
        else:
            value = text
    except ValueError:
        return None
    return value if value is not None and domain.contains(value) else None


def _distribution(domain: Domain) -> Any:
    from optuna import distributions as od

    if isinstance(domain, Float):
        return od.FloatDistribution(domain.low, domain.high, log=domain.log, step=domain.step)
    if isinstance(domain, Int):
        return od.IntDistribution(domain.low, domain.high, log=domain.log, step=domain.step)
    if isinstance(domain, Categorical):
        return od.CategoricalDistribution(list(domain.choices))
    assert isinstance(domain, Conditional)
    return od.CategoricalDistribution(list(domain.options))


def _finished(trials: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Trials that ran their planned epochs and recorded the metric, in a stable order.

    Stopped-early trials are left out: their best value is from fewer epochs, so it would credit
    parameters with what the scheduler did. Sorting makes fANOVA's seeded forest see the same rows
    in the same order whatever order MLflow returned them in.
    """
    column = rec.best_key(metric)
    if not len(trials) or column not in trials or "outcome" not in trials:
        return trials.iloc[0:0]
    done = trials[(trials["outcome"] == rec.COMPLETED) & trials[column].notna()]
    done = done[done[column].map(lambda v: math.isfinite(float(v)))]
    return done.sort_values(["name", "run_id"]) if {"name", "run_id"} <= set(done) else done


def _scope_rows(
    scope: str, knobs: list[Knob], trials: pd.DataFrame, metric: str, mode: str
) -> tuple[list[dict[str, Any]], str | None]:
    """fANOVA over ``trials`` for ``knobs``: the rows, or none and why (or how they were sampled)."""
    dists = {k.path: _distribution(k.domain) for k in knobs}
    key = rec.best_key(metric)
    parsed = [
        ({k.path: parse_value(k.domain, row.get(f"params.{k.param}")) for k in knobs}, float(row[key]))
        for row in trials.to_dict("records")
    ]
    usable = [(params, value) for params, value in parsed if all(v is not None for v in params.values())]
    if len(usable) < MIN_TRIALS:
        return [], f"importance for {scope} skipped: {len(usable)} finished trials, fANOVA needs {MIN_TRIALS}"
    # Imported only now: optuna.importance imports scikit-learn (its forest), 1.3 s that a report
    # of a search with too few finished trials never needs.
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    sampled = None
    if len(usable) > MAX_TRIALS:
        picks = sorted(random.Random(0).sample(range(len(usable)), MAX_TRIALS))
        sampled = f"importance for {scope} from a seeded sample of {MAX_TRIALS} of its {len(usable)} finished trials"
        usable = [usable[i] for i in picks]
    # Optuna's frozen trials only for the rows fANOVA will see (each costs about half a millisecond).
    frozen = [optuna.trial.create_trial(params=p, distributions=dists, value=v) for p, v in usable]
    if len({t.value for t in frozen}) < 2:
        return [], f"importance for {scope} skipped: every finished trial scored the same {metric}"
    # The search already quiets Optuna (see ``optuna_sampler``); a report must not say "study created".
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    study.add_trials(frozen)
    scores = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
    rows = [{"param": p, "importance": float(v), "scope": scope, "trials": len(frozen)} for p, v in scores.items()]
    return rows, sampled


def param_importances(trials: pd.DataFrame, space: dict[str, Domain], metric: str, mode: str) -> Importance:
    """fANOVA importance of each searched parameter for ``best_<metric>``, per scope (see module doc).

    Args:
        trials: ``trials_frame`` of a search (``params.<name>`` columns, ``outcome``, ``best_<metric>``).
        space: The spec's space (``load_spec(...).space``).
        metric, mode: What the search ranked by (``ranking``).

    Returns:
        Rows ``param`` (spec path), ``importance`` (sums to 1 within a scope), ``scope``, ``trials``
        (how many trials the scope used), most important first per scope; and notes saying which
        scopes were skipped and why.
    """
    knobs = searched_knobs(space)
    done = _finished(trials, metric)
    if not knobs:
        return Importance(pd.DataFrame(columns=COLUMNS), ("the space varies no parameter: no importance to compute",))
    if len(done) < MIN_TRIALS:
        note = f"{len(done)} finished trials; parameter importance needs at least {MIN_TRIALS}"
        return Importance(pd.DataFrame(columns=COLUMNS), (note,))
    shared = [k for k in knobs if k.option is None]
    scopes: list[tuple[str, list[Knob], pd.DataFrame]] = [(GLOBAL_SCOPE, shared, done)] if shared else []
    options = dict.fromkeys(k.option for k in knobs if k.option is not None)
    for path, option in (o for o in options if o is not None):
        own = [k for k in knobs if k.option == (path, option)]
        chose = done[done.get(f"params.{path}", pd.Series(index=done.index, dtype=object)) == option]
        # The conditional's own choice is constant inside its scope: leave it out there.
        scopes.append((f"{path}={option}", [k for k in shared if k.path != path] + own, chose))
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for scope, scope_knobs, scope_trials in scopes:
        found, why = _scope_rows(scope, scope_knobs, scope_trials, metric, mode)
        rows += found
        notes += [why] if why else []
    return Importance(pd.DataFrame(rows, columns=COLUMNS), tuple(notes))
