from __future__ import annotations

import optuna
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tunefleet.spaces import (
    Categorical,
    Conditional,
    Constant,
    Float,
    Int,
    SpecError,
    contains,
    define_by_run,
    grid_points,
    grid_size,
    parse_domain,
    resolve,
    spec_from_dict,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0.1, Constant(0.1)),
        ("sgd", Constant("sgd")),
        ({"loguniform": [1e-4, 1e-1]}, Float(1e-4, 1e-1, log=True)),
        ({"uniform": [0, 1]}, Float(0.0, 1.0)),
        ({"int": [1, 9], "step": 2}, Int(1, 9, step=2)),
        ({"choice": [32, 64]}, Categorical((32, 64))),
        ({"grid": [1, 2]}, Categorical((1, 2))),
        (
            {"choice": {"sgd": {"momentum": 0.9}, "adamw": None}},
            Conditional({"sgd": {"momentum": Constant(0.9)}, "adamw": {}}),
        ),
    ],
)
def test_parse_domain_forms(raw, expected):
    assert parse_domain("space.x", raw) == expected


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"uniform": [0.99, 0.8]}, "low < high"),
        ({"loguniform": [0, 1]}, "above 0"),
        ({"choice": []}, "at least one"),
        ({"choice": {}}, "at least one"),
        ({"uniform": [1]}, "[low, high]"),
        ({"int": [1.5, 3]}, "integer bounds"),
        ({"uniform": [0, 1], "grid": [2]}, "outside"),
        ({"unifrom": [0, 1]}, "unknown domain key"),
        ({"uniform": [0, 1], "choice": [1]}, "one kind"),
        ([1, 2], "expected a value or a domain"),
    ],
)
def test_parse_domain_rejects_with_path(raw, needle):
    with pytest.raises(SpecError) as err:
        parse_domain("space.momentum", raw)
    assert str(err.value).startswith("space.momentum: ")
    assert needle in str(err.value)


@pytest.mark.parametrize(
    ("space", "path", "needle"),
    [
        (
            {"optimizer": {"choice": {"sgd": {"momentum": {"uniform": [0.99, 0.8]}}}}},
            "space.optimizer.sgd.momentum",
            "low < high",
        ),
        ({"optimizer": "sgdd"}, "space.optimizer", "did you mean 'sgd'"),
        ({"optimizer": {"choice": {"adamw": {"momentum": 0.9}}}}, "space.optimizer.adamw.momentum", "no knob"),
        ({"lrr": 0.1}, "space.lrr", "did you mean 'lr'"),
        ({"batch_size": {"choice": [0, 32]}}, "space.batch_size", ">= 1"),
        ({"batch_size": {"uniform": [8, 64]}}, "space.batch_size", "integers"),
        ({"lr": {"uniform": [0.0, 0.1]}}, "space.lr", "> 0.0"),
        (
            {"loss": {"choice": {"label_smoothing": {"smoothing": 1.5}}}},
            "space.loss.label_smoothing.smoothing",
            "< 1.0",
        ),
        ({"augmentation": {"hflp": True}}, "space.augmentation.hflp", "did you mean 'hflip'"),
        ({"augmentation": {"hflip": 1}}, "space.augmentation.hflip", "bool"),
    ],
)
def test_spec_rejects_bad_space_naming_the_path(space, path, needle):
    with pytest.raises(SpecError) as err:
        spec_from_dict({"name": "x", "space": space})
    assert err.value.path == path
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ({"name": "x", "search": {"searcher": "bayes"}}, "search.searcher"),
        ({"name": "x", "search": {"scheduler": "pbt"}}, "search.scheduler"),
        ({"name": "x", "search": {"num_samples": 0}}, "search.num_samples"),
        ({"name": "x", "search": {"max_epochs": "ten"}}, "search.max_epochs"),
        ({"name": "x", "search": {"grace_period": 20, "max_epochs": 10}}, "search.grace_period"),
        ({"name": "x", "search": {"metric": "accuracy"}}, "search.metric"),
        ({"name": "x", "search": {"time_budget": "soon"}}, "search.time_budget"),
        ({"name": "x", "search": {"checkpoint_every": 0}}, "search.checkpoint_every"),
        (
            {"name": "x", "search": {"scheduler": "pbt", "searcher": "random", "checkpoint_every": 3}},
            "search.checkpoint_every",
        ),
        ({"name": "x", "data": {"kind": "cifar"}}, "data.kind"),
        ({"name": "x", "data": {"image_size": 4}}, "data.image_size"),
        ({"name": "x", "serch": {}}, "serch"),
        ({"space": {}}, "name"),
    ],
)
def test_spec_rejects_bad_settings(doc, path):
    with pytest.raises(SpecError) as err:
        spec_from_dict(doc)
    assert err.value.path == path


def test_time_budget_and_defaults():
    spec = spec_from_dict({"name": "x", "search": {"time_budget": "2h"}})
    assert spec.search.time_budget == 7200
    assert spec.tracking.experiment == "x"


def test_yaml_round_trips():
    doc = {
        "name": "rt",
        "model": {"choice": ["test_resnet", "test_vit"]},
        "space": {
            "lr": {"loguniform": [1e-4, 1e-1], "grid": [1e-3, 1e-2]},
            "batch_size": {"int": [16, 64], "step": 16},
            "optimizer": {"choice": {"sgd": {"momentum": {"uniform": [0.8, 0.99]}}, "adamw": {}}},
            "augmentation": {"hflip": {"choice": [True, False]}, "scale_min": 0.7},
        },
        "search": {"searcher": "random", "num_samples": 5, "time_budget": 60},
    }
    spec = spec_from_dict(doc)
    again = spec_from_dict(yaml.safe_load(spec.to_yaml()))
    assert again == spec


SPACE = spec_from_dict(
    {
        "name": "x",
        "space": {
            "lr": {"loguniform": [1e-4, 1e-1], "grid": [1e-3, 1e-2]},
            "batch_size": {"choice": [32, 64]},
            "optimizer": {
                "choice": {"sgd": {"momentum": {"uniform": [0.8, 0.99], "grid": [0.9]}}, "adamw": {}, "adam": {}}
            },
            "augmentation": {"hflip": True},
        },
    }
).space


def test_grid_points_expand_conditionals_only_under_their_option():
    points = grid_points(SPACE)
    assert len(points) == grid_size(SPACE) == 2 * 2 * 3
    assert all(contains(SPACE, p) for p in points)
    assert all(("optimizer.sgd.momentum" in p) == (p["optimizer"] == "sgd") for p in points)


def test_grid_refuses_continuous_domain_without_values():
    space = spec_from_dict({"name": "x", "space": {"weight_decay": {"uniform": [0.0, 0.1]}}}).space
    with pytest.raises(SpecError, match=r"space\.weight_decay: grid search needs"):
        grid_size(space)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_define_by_run_samples_inside_the_space(seed):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    fn = define_by_run(SPACE)
    for _ in range(5):
        trial = study.ask()
        constants = fn(trial) or {}
        point = {**trial.params, **constants}
        assert contains(SPACE, point), point
        recipe = resolve(point)
        assert ("momentum" in recipe["optimizer"]) == (point["optimizer"] == "sgd")
        study.tell(trial, 0.0)


def test_resolve_fills_defaults():
    recipe = resolve({"optimizer": "adamw", "lr": 0.5})
    assert recipe["optimizer"] == {"name": "adamw", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    assert recipe["loss"] == {"name": "ce"}
    assert recipe["lr"] == 0.5 and recipe["batch_size"] == 64
