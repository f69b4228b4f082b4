"""Datasets a trial trains on, decoded once per worker process and split without leakage.

Images are kept as uint8 arrays at the spec's size; timm's transforms turn them into tensors per
sample for training, and the evaluation splits are transformed once and cached as tensors (the
eval transform is deterministic), so validation each epoch costs only the forward pass.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

# Fractions of each class held out for validation and test; fixed so every trial of every search
# on the same data sees the same split.
VAL_FRACTION = 0.2
TEST_FRACTION = 0.2


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

    @property
    def in_chans(self) -> int:
        return 1 if self.train.images.ndim == 3 else 3

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def stratified_split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of train/val/test, each class split in the same proportions; disjoint by construction."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    rest, test = train_test_split(index, test_size=TEST_FRACTION, stratify=labels, random_state=seed)
    val_share = VAL_FRACTION / (1.0 - TEST_FRACTION)
    train, val = train_test_split(rest, test_size=val_share, stratify=labels[rest], random_state=seed)
    return np.sort(train), np.sort(val), np.sort(test)


def _resize_all(images: np.ndarray, size: int) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BILINEAR)) for im in images])


def _digits(image_size: int, split_seed: int) -> ImageData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # 8x8 images with values 0..16 -> uint8 0..255, upsampled once to the spec's size.
    raw = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    images = _resize_all(raw, image_size)
    labels = bunch.target.astype(np.int64)
    train, val, test = stratified_split(labels, split_seed)
    return ImageData(
        train=Split(images[train], labels[train]),
        val=Split(images[val], labels[val]),
        test=Split(images[test], labels[test]),
        class_names=tuple(str(n) for n in bunch.target_names),
    )


DATASETS: dict[str, Callable[[int, int], ImageData]] = {"digits": _digits}


@functools.lru_cache(maxsize=4)
def load_data(kind: str, image_size: int, split_seed: int = 0) -> ImageData:
    """Decode a dataset once per process (reused across trials when Ray reuses the actor)."""
    if kind not in DATASETS:
        raise ValueError(f"unknown data kind {kind!r}; known: {sorted(DATASETS)}")
    return DATASETS[kind](image_size, split_seed)


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
    x = torch.stack([transform(Image.fromarray(im)) for im in split.images])
    return x, torch.from_numpy(split.labels)
