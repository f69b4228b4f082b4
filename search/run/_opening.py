"""Opening a search: the tracking store and the search run, opened while Ray starts or is joined,
and the check that some node (or autoscaler node type) can hold a trial's shape.

Its own module so the driver (``_driver``) reads as the search's life from start to end; this is
its first step, and the only one that runs two things at once.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor

from mlflow.tracking import MlflowClient

from tunefleet.spaces import SearchSpec, SpecError
from tunefleet.spaces import records as rec

from .._preflight import Plan
from ..resume._resume import Resumable
from ..service._cluster import autoscaler_node_shapes, check_trial_fits
from ..service._jobs import JOB_ENV
from ..tracking._open import open_store
from ..tracking._search_run import start_search_run
from ..tracking._trial_records import driver_tags
from ._ray import start_ray


def _local_gpus() -> int:
    """The GPUs the local Ray about to start will see, counted as Ray counts them (NVML, with
    ``CUDA_VISIBLE_DEVICES`` applied): torch would count the same but costs the driver its import."""
    try:
        from ray._private.accelerators import get_accelerator_manager_for_resource

        manager = get_accelerator_manager_for_resource("GPU")
    except ImportError:  # Ray moved its private helper: ask torch
        manager = None
    if manager is not None:
        return int(manager.get_current_node_num_accelerators())
    import torch

    return int(torch.cuda.device_count())


def _local_nodes() -> list[dict[str, float]]:
    return [{"CPU": float(os.cpu_count() or 1), "GPU": float(_local_gpus())}]


def _cluster_nodes() -> list[dict[str, float]]:
    """The nodes that are up, and the node types an autoscaler may add."""
    import ray

    return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")] + autoscaler_node_shapes()


def _open_search_run(
    client: MlflowClient, spec: SearchSpec, plan: Plan, tags: dict[str, str], resume: Resumable | None
) -> str:
    """A new search run, or the resumed (or extended) one reopened; tagged with this driver and
    the Tune state (``tags``)."""
    tags = driver_tags() | tags
    if resume is None:
        tags |= plan.warm.tags() if plan.warm is not None else {}
        chosen = {rec.DATA_CACHE_PARAM: plan.cache.cache, rec.DATA_DECODED_GIB_PARAM: f"{plan.cache.decoded_gib:.3f}"}
        return start_search_run(client, spec, os.environ.get(JOB_ENV), tags, chosen)
    client.update_run(resume.run_id, status="RUNNING")
    for key, value in tags.items():
        client.set_tag(resume.run_id, key, value)
    return resume.run_id


def open_search(
    spec: SearchSpec, plan: Plan, uri: str, address: str | None, tags: dict[str, str], resume: Resumable | None
) -> tuple[MlflowClient, str]:
    """Open the store and the search run while Ray starts (a new SQLite schema takes seconds);
    refuse a trial shape no node holds. ray.init stays on the main thread, where it installs
    signal handlers. Returns the client and the search run's id."""
    joining = bool(address or os.environ.get("RAY_ADDRESS"))
    if not joining:
        check_trial_fits(spec.resources, _local_nodes())

    def open_run() -> tuple[MlflowClient, str]:
        # The store first: a client builds (and migrates) its store when created, and a new
        # SQLite file must be created once, under open_store's lock, even by searches starting together.
        open_store(uri)
        client = MlflowClient(tracking_uri=uri)
        return client, _open_search_run(client, spec, plan, tags, resume)

    with ThreadPoolExecutor(1) as pool:
        opening = pool.submit(open_run)
        try:
            start_ray(address, dashboard=spec.resources.workers_per_trial > 1)
            if joining:
                check_trial_fits(spec.resources, _cluster_nodes())
        except SpecError:
            opened = _settled(opening)
            if opened is not None and resume is None:
                opened[0].delete_run(opened[1])  # refused before any trial: leave no run behind
            elif opened is not None:
                opened[0].set_terminated(opened[1], "KILLED")
            raise
        except BaseException:
            opened = _settled(opening)
            if opened is not None:
                opened[0].set_terminated(opened[1], "FAILED")
            raise
        return opening.result()


def _settled(opening: Future[tuple[MlflowClient, str]]) -> tuple[MlflowClient, str] | None:
    """The opened store and search run, or None when opening them failed as well: the error
    already on its way out (a refusal, Ctrl-C) is the one the user must see."""
    try:
        return opening.result()
    except Exception:
        return None
