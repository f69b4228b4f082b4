"""The augmentation factory: a recipe's ``augmentation`` group and ``auto_augment`` family ->
train and eval transforms over timm's ``create_transform``, in timm's prefetcher form.

Per sample (in the loader workers), images stay uint8: geometry and colour ops, then timm's
``MaybePILToTensor``. Per batch, on the training device: timm's ``PrefetchLoader`` normalizes
(``_feed.py``), then ``BatchAugment`` adds Gaussian noise and timm's random erasing. Moving
uint8 between processes costs a quarter of float32, and on a GPU the arithmetic leaves the CPU.

Its own module because the train pipeline is assembled from timm's three stages with our own
steps between them (rotation before, a shift, auto-augment and jitter amid, noise before erasing),
and that ordering is the one thing here that needs care.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from timm.data import create_transform
from timm.data.auto_augment import rand_augment_choices, rand_augment_transform
from timm.data.random_erasing import RandomErasing
from torchvision import transforms as T


class GaussianNoise:
    """Adds N(0, std^2) noise to a normalized image or batch, on whatever device it is on."""

    def __init__(self, std: float) -> None:
        self.std = std

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.randn_like(x) * self.std

    def __repr__(self) -> str:
        return f"GaussianNoise(std={self.std})"


class BatchAugment:
    """The train steps that come after normalizing, on a whole batch on its device: noise, then
    timm's random erasing (so erased patches stay clean pixel noise)."""

    def __init__(self, noise_std: float, re_prob: float, device: torch.device) -> None:
        self.noise = GaussianNoise(noise_std) if noise_std > 0 else None
        self.erasing = RandomErasing(re_prob, mode="pixel", device=device) if re_prob > 0 else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.noise is not None:
            x = self.noise(x)
        if self.erasing is not None:
            x = self.erasing(x)
        return x

    @property
    def active(self) -> bool:
        return self.noise is not None or self.erasing is not None


@dataclass(frozen=True)
class Transforms:
    """Per-sample transforms (PIL at ``image_size`` -> uint8 tensor) and the normalization and
    batch steps that follow them on the device."""

    train: T.Compose
    evaluate: T.Compose
    mean: tuple[float, ...]
    std: tuple[float, ...]
    noise_std: float
    re_prob: float
    size: int  # the side both take and give: images stored at it pass through unchanged
    per_sample: bool = True  # whether train changes an image; False: it is evaluate (see _feed's ready path)

    def batch_augment(self, device: torch.device) -> BatchAugment:
        return BatchAugment(self.noise_std, self.re_prob, device)


# timm's "Posterize" ops reach 0 bits at the ends of the magnitude range, which Pillow >= 11
# refuses; RandAugment/TrivialAugment here use timm's increasing-severity ops without them.
_AA_OPS = [op for op in rand_augment_choices("", increasing=True) if not op.startswith("Posterize")]


def _auto_augment(policy: dict[str, Any], image_size: int, mean: tuple[float, ...]) -> Any:
    """timm's RandAugment (``rand``) or TrivialAugment (``trivial``: one op, magnitude uniform in
    [0, m], always applied), or None."""
    name = policy["name"]
    if name == "none":
        return None
    hparams = {"translate_const": int(image_size * 0.45), "img_mean": tuple(min(255, round(255 * m)) for m in mean)}
    if name == "rand":
        config = f"rand-m{policy['magnitude']}-n{policy['num_ops']}-mstd0.5-inc1"
    elif name == "trivial":
        config = f"rand-m{policy['magnitude']}-n1-p1.0-mstd101-inc1"
    else:
        raise ValueError(f"unknown auto_augment policy {name!r}")
    return rand_augment_transform(config, hparams, transforms=_AA_OPS)


def _rotation(aug: dict[str, Any], in_chans: int, mean: tuple[float, ...]) -> list[Any]:
    """Random rotation of the whole image, ahead of timm's crop."""
    if aug["rotation"] <= 0:
        return []
    fill = [round(255 * m) for m in mean]  # corners take the mean colour: about zero once normalized
    return [T.RandomRotation(aug["rotation"], fill=fill[0] if in_chans == 1 else fill)]


