"""The fit check: a trial shape no node (or set of nodes, for DDP) could ever hold is refused up front."""

from __future__ import annotations

import pytest

from tunefleet.search import check_trial_fits, workers_that_fit
from tunefleet.spaces import Resources, SpecError

ONE_GPU = {"CPU": 8.0, "GPU": 1.0}
FOUR_GPU = {"CPU": 48.0, "GPU": 4.0}
CPU_ONLY = {"CPU": 4.0}


@pytest.mark.parametrize(
    ("resources", "nodes"),
    [
        ({}, [CPU_ONLY]),
        ({"gpus_per_worker": 0.5}, [ONE_GPU]),  # two trials share the GPU
        ({"gpus_per_worker": 4}, [ONE_GPU, FOUR_GPU]),
        ({"workers_per_trial": 2, "gpus_per_worker": 1}, [ONE_GPU, ONE_GPU]),  # DDP over two nodes
        ({"workers_per_trial": 4, "gpus_per_worker": 1}, [FOUR_GPU]),
        ({"workers_per_trial": 2, "cpus_per_worker": 1}, [{"CPU": 1.0}, {"CPU": 1.0}]),
    ],
)
def test_shapes_that_fit(resources, nodes):
    check_trial_fits(Resources(**resources), nodes)


@pytest.mark.parametrize(
    ("resources", "nodes", "field", "needle"),
    [
        ({"gpus_per_worker": 1}, [CPU_ONLY], "resources.gpus_per_worker", "no node has more than 0"),
        ({"gpus_per_worker": 2}, [ONE_GPU, ONE_GPU], "resources.gpus_per_worker", "no node has more than 1"),
        ({"cpus_per_worker": 16}, [ONE_GPU], "resources.cpus_per_worker", "no node has more than 8"),
        (
            {"workers_per_trial": 3, "gpus_per_worker": 1},
            [ONE_GPU, ONE_GPU],
            "resources.workers_per_trial",
            "at most 2",
        ),
        ({}, [], "--address", "no alive nodes"),
    ],
)
def test_shapes_that_never_fit_are_refused(resources, nodes, field, needle):
    with pytest.raises(SpecError) as err:
        check_trial_fits(Resources(**resources), nodes)
    assert err.value.path == field and needle in str(err.value)


def test_fractional_gpus_pack_by_the_scarcer_resource():
    assert workers_that_fit({"CPU": 3.0, "GPU": 1.0}, Resources(gpus_per_worker=0.25, cpus_per_worker=1)) == 3
    assert workers_that_fit({"CPU": 16.0, "GPU": 1.0}, Resources(gpus_per_worker=0.5)) == 2
