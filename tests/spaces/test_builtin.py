"""Built-in spaces, ``base:`` overrides, the Python API and the YAML form describe the same objects."""

from __future__ import annotations

import pytest
import yaml

from tunefleet.spaces import (
    BUILTIN_SPACES,
    Categorical,
    Conditional,
    Constant,
    Float,
    Int,
    SpecError,
    builtin_space,
    choice,
    integer,
    loguniform,
    parse_domain,
    space_to_yaml,
    spec_from_dict,
    uniform,
    validate_space,
)


@pytest.mark.parametrize("name", sorted(BUILTIN_SPACES))
def test_builtin_space_validates_and_round_trips_through_yaml(name):
    space = builtin_space(name)
    assert space and "model" not in space
    text = yaml.safe_dump({"space": space_to_yaml(space)})
    assert validate_space(yaml.safe_load(text)["space"]) == space


def test_required_builtins_exist():
    assert {"quick", "default", "finetune", "augment-heavy"} <= set(BUILTIN_SPACES)


def test_base_overrides_keys_merges_groups_and_null_removes():
    spec = spec_from_dict(
        {
            "name": "x",
            "model": "test_resnet",
            "space": {
                "base": "default",
                "lr": {"loguniform": [1e-3, 1e-2]},
                "augmentation": {"vflip": True, "hflip": None},
                "schedule": None,
            },
        }
    )
    base = builtin_space("default")
    assert spec.space["lr"] == Float(1e-3, 1e-2, log=True)
    assert spec.space["augmentation.vflip"] == Constant(True)
    assert "augmentation.hflip" not in spec.space and "schedule" not in spec.space
    assert spec.space["augmentation.scale_min"] == base["augmentation.scale_min"]  # the rest of the group stays
    assert spec.space["optimizer"] == base["optimizer"]
    assert spec.space["model"] == Constant("test_resnet")
    # the spec's YAML holds the merged space: it round-trips without the base
    assert spec_from_dict(yaml.safe_load(spec.to_yaml())) == spec


@pytest.mark.parametrize(
    ("space", "path", "needle"),
    [
        ({"base": "defualt"}, "space.base", "did you mean 'default'"),
        ({"base": "default", "lr": {"uniform": [0.1, 0.01]}}, "space.lr", "low < high"),
        ({"base": "default", "augmentation": {"hflp": True}}, "space.augmentation.hflp", "did you mean 'hflip'"),
        (
            {"base": "quick", "optimizer": {"choice": {"sgd": {"momentun": 0.9}}}},
            "space.optimizer.sgd.momentun",
            "no knob",
        ),
    ],
)
def test_base_errors_name_the_path(space, path, needle):
    with pytest.raises(SpecError) as err:
        spec_from_dict({"name": "x", "space": space})
    assert err.value.path == path and needle in str(err.value)


@pytest.mark.parametrize(
    ("built", "raw"),
    [
        (loguniform(1e-4, 1e-1), {"loguniform": [1e-4, 1e-1]}),
        (uniform(0.0, 1.0, step=0.25), {"uniform": [0, 1], "step": 0.25}),
        (uniform(0.8, 0.99, grid=(0.9,)), {"uniform": [0.8, 0.99], "grid": [0.9]}),
        (integer(8, 64, step=8), {"int": [8, 64], "step": 8}),
        (integer(1, 64, log=True), {"int": [1, 64], "log": True}),
        (choice(32, 64), {"choice": [32, 64]}),
        (
            choice(sgd={"momentum": uniform(0.8, 0.99)}, adamw={}),
            {"choice": {"sgd": {"momentum": {"uniform": [0.8, 0.99]}}, "adamw": {}}},
        ),
    ],
)
def test_python_api_builds_what_the_yaml_form_parses_to(built, raw):
    assert built == parse_domain("x", raw)
    assert parse_domain("x", built.to_yaml()) == built
    assert parse_domain("x", yaml.safe_load(yaml.safe_dump(built.to_yaml()))) == built


def test_a_python_space_validates_like_its_yaml():
    python = {
        "lr": loguniform(1e-4, 1e-1),
        "optimizer": choice(sgd={"momentum": uniform(0.8, 0.99)}, adamw={}),
        "augmentation": {"hflip": choice(True, False)},
    }
    assert validate_space(python) == validate_space(space_to_yaml(validate_space(python)))
    with pytest.raises(SpecError, match=r"space\.optimizer\.sgd\.momentum: must be < 1.0"):
        validate_space({"optimizer": Conditional({"sgd": {"momentum": Float(0.5, 1.5)}})})


@pytest.mark.parametrize(
    ("space", "path", "needle"),
    [
        ({"batch_size": {"choice": [31, 64]}, "augmentation": {"mixup_alpha": 0.2}}, "space.batch_size", "even"),
        (
            {"batch_size": {"int": [16, 64]}, "augmentation": {"cutmix_alpha": {"uniform": [0, 1]}}},
            "space.batch_size",
            "even",
        ),
        ({"batch_size": {"int": [1, 64], "log": True, "step": 2}}, "space.batch_size", "no step"),
        ({"loss": {"choice": {"focal": {"gamma": {"uniform": [3, 1]}}}}}, "space.loss.focal.gamma", "low < high"),
        (
            {"schedule": {"choice": {"cosine": {}, "plateau": {"patience_epochs": -1}}}},
            "space.schedule.plateau.patience_epochs",
            ">= 0",
        ),
        ({"schedule": "cosin"}, "space.schedule", "did you mean 'cosine'"),
        (
            {"auto_augment": {"choice": {"rand": {"magnitude": {"int": [5, 12]}}}}},
            "space.auto_augment.rand.magnitude",
            "<= 10",
        ),
        ({"finetune": {"layer_decay": 0.0}}, "space.finetune.layer_decay", "> 0.0"),
        ({"regularization": {"patience": 1.5}}, "space.regularization.patience", "int"),
        ({"regularization": {"clip_grad": -1.0}}, "space.regularization.clip_grad", ">= 0.0"),
        ({"optimizer": {"choice": []}}, "space.optimizer", "at least one"),
    ],
)
def test_new_knobs_are_validated_with_paths(space, path, needle):
    with pytest.raises(SpecError) as err:
        validate_space(space)
    assert err.value.path == path and needle in str(err.value), str(err.value)


def test_even_batches_with_mixup_are_accepted():
    space = validate_space({"batch_size": {"int": [16, 64], "step": 16}, "augmentation": {"mixup_alpha": 0.2}})
    assert space["batch_size"] == Int(16, 64, step=16)
    assert validate_space({"augmentation": {"cutmix_alpha": 1.0}})  # default batch size 64 is even


@pytest.mark.parametrize(
    ("resources", "path"),
    [({"lr_scaling": "cubic"}, "resources.lr_scaling"), ({"workers_per_trial": 0}, "resources.workers_per_trial")],
)
def test_resources_are_validated(resources, path):
    with pytest.raises(SpecError) as err:
        spec_from_dict({"name": "x", "resources": resources})
    assert err.value.path == path


def test_multi_worker_trials_and_lr_rules_are_accepted():
    spec = spec_from_dict({"name": "x", "resources": {"workers_per_trial": 2, "lr_scaling": "sqrt"}})
    assert spec.resources.workers_per_trial == 2 and spec.resources.lr_scaling == "sqrt"
    assert isinstance(builtin_space("quick")["batch_size"], Categorical)
