"""The ``digits`` dataset: scikit-learn's bundled 8x8 digits, upsampled, for demos and tests.

A loader of its own (like ``_folder``), so that ``_data`` only registers and caches loaders.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from tunefleet.spaces import DataSpec

from ._splits import ImageData, Split, resize, stratified_split

# load_digits() holds this many images; known without importing scikit-learn (slow), to plan.
DIGITS_IMAGES = 1797


def resize_all(images: list[np.ndarray] | np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 images (all of one mode) to ``size`` x ``size`` and stack them."""
    return np.stack([np.asarray(resize(Image.fromarray(im), size)) for im in images])


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """``load_digits()``'s images (1797 x 8 x 8, values 0..16) and targets, read from the file
    scikit-learn ships them in (``sklearn/datasets/data/digits.csv.gz``: 64 pixels and the digit
    per row) without importing scikit-learn, about 1.3 s of CPU in every trial process. A
    scikit-learn that keeps them elsewhere is asked through ``load_digits``."""
    spec = importlib.util.find_spec("sklearn")  # finds the package without running it
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    csv = Path(folders[0], "datasets", "data", "digits.csv.gz") if folders else None
    if csv is None or not csv.is_file():
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return bunch.images, bunch.target
    rows = np.loadtxt(csv, delimiter=",")
    return rows[:, :-1].reshape(-1, 8, 8), rows[:, -1].astype(int)


def decode_digits(source: DataSpec) -> ImageData[Split]:
    """The 1797 digits at ``source.image_size``, split per ``source`` (seeded, stratified)."""
    pixels, targets = digits_arrays()
    # 8x8 images with values 0..16 -> uint8 0..255, upsampled once to the spec's size.
    raw = np.clip(np.rint(pixels * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    images = resize_all(raw, source.image_size)
    if source.color == "rgb":
        images = np.repeat(images[..., None], 3, axis=-1)
    labels = targets.astype(np.int64)
    train, val, test = stratified_split(labels, source.split_seed, source.val_fraction, source.test_fraction)
    return ImageData(
        train=Split(images[train], labels[train]),
        val=Split(images[val], labels[val]),
        test=Split(images[test], labels[test]),
        class_names=tuple(str(n) for n in range(10)),
    )
