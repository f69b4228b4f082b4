"""From a resolved recipe (see ``tunefleet.spaces.resolve``) to the parts of a training run.

One factory per concern, each a thin layer over timm's own factory: an optimizer option name maps
to timm's ``create_optimizer_v2`` arguments, a loss name to a timm/torch loss, the augmentation
group to ``create_transform`` arguments. Every name in ``tunefleet.spaces.FAMILIES`` has an entry
here; the tests check that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import timm
import torch
from timm.data import create_transform, resolve_model_data_config
from timm.loss import LabelSmoothingCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from torch import nn


def _sgd(knobs: dict[str, Any]) -> dict[str, Any]:
    # timm's "sgd" is Nesterov SGD; "momentum" is the classic heavy-ball form.
    return {"opt": "sgd" if knobs["nesterov"] else "momentum", "momentum": knobs["momentum"]}


def _adam_like(opt: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda knobs: {"opt": opt, "betas": (knobs["beta1"], knobs["beta2"])}


OPTIMIZERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "sgd": _sgd,
    "adam": _adam_like("adam"),
    "adamw": _adam_like("adamw"),
}

LOSSES: dict[str, Callable[[dict[str, Any]], nn.Module]] = {
    "ce": lambda knobs: nn.CrossEntropyLoss(),
    "label_smoothing": lambda knobs: LabelSmoothingCrossEntropy(smoothing=knobs["smoothing"]),
}


def scaled_lr(base_lr: float, workers: int, rule: str = "linear") -> float:
    """The LR for ``workers`` data-parallel workers, from the LR tuned for one (Goyal et al. 2017)."""
    factor = {"linear": float(workers), "sqrt": workers**0.5, "none": 1.0}[rule]
    return base_lr * factor


def create_model(name: str, num_classes: int, in_chans: int, pretrained: bool = False) -> nn.Module:
    """A timm model with its classifier sized to the data; a clear error when weights are unavailable."""
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, in_chans=in_chans)
    except (OSError, RuntimeError) as err:
        if pretrained:
            raise RuntimeError(f"pretrained weights for {name!r} could not be loaded: {err}") from err
        raise


def create_optimizer(model: nn.Module, recipe: dict[str, Any], lr: float) -> torch.optim.Optimizer:
    opt = recipe["optimizer"]
    kwargs = OPTIMIZERS[opt["name"]](opt)
    return create_optimizer_v2(model, lr=lr, weight_decay=recipe["weight_decay"], **kwargs)


def create_scheduler(optimizer: torch.optim.Optimizer, recipe: dict[str, Any], max_epochs: int, steps: int) -> Any:
    """Cosine decay to 1% of the peak over the planned epochs, per-step updates, optional warmup."""
    peak = optimizer.param_groups[0]["lr"]
    scheduler, _ = create_scheduler_v2(
        optimizer,
        sched="cosine",
        num_epochs=max_epochs,
        warmup_epochs=recipe["warmup_epochs"],
        warmup_lr=peak * 0.01,
        min_lr=peak * 0.01,
        step_on_epochs=False,
        updates_per_epoch=steps,
    )
    return scheduler


def create_loss(recipe: dict[str, Any]) -> nn.Module:
    loss = recipe["loss"]
    return LOSSES[loss["name"]](loss)


def normalization(model: nn.Module, in_chans: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean/std from the model's timm data config, averaged to one channel for grayscale input."""
    cfg = resolve_model_data_config(model)
    mean, std = tuple(cfg["mean"]), tuple(cfg["std"])
    if in_chans == 1 and len(mean) == 3:
        mean, std = (sum(mean) / 3,), (sum(std) / 3,)
    return mean, std


def create_transforms(
    recipe: dict[str, Any], image_size: int, in_chans: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]:
    """timm's train and eval transforms for images already resized to ``image_size``."""
    aug = recipe["augmentation"]
    common: dict[str, Any] = {"input_size": (in_chans, image_size, image_size), "mean": mean, "std": std}
    train = create_transform(
        is_training=True,
        scale=(aug["scale_min"], 1.0),
        hflip=0.5 if aug["hflip"] else 0.0,
        color_jitter=None,  # type: ignore[arg-type]  # None turns it off
        interpolation="bilinear",
        **common,
    )
    # crop_pct=1: images are stored at the model's size, so evaluation must not crop their borders.
    evaluate = create_transform(is_training=False, crop_pct=1.0, interpolation="bilinear", **common)
    return train, evaluate
