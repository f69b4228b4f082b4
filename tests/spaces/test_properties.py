"""Property tests: whatever a compiler samples lies inside the declared space, and a conditional
knob appears only with its parent option, for every built-in space and for generated domains."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tunefleet.spaces import (
    BUILTIN_SPACES,
    FAMILIES,
    Conditional,
    active_values,
    builtin_space,
    contains,
    define_by_run,
    flatten_recipe,
    parse_domain,
    resolve,
    tune_domains,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _optuna_points(space, seed, n):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    fn = define_by_run(space)
    for _ in range(n):
        trial = study.ask()
        constants = fn(trial) or {}
        yield {**trial.params, **constants}
        study.tell(trial, 0.0)


def _tune_configs(space, seed, n):
    rng = np.random.RandomState(seed)
    domains = tune_domains(space)
    for _ in range(n):
        yield {k: (d.sample(random_state=rng) if hasattr(d, "sample") else d) for k, d in domains.items()}


def _assert_conditionals_follow_their_parent(space, point):
    for path, domain in space.items():
        if isinstance(domain, Conditional):
            chosen = point[path]
            knobs = {k for k in point if k.startswith(f"{path}.")}
            assert knobs == {f"{path}.{chosen}.{k}" for k in domain.options[chosen]}, (path, chosen, knobs)
    params = flatten_recipe(resolve(point))
    for family, options in FAMILIES.items():
        logged = {k.split(".", 1)[1] for k in params if k.startswith(f"{family}.")}
        assert logged == set(options[params[family]]), (family, params[family], logged)


@pytest.mark.parametrize("name", sorted(BUILTIN_SPACES))
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_optuna_samples_lie_inside_every_builtin_space(name, seed):
    space = builtin_space(name)
    for point in _optuna_points(space, seed, 4):
        assert contains(space, point), point
        _assert_conditionals_follow_their_parent(space, point)


@pytest.mark.parametrize("name", sorted(BUILTIN_SPACES))
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_ray_tune_samples_lie_inside_every_builtin_space(name, seed):
    space = builtin_space(name)
    for config in _tune_configs(space, seed, 4):
        point = active_values(space, config)
        assert contains(space, point), point
        _assert_conditionals_follow_their_parent(space, point)
        assert resolve(config) == resolve(point)  # knobs of options not chosen are ignored


@st.composite
def numeric_domains(draw):
    kind = draw(st.sampled_from(["uniform", "loguniform", "int", "qint", "qfloat"]))
    if kind in ("int", "qint"):
        low = draw(st.integers(-50, 50) if kind == "qint" else st.integers(1, 50))
        step = draw(st.integers(1, 7)) if kind == "qint" else 1
        raw = {"int": [low, low + step * draw(st.integers(1, 70))]}
        if kind == "qint":
            raw["step"] = step
        else:
            raw["log"] = draw(st.booleans())
        return raw
    low = draw(st.floats(1e-6, 10.0) if kind == "loguniform" else st.floats(-10.0, 10.0))
    high = low + draw(st.floats(1e-3, 100.0))
    raw = {("loguniform" if kind == "loguniform" else "uniform"): [low, high]}
    if kind == "qfloat":
        raw["step"] = draw(st.sampled_from([0.5, 0.25, 0.1, 1.0]))
        raw[next(iter(raw))] = [low, low + raw["step"] * draw(st.integers(1, 20))]
    return raw


@settings(max_examples=60, deadline=None)
@given(raw=numeric_domains(), seed=st.integers(0, 2**16))
def test_generated_domains_sample_inside_themselves(raw, seed):
    domain = parse_domain("space.x", raw)
    space = {"weight_decay": domain}  # any key: membership is the domain's
    for point in _optuna_points(space, seed, 3):
        assert domain.contains(point["weight_decay"]), (raw, point)
    for config in _tune_configs(space, seed, 3):
        assert domain.contains(config["weight_decay"]), (raw, config)
