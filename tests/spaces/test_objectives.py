"""``search.objectives``: the accepted forms, and each rule refused with one line naming the field."""

from __future__ import annotations

import pytest

from tunefleet.spaces import (
    OBJECTIVE_MODES,
    SERVING_MODES,
    SpecError,
    gpu_objectives,
    measures_serving,
    objective_modes,
    spec_from_dict,
)
from tunefleet.spaces.records import GPU_SERVING_METRICS


def _search(gpus: float = 0.0, **search):
    return spec_from_dict({"name": "x", "search": search, "resources": {"gpus_per_worker": gpus}}).search


@pytest.mark.parametrize(
    "given", [["val_acc", "latency_ms"], {"val_acc": "max", "latency_ms": "min"}, ("val_acc", "latency_ms")]
)
def test_objectives_as_a_list_or_a_mapping_with_each_direction(given):
    search = _search(objectives=given)  # a tuple: as built in Python
    assert search.objectives == ("val_acc", "latency_ms")
    assert objective_modes(search.objectives) == ["max", "min"]
    assert measures_serving(search.objectives, False)


def test_every_serving_cost_is_minimized_and_measured_when_named():
    for name in SERVING_MODES:
        assert OBJECTIVE_MODES[name] == "min"
        gpus = 1.0 if name in GPU_SERVING_METRICS else 0.0
        assert _search(gpus, objectives=["val_loss", name], metric="val_loss").objectives == ("val_loss", name)
    assert not measures_serving(("val_acc", "val_loss"), False)
    assert measures_serving((), True)  # search.measure_serving alone


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "gp"])
def test_the_multi_objective_samplers_are_accepted(sampler):
    assert _search(objectives=["val_acc", "model_mb"], sampler=sampler).sampler == sampler


BAD = {
    "unknown name": ({"objectives": ["val_acc", "latency"]}, "unknown objective 'latency'"),
    "wrong direction": ({"objectives": {"val_acc": "max", "latency_ms": "max"}}, "latency_ms is better min"),
    "not a list": ({"objectives": "val_acc"}, "a list of names"),
    "twice": ({"objectives": ["val_acc", "val_acc"]}, "each objective once"),
    "one": ({"objectives": ["val_acc"]}, "two or more"),
    "first is not the metric": ({"objectives": ["latency_ms", "val_acc"]}, "the first objective is what the scheduler"),
    "random searcher": ({"objectives": ["val_acc", "latency_ms"], "searcher": "random"}, "need searcher 'optuna'"),
    "cmaes": ({"objectives": ["val_acc", "latency_ms"], "sampler": "cmaes"}, "sampler 'cmaes' takes one objective"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_objectives_are_one_line_naming_the_field(case):
    search, needle = BAD[case]
    with pytest.raises(SpecError) as err:
        _search(**search)
    assert err.value.path == "search.objectives" and needle in err.value.message, str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", GPU_SERVING_METRICS)
def test_a_gpu_latency_objective_needs_trials_that_hold_a_gpu(name):
    assert gpu_objectives(("val_acc", "latency_ms", name)) == [name]
    assert _search(0.5, objectives=["val_acc", name]).objectives == ("val_acc", name)  # a packed GPU is one too
    with pytest.raises(SpecError) as err:
        _search(objectives=["val_acc", name])
    assert (
        str(err.value) == f"search.objectives: {name} is timed on the trial's GPU: needs resources.gpus_per_worker > 0"
    )


def test_serving_batch_must_be_positive():
    with pytest.raises(SpecError, match=r"^search.serving_batch: must be >= 1"):
        _search(serving_batch=0)
