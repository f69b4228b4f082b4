"""What ``tunefleet fit`` knows about the data before it plans: counts, classes, sizes, channels.

Folders are listed by the same ``scan_folder`` a search's preflight runs (so a folder ``fit``
accepts, ``search`` accepts too, and bad folders are refused with the same messages); the one
thing that scan does not keep is the images' pixel sizes, so ``fit`` reads the headers of an
evenly spaced sample of the files (PIL reads the size without decoding). Digits are known
without loading anything: 1797 8x8 grayscale images in 10 classes.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from tunefleet.spaces import DataSpec, SpecError

DIGITS = "digits"
# Headers read to find the typical image size: enough for a stable median, cheap on any folder.
SIZE_SAMPLE = 200
# load_digits() (trainables._digits.DIGITS_IMAGES); repeated so planning digits imports no torch.
DIGITS_IMAGES, DIGITS_CLASSES, DIGITS_PX = 1797, 10, 8


@dataclass(frozen=True)
class DataScan:
    """The data as the planner sees it."""

    kind: str  # DataSpec.kind: digits or imagefolder
    root: str  # absolute folder ("" for digits)
    images: int
    classes: int
    train_images: int  # images one training epoch passes over (after the val/test split)
    eval_images: int  # val + test: a forward pass each per epoch
    typical_px: int  # median shorter side of the images
    channels: int  # 1 when every image is grayscale, else 3
    described: str  # the scan's own one-line description

    @property
    def name(self) -> str:
        """The data's name in the experiment's: ``digits``, or the folder's name."""
        return DIGITS if self.kind == DIGITS else Path(self.root).name


# What fit holds out of a folder without val/test splits on disk (and of digits): less than a
# search's 20/20 default, because under a time limit on small data training images are the
# scarcest thing. Validation picks the configs and weighs the ensemble; the test split only
# reports the export (a user scores it on their own held-out images).
VAL_FRACTION, TEST_FRACTION = 0.15, 0.1


def split_counts(per_split: dict[str, int], data: DataSpec) -> tuple[int, int]:
    """(training images, val + test images) as ``folder_splits`` divides them: splits on disk as
    they are, missing val/test carved out of train (or the one folder) by the spec's fractions."""
    pool = per_split.get("train", per_split.get("all", 0))
    carved = (0.0 if "val" in per_split else data.val_fraction) + (0.0 if "test" in per_split else data.test_fraction)
    held = round(pool * carved)
    on_disk = per_split.get("val", 0) + per_split.get("test", 0)
    return pool - held, held + on_disk


def digits_scan(data: DataSpec | None = None) -> DataScan:
    data = data or DataSpec(kind="digits", val_fraction=VAL_FRACTION, test_fraction=TEST_FRACTION)
    train, held = split_counts({"all": DIGITS_IMAGES}, data)
    described = f"{DIGITS_IMAGES} images in {DIGITS_CLASSES} classes (scikit-learn digits; grayscale)"
    return DataScan("digits", "", DIGITS_IMAGES, DIGITS_CLASSES, train, held, DIGITS_PX, 1, described)


def _typical_px(paths: list[Path]) -> int:
    """Median shorter side over an evenly spaced sample of ``paths`` (unreadable ones skipped)."""
    from PIL import Image

    step = max(1, len(paths) // SIZE_SAMPLE)
    sides = []
    for path in paths[::step][:SIZE_SAMPLE]:
        try:
            with Image.open(path) as im:
                sides.append(min(im.size))
        except Exception:  # scan_folder already counted it as unreadable
            continue
    return int(statistics.median(sides)) if sides else 0


def check_folder(target: str) -> Path:
    """``target`` as an absolute folder; a missing one is refused before anything heavy loads."""
    root = Path(target).expanduser().resolve()
    if not root.exists():
        raise SpecError("DATA", f"no such folder: {target} (an image folder, or the word '{DIGITS}')")
    if not root.is_dir():
        raise SpecError("DATA", f"not a folder: {target}")
    return root


def scan_data(target: str) -> DataScan:
    """Scan ``target`` (``digits`` or an image folder); ``SpecError("DATA", ...)`` if it cannot be trained on."""
    if target == DIGITS:
        return digits_scan()
    root = check_folder(target)
    from tunefleet.trainables import scan_folder  # loads torch: only once the input is known good

    try:
        scan = scan_folder(root)
    except SpecError as err:  # the same checks as a search's; named after this command's argument
        raise SpecError("DATA", err.message) from None
    data = DataSpec(kind="imagefolder", root=str(root), val_fraction=VAL_FRACTION, test_fraction=TEST_FRACTION)
    train, held = split_counts({split: len(files) for split, files in scan.files.items()}, data)
    paths = [path for files in scan.files.values() for path, _ in files]
    channels = 1 if scan.grayscale else 3
    return DataScan(
        "imagefolder", str(root), scan.num_images, len(scan.class_names), train, held, _typical_px(paths), channels,
        scan.describe(),
    )  # fmt: skip
