"""Datasets a trial trains on, split without leakage, and which of two data paths feeds them.

- ``memory``: every image decoded once per trial process at the spec's size (uint8 arrays) and
  reused by every trial that process runs (Ray reuses a trial's actor). Suits digits and folders
  up to a few GiB decoded.
- ``stream``: only the file list is kept; loader workers read and resize each image every epoch.
  Memory stays flat in the dataset size.

Both give an ``ImageData`` whose splits answer ``image(i)`` (``_splits.py``), so one loader
machinery (``_feed.py``) serves them, and they hold the same images in the same order: a search
gets the same results either way. ``auto`` picks by a budget of decoded bytes per trial process
(``data.cache_budget_gb``); ``plan_data`` makes that choice, before a search starts (the CLI
prints it, the search run logs it) and again in each trial process, from the same folder.

Kinds: ``digits`` (scikit-learn's bundled 8x8 digits; ``_digits.py``) and ``imagefolder``
(``_folder.py``). Either way the split is stratified per class and seeded (``_splits.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from tunefleet.spaces import DataKind, DataSpec, SpecError

from ._digits import DIGITS_IMAGES, decode_digits
from ._folder import FolderScan, decode_folder, folder_splits, scan_folder
from ._splits import FileSplit, ImageData, Split

GIB = 2**30


def _size(n: int) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB / 10 else f"{n / 2**20:.1f} MiB"


@dataclass(frozen=True)
class DataPlan:
    """Which path feeds a search's trials, and the numbers it was chosen by."""

    cache: Literal["memory", "stream"]
    images: int
    decoded_bytes: int  # the whole dataset decoded at image_size: what ``memory`` keeps per process
    budget_gb: float  # data.cache_budget_gb
    asked: str  # the spec's data.cache (auto, memory or stream)

    @property
    def decoded_gib(self) -> float:
        return self.decoded_bytes / GIB

    def describe(self) -> str:
        size = f"{_size(self.decoded_bytes)} decoded, budget {self.budget_gb:g} GiB"
        how = "cached in memory" if self.cache == "memory" else "streamed from disk"
        return f"{how} ({size}; data.cache: {self.asked})"


def plan_data(source: DataSpec, scan: FolderScan | None = None) -> DataPlan:
    """Choose memory or stream for ``source``; ``SpecError("data.cache")`` if memory was asked for
    and the decoded images would not fit the budget. ``scan``: the folder's, if already listed."""
    if source.kind == "imagefolder":
        scan = scan or _scan(source.root)
        images, grayscale = scan.num_images, scan.grayscale
    else:
        images, grayscale = DIGITS_IMAGES, True
    channels = 1 if (grayscale if source.color == "auto" else source.color == "grayscale") else 3
    decoded = images * source.image_size**2 * channels
    budget = source.cache_budget_gb * GIB
    if source.cache == "memory" and decoded > budget:
        raise SpecError(
            "data.cache",
            f"memory needs about {_size(decoded)} for {images} images at {source.image_size}x"
            f"{source.image_size}x{channels}, over data.cache_budget_gb={source.cache_budget_gb:g}; "
            "use cache: stream (or auto), or raise the budget",
        )
    fits: Literal["memory", "stream"] = "memory" if decoded <= budget else "stream"
    chosen = fits if source.cache == "auto" else source.cache
    return DataPlan(chosen, images, decoded, source.cache_budget_gb, source.cache)


@functools.lru_cache(maxsize=4)
def _scan(root: str) -> FolderScan:
    return scan_folder(root, verify=False)


# The loaders by ``DataSpec.kind``; each decodes and splits a whole dataset into memory (a
# folder from the listing this process already made to plan).
DATASETS: dict[str, Callable[[DataSpec], ImageData[Split]]] = {
    "digits": decode_digits,
    "imagefolder": lambda source: decode_folder(source, _scan(source.root)),
}


@functools.lru_cache(maxsize=4)
def _load(source: DataSpec) -> ImageData[Split]:
    if source.kind not in DATASETS:
        raise ValueError(f"unknown data kind {source.kind!r}; known: {sorted(DATASETS)}")
    return DATASETS[source.kind](source)


@functools.lru_cache(maxsize=4)
def _stream(source: DataSpec) -> ImageData[FileSplit]:
    return folder_splits(source, _scan(source.root))


def load_data(source: DataSpec | DataKind, image_size: int = 32, split_seed: int = 0) -> ImageData[Split]:
    """The dataset decoded into memory, once per process (reused across trials when Ray reuses
    the actor).

    Args:
        source: The spec's ``data`` section (frozen, so it is the cache key), or a kind name
            (``"digits"``) for that kind's defaults.
        image_size: Used only with a kind name.
        split_seed: Used only with a kind name.
    """
    if isinstance(source, str):
        source = DataSpec(kind=source, image_size=image_size, split_seed=split_seed)
    return _load(source.model_copy(update={"cache": "memory"}))


def open_data(source: DataSpec) -> tuple[ImageData[Split] | ImageData[FileSplit], DataPlan]:
    """The dataset on the path ``plan_data`` chooses for it, and that plan."""
    plan = plan_data(source, _scan(source.root) if source.kind == "imagefolder" else None)
    if plan.cache == "stream":
        return _stream(source.model_copy(update={"cache": "stream"})), plan
    return load_data(source), plan
