"""Image folders: layouts, colour detection, leak-free splits, bad folders refused by field."""

from __future__ import annotations

import numpy as np
import pytest

from tunefleet.spaces import DataSpec, SpecError
from tunefleet.trainables import load_data, scan_folder, stratified_split


def _hashes(split) -> set[bytes]:
    return {im.tobytes() for im in split.images}


def test_one_folder_is_split_by_class_without_leaks(tmp_path, image_folder):
    root = image_folder(tmp_path / "data", {"cat": 30, "dog": 12, "fox": 7})
    (root / "dog" / "broken.png").write_bytes(b"not a png at all")
    (root / "notes.txt").write_text("ignored: not an image")
    scan = scan_folder(root)
    assert scan.class_names == ("cat", "dog", "fox") and len(scan.unreadable) == 1
    assert "49 images in 3 classes" in scan.describe() and "1 unreadable skipped" in scan.describe()

    data = load_data(DataSpec(kind="imagefolder", root=str(root), image_size=24))
    assert data.in_chans == 3 and data.train.images.shape[1:] == (24, 24, 3)
    assert data.skipped == 1
    sizes = [len(s.labels) for s in (data.train, data.val, data.test)]
    assert sum(sizes) == 49
    for split in (data.train, data.val, data.test):
        assert set(np.unique(split.labels)) == {0, 1, 2}  # every class in every split
    assert not (_hashes(data.train) & _hashes(data.val)) and not (_hashes(data.train) & _hashes(data.test))


def test_train_val_layout_keeps_disk_splits_and_carves_test_from_train(tmp_path, image_folder):
    root = tmp_path / "data"
    image_folder(root, {"cat": 10, "dog": 10, "fox": 10}, split="train", grayscale=True)
    image_folder(root, {"cat": 3, "dog": 3, "fox": 3}, split="val", grayscale=True, seed=1)
    data = load_data(DataSpec(kind="imagefolder", root=str(root), image_size=16, test_fraction=0.2))
    assert data.in_chans == 1  # every image is grayscale, so one channel
    assert len(data.val.labels) == 9
    assert len(data.train.labels) + len(data.test.labels) == 30 and len(data.test.labels) == 6
    rgb = load_data(DataSpec(kind="imagefolder", root=str(root), image_size=16, color="rgb"))
    assert rgb.in_chans == 3


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda root, make: None, "no such folder"),
        (lambda root, make: make(root, {"cat": 5}), "need at least 2"),
        (lambda root, make: make(root, {"cat": 5, "dog": 2}), "class 'dog' has 2 image"),
        (
            lambda root, make: (
                make(root, {"cat": 4, "dog": 4}, split="train"),
                make(root, {"owl": 2}, split="val"),
            ),
            "val/ has class 'owl' that train/ lacks",
        ),
    ],
    ids=["missing", "one-class", "tiny-class", "unknown-val-class"],
)
def test_bad_folders_are_refused_naming_data_root(tmp_path, image_folder, build, message):
    root = tmp_path / "data"
    build(root, image_folder)
    with pytest.raises(SpecError, match=message) as err:
        scan_folder(root)
    assert err.value.path == "data.root"


def test_stratified_split_is_seeded_disjoint_and_covers_everything():
    labels = np.repeat(np.arange(4), [3, 10, 25, 7])
    train, val, test = stratified_split(labels, seed=3)
    again = stratified_split(labels, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again, strict=True))
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(len(labels)))
    assert all(set(np.unique(labels[s])) == {0, 1, 2, 3} for s in (train, val, test))
