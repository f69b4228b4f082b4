"""The spec's settings sections as typed, frozen records validated from their annotations.

pydantic (v2) checks types and bounds; every field carries the help text that ``tunefleet spaces
schema`` puts in the JSON Schema, so editors show it. Strict types: YAML's ``"5"`` is not an
integer and ``true`` is not a number. Checks that involve two fields raise ``_field_error`` so the
message still names the one field a user must change. ``_spec.py`` turns a ``ValidationError``
into a one-line ``SpecError`` with the full path. The ``search`` section lives in
``_search_settings``; the base and the error in ``_section_base``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ._search_settings import MAX_NUM_SAMPLES, SearchSettings
from ._section_base import FIELD_ERROR, Section, _field_error

# Re-exported: the package and ``_spec`` take every section from here.
__all__ = [
    "FIELD_ERROR",
    "MAX_NUM_SAMPLES",
    "SECTIONS",
    "DataKind",
    "DataSpec",
    "Resources",
    "SearchSettings",
    "Section",
    "Tracking",
]

DataKind = Literal["digits", "imagefolder"]
DataCache = Literal["auto", "memory", "stream"]
# A URL scheme (two letters or more, so that a Windows drive ``C:/`` is not one) and ``://``.
_URL_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+)://")


class DataSpec(Section):
    """Where the images come from."""

    kind: DataKind = Field(
        "digits", description="digits: scikit-learn's bundled 8x8 digits; imagefolder: your images under data.root"
    )
    image_size: int = Field(32, ge=8, description="every image is resized to image_size x image_size pixels")
    split_seed: int = Field(0, description="seed of the stratified train/val/test split")
    root: str = Field(
        "",
        description="imagefolder only: root/<class>/*.png|jpg or root/train|val[|test]/<class>/...; "
        "relative to the directory the command runs in",
    )
    val_fraction: float = Field(0.2, gt=0, lt=1, description="share of each class held out for validation")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="share of each class held out for the final test")
    color: Literal["auto", "rgb", "grayscale"] = Field(
        "auto", description="auto: 1 channel when every image is grayscale, else RGB"
    )
    cache: DataCache = Field(
        "auto",
        description="memory: every image decoded once per trial process and kept; stream: read from disk each "
        "epoch by loader workers; auto: memory when the decoded images fit in data.cache_budget_gb",
    )
    cache_budget_gb: float = Field(
        2.0,
        gt=0,
        description="GiB of decoded images (image_size^2 x channels bytes each) one trial process may keep in "
        "memory; auto streams above it, and cache: memory is refused above it",
    )
    loader_workers: int | None = Field(
        None,
        ge=0,
        description="DataLoader worker processes per trial worker (0: load in the training process); "
        "unset: one per CPU the worker reserves beyond the first, at least one",
    )

    def with_absolute_root(self) -> DataSpec:
        """The same data with ``root`` made absolute: trials run in folders of their own, and a
        submitted search on another machine."""
        if not self.root or Path(self.root).is_absolute():
            return self
        return self.model_copy(update={"root": str(Path(self.root).expanduser().resolve())})

    @model_validator(mode="after")
    def _consistent(self) -> DataSpec:
        # Trials read imagefolder data with PIL from a local (or mounted) folder. Object-store
        # data (s3://, gs://) would be welcome later, but needs a download-and-cache step on each
        # node; until then a URL is refused here rather than failing as "no such folder" in a trial.
        scheme = _URL_SCHEME.match(self.root)
        if scheme:
            raise _field_error(
                "root",
                f"must be a local folder, not a URL ({scheme.group(1)}://); copy or mount the images on every node",
            )
        if self.kind == "imagefolder" and not self.root:
            raise _field_error("root", "imagefolder data needs a root folder")
        if self.kind != "imagefolder" and self.root:
            raise _field_error("root", f"only imagefolder data has a root; data.kind is {self.kind!r}")
        if self.cache == "stream" and self.kind != "imagefolder":
            raise _field_error("cache", f"stream reads image files; {self.kind} data is bundled in memory")
        if self.val_fraction + self.test_fraction >= 0.9:
            raise _field_error(
                "test_fraction",
                "val_fraction + test_fraction must leave >= 10% to train, "
                f"got {self.val_fraction} + {self.test_fraction}",
            )
        return self


class Resources(Section):
    """What one trial reserves on the cluster."""

    workers_per_trial: int = Field(1, ge=1, description="data-parallel (DDP) workers per trial, via Ray Train")
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs each worker reserves (also its torch threads)")
    gpus_per_worker: float = Field(0.0, ge=0, description="GPUs each worker reserves; 0.5 packs two on one GPU")
    lr_scaling: Literal["linear", "sqrt", "none"] = Field(
        "linear", description="how lr (tuned for one worker's batch) scales with workers_per_trial"
    )
    oom_retry: bool = Field(
        True,
        description="a trial that runs out of GPU memory is retried with half the per-worker batch and twice "
        "the gradient accumulation (same effective batch and LR)",
    )


class Tracking(Section):
    """Where the search is recorded in MLflow."""

    uri: str | None = Field(
        None, description="MLflow tracking URI; --tracking-uri, then this, then $MLFLOW_TRACKING_URI"
    )
    experiment: str = Field("", description="MLflow experiment (default: the spec's name)")
    report_every: int = Field(
        5,
        ge=0,
        description="refresh the report on the search run every N ended trials while the search runs "
        "(in a child process); 0: only when it ends",
    )
    report_interval_s: float = Field(
        60.0,
        ge=0,
        description="and at most once in this many seconds, counted from the search's start: a search "
        "shorter than this gets its final report only",
    )


SECTIONS: dict[str, type[Section]] = {
    "data": DataSpec,
    "search": SearchSettings,
    "resources": Resources,
    "tracking": Tracking,
}
