"""Image folders: ``root/<class>/*.png|jpg`` or ``root/train|val|test/<class>/...``.

Scanning (listing files, reading headers, optionally verifying each file) is cheap and runs
before a search starts, so a bad folder is refused up front with the field named. The split is
made on the file list (``folder_splits``), so a streamed and a decoded folder hold the same
images in the same order; decoding (``decode_folder``) happens once per trial process. A file
that cannot be read is skipped and counted, never a crash in the middle of a search.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tunefleet.spaces import DataSpec, SpecError

from ._splits import FileSplit, ImageData, Split, stratified_split

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
SPLITS = ("train", "val", "test")
# PIL modes that hold one channel of intensity; anything else is treated as colour.
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})


@dataclass(frozen=True)
class FolderScan:
    """What is on disk: class names (sorted) and, per split found on disk, its (file, label) pairs."""

    root: Path
    class_names: tuple[str, ...]
    files: dict[str, list[tuple[Path, int]]]  # "all" for the one-folder layout, else train/val[/test]
    grayscale: bool  # every readable image is single-channel
    unreadable: tuple[Path, ...]

    @property
    def num_images(self) -> int:
        return sum(len(v) for v in self.files.values())

    def describe(self) -> str:
        layout = "/".join(self.files) if "all" not in self.files else "one folder, split by class"
        colour = "grayscale" if self.grayscale else "RGB"
        skipped = f", {len(self.unreadable)} unreadable skipped" if self.unreadable else ""
        return f"{self.num_images} images in {len(self.class_names)} classes ({layout}; {colour}{skipped})"


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _header(path: Path, verify: bool) -> str | None:
    """The image's PIL mode, or None when the file is not a readable image."""
    try:
        with Image.open(path) as im:
            mode = im.mode
            if verify:
                im.verify()
        return mode
    except Exception:
        return None


def scan_folder(root: str | Path, verify: bool = True) -> FolderScan:
    """List an image folder and check it can be trained on; ``SpecError("data.root", ...)`` if not."""
    root = Path(root).expanduser()
    if not root.exists():
        raise SpecError("data.root", f"no such folder: {root}")
    if not root.is_dir():
        raise SpecError("data.root", f"not a folder: {root}")
    split_layout = (root / "train").is_dir()
    top = root / "train" if split_layout else root
    class_names = tuple(d.name for d in _class_dirs(top))
    label_of = {name: i for i, name in enumerate(class_names)}
    listed: dict[str, list[tuple[Path, int]]] = {}
    for split in SPLITS if split_layout else ("all",):
        folder = root / split if split_layout else root
        if not folder.is_dir():
            continue
        pairs: list[tuple[Path, int]] = []
        for class_dir in _class_dirs(folder):
            if class_dir.name not in label_of:
                raise SpecError("data.root", f"{split}/ has class {class_dir.name!r} that train/ lacks")
            pairs += [(p, label_of[class_dir.name]) for p in _images(class_dir)]
        listed[split] = pairs
    paths = [p for pairs in listed.values() for p, _ in pairs]
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        modes = dict(zip(paths, pool.map(lambda p: _header(p, verify), paths), strict=True))
    unreadable = tuple(p for p, m in modes.items() if m is None)
    files = {split: [(p, y) for p, y in pairs if modes[p] is not None] for split, pairs in listed.items()}
    scan = FolderScan(
        root=root,
        class_names=class_names,
        files=files,
        grayscale=all(m in GRAY_MODES for m in modes.values() if m is not None),
        unreadable=unreadable,
    )
    _check_classes(scan)
    return scan


