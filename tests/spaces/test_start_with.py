"""``search.start_with``: configs the searcher runs first, checked against the space before anything starts."""

from __future__ import annotations

import copy

import pytest

from tunefleet.spaces import SpecError, spec_from_dict

SPEC = {
    "name": "s",
    "model": {"choice": ["resnet18", "test_resnet"]},
    "space": {
        "lr": {"loguniform": [0.01, 0.08]},
        "batch_size": {"choice": [32, 64]},
        "optimizer": {"choice": {"sgd": {"momentum": {"uniform": [0.85, 0.95]}}, "adamw": {}}},
    },
    "search": {"searcher": "optuna"},
}


def _with(*points, **search):
    doc = copy.deepcopy(SPEC)
    doc["search"] |= {"start_with": list(points), **search}
    return doc


def test_partial_configs_inside_the_space_are_kept_in_order():
    first = {"model": "test_resnet", "lr": 0.02}
    second = {"optimizer": "sgd", "optimizer.sgd.momentum": 0.9}
    spec = spec_from_dict(_with(first, second))
    assert spec.search.start_with == (first, second)
    assert spec_from_dict(SPEC).search.start_with == ()


@pytest.mark.parametrize(
    ("points", "search", "field", "message"),
    [
        ([{"width": 3}], {}, "search.start_with[0].width", "not a knob of this space"),
        ([{"lr": 0.5}], {}, "search.start_with[0].lr", "0.5 is outside its domain"),
        ([{}, {"model": "vit"}], {}, "search.start_with[1].model", "'vit' is outside its domain"),
        ([{"optimizer.sgd.momentum": 0.9}], {}, "search.start_with[0].optimizer.sgd.momentum", "set optimizer: sgd"),
        ([{"optimizer": "adamw", "optimizer.adamw.beta2": 0.99}], {}, "search.start_with[0].optimizer.adamw.beta2",
         "optimizer has no option 'adamw' with a knob 'beta2'"),
        ([{"lr": 0.02}], {"searcher": "random"}, "search.start_with", "needs the optuna searcher"),
    ],
)  # fmt: skip
def test_a_config_the_space_could_not_sample_is_refused_naming_its_knob(points, search, field, message):
    with pytest.raises(SpecError) as caught:
        spec_from_dict(_with(*points, **search))
    assert caught.value.path == field and message in caught.value.message
