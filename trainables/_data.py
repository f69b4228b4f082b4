"""Datasets a trial trains on, decoded once per worker process and split without leakage.

Images are kept as uint8 arrays at the spec's size; timm's transforms turn them into tensors per
sample for training, and the evaluation splits are transformed once and cached as tensors (the
eval transform is deterministic), so validation each epoch costs only the forward pass.

Two kinds: ``digits`` (scikit-learn's bundled 8x8 digits, for demos and tests; ``_digits.py``)
and ``imagefolder`` (``_folder.py``). Either way the split is stratified per class and seeded
(``_splits.py``), so every trial of every search on the same data sees the same train/val/test
images. This module only registers the loaders, caches what they decode and feeds it to torch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from PIL import Image
from torch.utils.data import Dataset

from tunefleet.spaces import DataKind, DataSpec

from ._digits import decode_digits
from ._folder import decode_folder
from ._splits import ImageData, Split

# The loaders by ``DataSpec.kind``; each decodes and splits a whole dataset.
DATASETS: dict[str, Callable[[DataSpec], ImageData]] = {"digits": decode_digits, "imagefolder": decode_folder}


@functools.lru_cache(maxsize=4)
def _load(source: DataSpec) -> ImageData:
    if source.kind not in DATASETS:
        raise ValueError(f"unknown data kind {source.kind!r}; known: {sorted(DATASETS)}")
    return DATASETS[source.kind](source)


def load_data(source: DataSpec | DataKind, image_size: int = 32, split_seed: int = 0) -> ImageData:
    """Decode a dataset once per process (reused across trials when Ray reuses the actor).

    Args:
        source: The spec's ``data`` section (frozen, so it is the cache key), or a kind name
            (``"digits"``) for that kind's defaults.
        image_size: Used only with a kind name.
        split_seed: Used only with a kind name.
    """
    if isinstance(source, str):
        source = DataSpec(kind=source, image_size=image_size, split_seed=split_seed)
    return _load(source)


class TransformedSplit(Dataset[tuple[torch.Tensor, int]]):
    """A split seen through a PIL-based transform (timm's ``create_transform``)."""

    def __init__(self, split: Split, transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.split = split
        self.transform = transform

    def __len__(self) -> int:
        return len(self.split.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.split.images[i])), int(self.split.labels[i])


def eval_tensors(split: Split, transform: Callable[[Image.Image], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole split through the (deterministic) eval transform, as one batch tensor."""
    if len(split.labels) == 0:
        return torch.zeros(0), torch.zeros(0, dtype=torch.int64)
    x = torch.stack([transform(Image.fromarray(im)) for im in split.images])
    return x, torch.from_numpy(split.labels)
