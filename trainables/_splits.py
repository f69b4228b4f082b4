"""The records every dataset loader returns (``ImageData`` of splits) and the seeded, stratified
split they share.

A split is either decoded (``Split``: uint8 arrays in memory) or a list of files (``FileSplit``:
each image read from disk when asked for). Both answer ``len``, ``labels`` and ``image(i)`` (a
PIL image at the spec's size), so the loader machinery (``_feed``) treats them alike, and a
decoded split is its files' split read once by the same ``read_image``.

Its own module so the loaders (``_digits``, ``_folder``) and the registry that dispatches to
them (``_data``) all import it, and none of them has to import another back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
from PIL import Image

# How every loader brings an image to the spec's size. An export's card records it, so that
# ``tunefleet predict`` prepares new images exactly as the search prepared its data.
RESIZE = "bilinear"


def resize(image: Image.Image, size: int) -> Image.Image:
    if image.size == (size, size):  # already there: resizing would only cost time
        return image
    return image.resize((size, size), Image.Resampling[RESIZE.upper()])


def read_image(path: str | Path, mode: str, size: int) -> Image.Image:
    """One file decoded to ``mode`` ("L" or "RGB") at ``size`` x ``size``; raises if unreadable."""
    with Image.open(path) as image:
        return resize(image.convert(mode), size)


@dataclass(frozen=True)
class Split:
    """A decoded split: every image in memory."""

    images: np.ndarray  # uint8, [N, H, W] (grayscale) or [N, H, W, 3]
    labels: np.ndarray  # int64, [N]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def in_chans(self) -> int:
        return 1 if self.images.ndim == 3 else 3

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    def image(self, i: int) -> Image.Image:
        return Image.fromarray(self.images[i])


@dataclass(frozen=True)
class FileSplit:
    """A streamed split: files read (and resized) each time an image is asked for."""

    files: tuple[str, ...]
    labels: np.ndarray  # int64, [N]
    mode: str  # "L" or "RGB"
    size: int

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def in_chans(self) -> int:
        return 1 if self.mode == "L" else 3

    def image(self, i: int) -> Image.Image:
        return read_image(self.files[i], self.mode, self.size)


S = TypeVar("S", Split, FileSplit)


@dataclass(frozen=True)
class ImageData(Generic[S]):
    """A dataset's three splits, all decoded (``ImageData[Split]``) or all streamed."""

    train: S
    val: S
    test: S
    class_names: tuple[str, ...]
    skipped: int = 0  # unreadable files left out

    @property
    def in_chans(self) -> int:
        return self.train.in_chans

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
