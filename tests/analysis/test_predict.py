"""``predict``'s handling of what it is given, without a model run: files and folders, unreadable images."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tunefleet.analysis import ExportedModel, load_exported
from tunefleet.analysis._predict import image_files, predict_images, preprocess
from tunefleet.spaces import Preprocessing, SpecError
from tunefleet.spaces import records as rec

PREP = Preprocessing(mode="L", size=8, resize="bilinear")


def test_only_unreadable_images_is_one_error_naming_the_count(tmp_path):
    for name in ("a.png", "b.jpg"):
        (tmp_path / name).write_bytes(b"not an image")
    model = ExportedModel(tmp_path / "never-opened.onnx", PREP, ["x", "y"])
    with pytest.raises(SpecError, match=r"^IMAGES: none of the 2 image files could be read"):
        predict_images(model, image_files([tmp_path]))


def test_folders_are_searched_for_images_and_missing_paths_refused(tmp_path):
    (tmp_path / "sub").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "sub" / "one.PNG")
    (tmp_path / "notes.txt").write_text("not an image")
    assert image_files([tmp_path]) == [tmp_path / "sub" / "one.PNG"]
    with pytest.raises(SpecError, match=r"^IMAGES: .*missing\.png does not exist"):
        image_files([tmp_path / "missing.png"])
    with pytest.raises(SpecError, match=r"^MODEL: .* is not an export folder"):
        load_exported(str(tmp_path), "sqlite:///unused.db", tmp_path)


def test_preprocessing_follows_the_card_mode_size_and_scale(tmp_path):
    Image.fromarray(np.full((20, 10, 3), 255, np.uint8)).save(tmp_path / "white.png")
    gray = preprocess(tmp_path / "white.png", PREP)
    assert gray.shape == (1, 8, 8) and gray.dtype == np.float32 and np.allclose(gray, 1.0)
    rgb = preprocess(tmp_path / "white.png", PREP.model_copy(update={"mode": "RGB"}))
    assert rgb.shape == (3, 8, 8)


def test_a_card_is_read_through_its_record_and_an_old_or_broken_one_is_one_line(tmp_path):
    (tmp_path / rec.ONNX_FILE).write_bytes(b"never opened")
    card = {
        "preprocessing": {"mode": "L", "size": 8, "resize": "bilinear", "scale": "pixel / 255"},
        "class_names": ["x", "y"],
        "input": {"name": "image", "shape": ["batch", 1, 8, 8], "dtype": "float32"},
        "output": {"name": "probs", "meaning": "class probabilities"},
        "method": "mean",
        "metric": "val_acc",
        "search_run_id": "abc",
        "members": [{"name": "t0", "val_acc": 0.9}],  # the rest of a card: not needed to run it
    }
    (tmp_path / rec.CARD_FILE).write_text(json.dumps(card))
    model = load_exported(str(tmp_path), "sqlite:///unused.db", tmp_path)
    assert model.preprocessing == Preprocessing(mode="L", size=8, resize="bilinear", scale="pixel / 255")
    assert model.class_names == ["x", "y"]

    (tmp_path / rec.CARD_FILE).write_text(json.dumps({k: v for k, v in card.items() if k != "preprocessing"}))
    with pytest.raises(SpecError, match=r"^MODEL: .* has no preprocessing in its card; export it again"):
        load_exported(str(tmp_path), "sqlite:///unused.db", tmp_path)
    (tmp_path / rec.CARD_FILE).write_text(json.dumps(card | {"preprocessing": {"mode": "CMYK", "size": 8}}))
    with pytest.raises(SpecError, match=r"^MODEL: .* has an unreadable card: invalid 'preprocessing\.mode'") as caught:
        load_exported(str(tmp_path), "sqlite:///unused.db", tmp_path)
    assert "\n" not in str(caught.value)
