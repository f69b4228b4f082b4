"""Generated image folders for the data benchmarks: ``root/<class>/<n>.jpg``, all at one size.

Each class is a noisy field of its own colour with a bright square at a class-dependent place,
so a model has something to learn; JPEG quality 90, as cameras and datasets ship them. Writing
is spread over threads (PIL releases the GIL while encoding).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image


def _write_one(path: Path, label: int, classes: int, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    hue = np.array([(label * 97) % 256, (label * 53 + 80) % 256, (label * 31 + 160) % 256], dtype=np.float64)
    image = hue + rng.normal(0, 40, size=(size, size, 3))
    corner = int(size * label / max(classes, 1) * 0.75)
    image[corner : corner + size // 4, corner : corner + size // 4] = 255
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path, quality=90)


def write_jpeg_folder(root: Path, images: int, size: int = 128, classes: int = 10, seed: int = 0) -> Path:
    """``images`` JPEGs of ``size`` x ``size`` spread evenly over ``classes`` class folders."""
    for label in range(classes):
        (root / f"class_{label:02d}").mkdir(parents=True, exist_ok=True)

    def write(i: int) -> None:
        label = i % classes
        _write_one(root / f"class_{label:02d}" / f"{i:06d}.jpg", label, classes, size, seed * 1_000_003 + i)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(images)))
    return root
