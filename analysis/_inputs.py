"""What ``Ensemble.predict`` takes, as the images ``predict_images`` runs: files, folders, PIL
images and numpy arrays, alone or in a list. Arrays are channels-last, as PIL and most image
libraries hold them; anything that could be read two ways is refused with its shape."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from tunefleet.spaces import SpecError

from ._predict import image_files

# A file or folder, an image in memory, an array (one image or a batch), or a list of these.
ImageInput = str | Path | Image.Image | np.ndarray | Sequence[str | Path | Image.Image | np.ndarray]
CHANNELS = (1, 3, 4)  # the last axis of a channels-last array: grey, RGB, RGBA
FIELD = "IMAGES"  # as `tunefleet predict` names its images


def _as_uint8(array: np.ndarray, where: str) -> np.ndarray:
    """Integers are 0-255, floats 0-1 (as PIL and torchvision's ``to_tensor`` hold them)."""
    low, high = (array.min(), array.max()) if array.size else (0, 0)
    if np.issubdtype(array.dtype, np.integer):
        if low < 0 or high > 255:
            raise SpecError(FIELD, f"{where}: an integer image holds values in [0, 255], got [{low}, {high}]")
        return array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.floating):
        raise SpecError(FIELD, f"{where}: an image array holds integers or floats, got {array.dtype}")
    if low < 0 or high > 1:
        raise SpecError(FIELD, f"{where}: a float image holds values in [0, 1], got [{low}, {high}]")
    return (array * 255).round().astype(np.uint8)


def _image(array: np.ndarray, where: str) -> Image.Image:
    """One [H, W] or [H, W, C] array (C: 1, 3 or 4) as an image."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in CHANNELS):
        raise SpecError(FIELD, f"{where}: an image is [H, W] or [H, W, C] with C 1, 3 or 4, got shape {array.shape}")
    return Image.fromarray(_as_uint8(array, where))


def _images(array: np.ndarray) -> list[Image.Image]:
    """[H, W] and [H, W, C] are one image; [N, H, W] and [N, H, W, C] a batch. Channels first
    ([N, C, H, W], torch's layout) is refused, not guessed."""
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in CHANNELS):
        return [_image(array, "images")]
    if array.ndim == 4 and array.shape[1] in CHANNELS and array.shape[3] not in CHANNELS:
        raise SpecError(FIELD, f"arrays are channels-last, [N, H, W, C]; got shape {array.shape} (channels first?)")
    if array.ndim in (3, 4):
        return [_image(a, f"images[{i}]") for i, a in enumerate(array)]
    raise SpecError(FIELD, f"an array is one image ([H, W] or [H, W, C]) or a batch of them, got shape {array.shape}")


def image_items(images: ImageInput) -> list[Path | Image.Image]:
    """Files (a folder's image files, sorted) and in-memory images, in the order given."""
    if isinstance(images, str | Path):
        return list(image_files([Path(images)]))
    if isinstance(images, Image.Image):
        return [images]
    if isinstance(images, np.ndarray):
        return list(_images(images))
    items: list[Path | Image.Image] = []
    for i, item in enumerate(images):
        if isinstance(item, np.ndarray):
            items.append(_image(item, f"images[{i}]"))
        elif isinstance(item, Image.Image):
            items.append(item)
        else:
            items += image_files([Path(item)])
    if not items:
        raise SpecError(FIELD, "no images given")
    return items
