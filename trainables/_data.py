"""Datasets a trial trains on, decoded once per worker process and split without leakage.

Images are kept as uint8 arrays at the spec's size; timm's transforms turn them into tensors per
sample for training, and the evaluation splits are transformed once and cached as tensors (the
eval transform is deterministic), so validation each epoch costs only the forward pass.

Two kinds: ``digits`` (scikit-learn's bundled 8x8 digits, for demos and tests) and
``imagefolder`` (see ``_folder.py``). Either way the split is stratified per class and seeded,
so every trial of every search on the same data sees the same train/val/test images.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from tunefleet.spaces import DataSpec


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8, [N, H, W] (grayscale) or [N, H, W, 3]
    labels: np.ndarray  # int64, [N]


@dataclass(frozen=True)
class ImageData:
    train: Split
    val: Split
    test: Split
    class_names: tuple[str, ...]
    skipped: int = 0  # unreadable files left out

    @property
    def in_chans(self) -> int:
        return 1 if self.train.images.ndim == 3 else 3

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def stratified_split(
    labels: np.ndarray, seed: int, val_fraction: float = 0.2, test_fraction: float = 0.2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of train/val/test: each class shuffled (seeded) and cut in the same proportions.

    Every class with at least 3 images puts at least one in each split; the three index sets are
    disjoint by construction and sorted.
    """
    rng = np.random.default_rng(seed)
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n = len(members)
        # At least one image in each requested split, at least one left to train on.
        n_test = 0 if not test_fraction else max(0, min(max(1, round(n * test_fraction)), n - 1 - (val_fraction > 0)))
        n_val = 0 if not val_fraction else max(0, min(max(1, round(n * val_fraction)), n - n_test - 1))
        parts[2].append(members[:n_test])
        parts[1].append(members[n_test : n_test + n_val])
        parts[0].append(members[n_test + n_val :])
    train, val, test = (np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64) for p in parts)
    return train, val, test


def resize_all(images: list[np.ndarray] | np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 images (all of one mode) to ``size`` x ``size`` and stack them."""
    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BILINEAR)) for im in images])


def _digits(source: DataSpec) -> ImageData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # 8x8 images with values 0..16 -> uint8 0..255, upsampled once to the spec's size.
    raw = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    images = resize_all(raw, source.image_size)
    if source.color == "rgb":
        images = np.repeat(images[..., None], 3, axis=-1)
    labels = bunch.target.astype(np.int64)
    train, val, test = stratified_split(labels, source.split_seed, source.val_fraction, source.test_fraction)
    return ImageData(
        train=Split(images[train], labels[train]),
        val=Split(images[val], labels[val]),
        test=Split(images[test], labels[test]),
        class_names=tuple(str(n) for n in bunch.target_names),
    )


def _imagefolder(source: DataSpec) -> ImageData:
    from ._folder import decode_folder

    return decode_folder(source)


DATASETS: dict[str, Callable[[DataSpec], ImageData]] = {"digits": _digits, "imagefolder": _imagefolder}


@functools.lru_cache(maxsize=4)
def _load(source: DataSpec) -> ImageData:
    if source.kind not in DATASETS:
        raise ValueError(f"unknown data kind {source.kind!r}; known: {sorted(DATASETS)}")
    return DATASETS[source.kind](source)


def load_data(source: DataSpec | str, image_size: int = 32, split_seed: int = 0) -> ImageData:
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
