"""The records every dataset loader returns (``Split``, ``ImageData``) and the seeded, stratified
split they share.

Its own module so the loaders (``_digits``, ``_folder``) and the registry that dispatches to
them (``_data``) all import it, and none of them has to import another back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

# How every loader brings an image to the spec's size. An export's card records it, so that
# ``tunefleet predict`` prepares new images exactly as the search prepared its data.
RESIZE = "bilinear"


def resize(image: Image.Image, size: int) -> Image.Image:
    return image.resize((size, size), Image.Resampling[RESIZE.upper()])


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
