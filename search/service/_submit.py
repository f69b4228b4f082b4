"""What ``tunefleet submit`` sends: the spec validated here exactly as ``search`` validates it, and
where the job records (an MLflow server) and keeps Ray Tune's state (a path every node sees)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tunefleet.spaces import SearchSpec, SpecError, read_spec

from .._preflight import preflight
from ._service import Service


@dataclass(frozen=True)
class SubmitPlan:
    spec: SearchSpec
    address: str | None  # None: the local service's
    tracking_uri: str
    storage: str
    python: str  # the interpreter that runs the search driver on the head


def _absolute_root(spec: SearchSpec) -> SearchSpec:
    """A relative data root means a folder here; the job runs elsewhere, so send it absolute."""
    from dataclasses import replace

    return replace(spec, data=spec.data.with_absolute_root())


def _loopback(address: str) -> bool:
    """A cluster on this machine runs the driver with this interpreter; a remote head with the
    ``python`` its setup commands installed tunefleet into (cluster.yaml)."""
    host = urlparse(address).hostname or ""
    return host == "localhost" or host.startswith("127.") or host == "::1"


def prepare(
    source: str | Path | dict[str, Any] | SearchSpec,
    address: str | None,
    tracking_uri: str | None,
    storage: str | None,
    num_samples: int | None,
    service: Service | None,
) -> SubmitPlan:
    """Validate and resolve a submission; every problem is a SpecError naming the flag or field."""
    spec = read_spec(source, {"search": {"num_samples": num_samples}})
    # names, grid size, data, input size (timm and torch load here, once the spec parsed): bad
    # input never reaches the cluster
    preflight(spec)
    local = address is None
    if local and service is None:
        raise SpecError(
            "--address", "no tunefleet service runs here: run `tunefleet up` or pass --address http://HOST:8265"
        )
    uri = tracking_uri or spec.tracking.uri or (service.tracking_uri if local and service else None)
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise SpecError(
            "--tracking-uri", "a cluster search records to an MLflow server: pass --tracking-uri http://HOST:5000"
        )
    storage = storage or (service.storage if local and service else None)
    if not storage:
        raise SpecError("--storage", "pass a path every node shares, or s3://BUCKET/PREFIX, for Ray Tune's state")
    python = sys.executable if local or _loopback(address or "") else "python"
    return SubmitPlan(_absolute_root(spec), address, uri, storage, python)
