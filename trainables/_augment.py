"""The augmentation factory: a recipe's ``augmentation`` group and ``auto_augment`` family ->
train and eval transforms over timm's ``create_transform``.

Its own module because the train pipeline is assembled from timm's three stages with our own
steps between them (rotation before, auto-augment and jitter amid, noise after normalizing),
and that ordering is the one thing here that needs care.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from timm.data import create_transform
from timm.data.auto_augment import rand_augment_choices, rand_augment_transform
from torchvision import transforms as T


class GaussianNoise:
    """Adds N(0, std^2) noise to a normalized image tensor (a class, so DataLoader workers can pickle it)."""

    def __init__(self, std: float) -> None:
        self.std = std

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.randn_like(x) * self.std

    def __repr__(self) -> str:
        return f"GaussianNoise(std={self.std})"


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
) -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]:
    """timm's train and eval transforms for PIL images already at ``image_size`` ("L" or "RGB").

    Train: rotation, timm's random-resized crop and flips, auto-augment, colour jitter
    (saturation skipped for 1 channel), tensor + normalize, Gaussian noise, random erasing.
    Eval: tensor + normalize only (``crop_pct=1``: images are stored at the model's size).
    """
    aug = recipe["augmentation"]
    common: dict[str, Any] = {"input_size": (in_chans, image_size, image_size), "mean": mean, "std": std}
    # timm's three stages: primary (crop, flips), secondary (its own colour ops: none, since its
    # jitter is off and it gets no auto_augment) and final (tensor, normalize, random erasing).
    primary, secondary, final = create_transform(
        is_training=True,
        separate=True,
        scale=(aug["scale_min"], 1.0),
        hflip=0.5 if aug["hflip"] else 0.0,
        vflip=0.5 if aug["vflip"] else 0.0,
        color_jitter=None,  # type: ignore[arg-type]  # None turns timm's off; ours is in _photometric
        re_prob=aug["re_prob"],
        re_mode="pixel",
        interpolation="bilinear",
        **common,
    )
    # timm appends random erasing last, and only when re_prob > 0. Noise goes before it, so
    # erased patches stay clean pixel noise rather than getting our noise added on top.
    to_tensor = list(final.transforms)
    erasing = [to_tensor.pop()] if aug["re_prob"] > 0 else []
    noise = [GaussianNoise(aug["noise_std"])] if aug["noise_std"] > 0 else []
    train = T.Compose(
        _rotation(aug, in_chans, mean)
        + list(primary.transforms)
        + list(secondary.transforms)
        + _photometric(recipe, image_size, in_chans, mean)
        + to_tensor
        + noise
        + erasing
    )
    # crop_pct=1: images are stored at the model's size, so evaluation must not crop their borders.
    evaluate = create_transform(is_training=False, crop_pct=1.0, interpolation="bilinear", **common)
    return train, evaluate