def _translation(aug: dict[str, Any], in_chans: int, mean: tuple[float, ...]) -> list[Any]:
    """A random shift of the cropped image (the pad-and-crop of CIFAR-style training), the edge it
    uncovers in the mean colour. Objects anywhere in the frame: the one geometry a crop that keeps
    most of the image (``scale_min`` near 1) hardly varies."""
    shift = float(aug["translate"])
    if shift <= 0:
        return []
    fill = [round(255 * m) for m in mean]
    return [T.RandomAffine(degrees=0.0, translate=(shift, shift), fill=fill[0] if in_chans == 1 else fill)]


def _photometric(recipe: dict[str, Any], image_size: int, in_chans: int, mean: tuple[float, ...]) -> list[Any]:
    """Auto-augment, then colour jitter (saturation skipped for 1 channel): PIL ops after the crop."""
    aug = recipe["augmentation"]
    steps: list[Any] = []
    policy = _auto_augment(recipe["auto_augment"], image_size, mean)
    if policy is not None:
        steps.append(policy)
    jitter = (aug["brightness"], aug["contrast"], aug["saturation"] if in_chans == 3 else 0.0)
    if any(jitter):
        steps.append(T.ColorJitter(*jitter))
    return steps


def create_transforms(
    recipe: dict[str, Any], image_size: int, in_chans: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> Transforms:
    """timm's train and eval transforms for PIL images already at ``image_size`` ("L" or "RGB").

    Train, per sample: rotation, timm's random-resized crop and flips, a shift, auto-augment, colour
    jitter (saturation skipped for 1 channel), uint8 tensor; per batch: normalize, Gaussian
    noise, random erasing. Eval: uint8 tensor, then normalize (``crop_pct=1``: images are stored
    at the model's size).
    """
    aug = recipe["augmentation"]
    # timm's three stages: primary (crop, flips), secondary (its own colour ops: none, since its
    # jitter is off and it gets no auto_augment) and final (with the prefetcher: to uint8 tensor).
    primary, secondary, final = create_transform(
        input_size=(in_chans, image_size, image_size),
        is_training=True,
        separate=True,
        scale=(aug["scale_min"], 1.0),
        hflip=0.5 if aug["hflip"] else 0.0,
        vflip=0.5 if aug["vflip"] else 0.0,
        color_jitter=None,  # type: ignore[arg-type]  # None turns timm's off; ours is in _photometric
        interpolation="bilinear",
        use_prefetcher=True,
        mean=mean,
        std=std,
    )
    train = T.Compose(
        _rotation(aug, in_chans, mean)
        + list(primary.transforms)
        + _translation(aug, in_chans, mean)
        + list(secondary.transforms)
        + _photometric(recipe, image_size, in_chans, mean)
        + list(final.transforms)
    )
    evaluate = _eval_transform(image_size, in_chans, mean, std)
    noise, erasing = float(aug["noise_std"]), float(aug["re_prob"])
    return Transforms(train, evaluate, tuple(mean), tuple(std), noise, erasing, image_size, _per_sample(recipe))


def _per_sample(recipe: dict[str, Any]) -> bool:
    """Whether the train transform can change an image stored at its size. With none of these
    on, timm's crop keeps the whole image (its area is 1; an aspect it cannot fit falls back to the
    whole image) and resizes it to the size it has, so train gives what evaluate gives."""
    aug = recipe["augmentation"]
    geometry = aug["scale_min"] < 1.0 or aug["hflip"] or aug["vflip"] or aug["rotation"] > 0 or aug["translate"] > 0
    colour = any((aug["brightness"], aug["contrast"], aug["saturation"]))
    return bool(geometry or colour or recipe["auto_augment"]["name"] != "none")


def _eval_transform(image_size: int, in_chans: int, mean: tuple[float, ...], std: tuple[float, ...]) -> T.Compose:
    # crop_pct=1: images are stored at the model's size, so evaluation must not crop their borders.
    return create_transform(
        input_size=(in_chans, image_size, image_size),
        is_training=False,
        crop_pct=1.0,
        interpolation="bilinear",
        use_prefetcher=True,
        mean=mean,
        std=std,
    )


def unit_transforms(image_size: int, in_chans: int) -> Transforms:
    """Evaluation only, to images scaled to [0, 1] (mean 0, std 1: the prefetcher only divides by
    255): the input an exported graph takes, which normalizes inside itself."""
    zeros, ones = (0.0,) * in_chans, (1.0,) * in_chans
    evaluate = _eval_transform(image_size, in_chans, zeros, ones)
    return Transforms(evaluate, evaluate, zeros, ones, noise_std=0.0, re_prob=0.0, size=image_size, per_sample=False)