def _check_classes(scan: FolderScan) -> None:
    train_key = "train" if "train" in scan.files else "all"
    counts = np.bincount([y for _, y in scan.files[train_key]], minlength=len(scan.class_names))
    present = [name for name, n in zip(scan.class_names, counts, strict=True) if n > 0]
    if len(present) < 2:
        where = "train/" if train_key == "train" else "the root"
        raise SpecError(
            "data.root",
            f"found {len(present)} class folder(s) with images under {where} of {scan.root}; need at least 2 "
            "(layout: root/<class>/*.png or root/train/<class>/*.png)",
        )
    carved = sum(split not in scan.files for split in ("val", "test")) if train_key == "train" else 2
    for name, n in zip(scan.class_names, counts, strict=True):
        if 0 < n < carved + 1:
            raise SpecError(
                "data.root", f"class {name!r} has {n} image(s); at least {carved + 1} are needed to split it"
            )


def folder_splits(source: DataSpec, scan: FolderScan | None = None) -> ImageData[FileSplit]:
    """The folder's files split per ``source`` (seeded, stratified), nothing decoded yet;
    ``scan``: the folder's, if already listed."""
    scan = scan or scan_folder(source.root, verify=False)
    grayscale = scan.grayscale if source.color == "auto" else source.color == "grayscale"
    mode = "L" if grayscale else "RGB"
    listed = {
        split: (tuple(str(p) for p, _ in pairs), np.array([y for _, y in pairs], dtype=np.int64))
        for split, pairs in scan.files.items()
    }
    pool_key = "train" if "train" in listed else "all"
    files, labels = listed[pool_key]
    val_frac = source.val_fraction if "val" not in listed else 0.0
    test_frac = source.test_fraction if "test" not in listed else 0.0
    carved = _carve(labels, source.split_seed, val_frac, test_frac)
    # val/ and test/ on disk are used as they are; missing ones are carved from train (or the one folder).
    train, val, test = (
        listed[name] if name in listed and name != "train" else (tuple(files[i] for i in idx), labels[idx])
        for name, idx in zip(("train", "val", "test"), carved, strict=True)
    )
    train_split, val_split, test_split = (FileSplit(f, y, mode, source.image_size) for f, y in (train, val, test))
    return ImageData(train_split, val_split, test_split, class_names=scan.class_names, skipped=len(scan.unreadable))


def _pixels(split: FileSplit, i: int) -> np.ndarray | None:
    try:
        return np.asarray(split.image(i))
    except Exception:  # any decoder error: the file is skipped and counted, never a crash
        return None


def decode_split(split: FileSplit) -> tuple[Split, int]:
    """Every file of ``split`` decoded into memory (threads: PIL releases the GIL); the decoded
    split and how many files could not be read."""
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        arrays = list(pool.map(lambda i: _pixels(split, i), range(len(split))))
    kept = [(i, a) for i, a in enumerate(arrays) if a is not None]
    shape = (0, split.size, split.size) + (() if split.mode == "L" else (3,))
    images = np.stack([a for _, a in kept]) if kept else np.zeros(shape, np.uint8)
    return Split(images, split.labels[[i for i, _ in kept]]), len(split) - len(kept)


def decode_folder(source: DataSpec, scan: FolderScan | None = None) -> ImageData[Split]:
    """Every image of the folder decoded at ``source.image_size``, split as ``folder_splits``."""
    streamed = folder_splits(source, scan)
    (train, a), (val, b), (test, c) = (decode_split(s) for s in (streamed.train, streamed.val, streamed.test))
    return ImageData(train, val, test, class_names=streamed.class_names, skipped=streamed.skipped + a + b + c)


def _carve(labels: np.ndarray, seed: int, val_frac: float, test_frac: float) -> tuple[np.ndarray, ...]:
    if val_frac and test_frac:
        return stratified_split(labels, seed, val_frac, test_frac)
    everything = np.arange(len(labels))
    if not val_frac and not test_frac:
        return everything, everything[:0], everything[:0]
    # One split to carve: a two-way stratified cut, via the three-way one with an empty third part.
    train, held, _ = stratified_split(labels, seed, val_frac or test_frac, 0.0)
    return (train, held, everything[:0]) if val_frac else (train, everything[:0], held)
