"""The model factory: a recipe's model name, dropout, pretrained weights and frozen stages -> a
timm model, plus what follows from the model (its normalization).

Its own module because checkpoints rebuild models too (``_checkpoint.load_model``) and should not
pull in optimizers, losses or augmentation to do it.
"""

from __future__ import annotations

from typing import Any

import timm
from timm.data import resolve_model_data_config
from timm.models import group_parameters
from torch import nn


def create_model(name: str, num_classes: int, in_chans: int, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """A timm model with its classifier sized to the data; a clear error when weights are unavailable."""
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, in_chans=in_chans, **kwargs)
    except Exception as err:
        if pretrained:
            raise RuntimeError(f"pretrained weights for {name!r} could not be loaded: {err}") from err
        raise


def freeze_stages(model: nn.Module, stages: int) -> int:
    """Freeze the first ``stages`` of timm's coarse parameter groups (stem = 1, then one per stage).

    The classifier is never frozen: at most every group but the last (the head) is. Only
    ``requires_grad`` changes; batch-norm statistics keep adapting (the module types, and so the
    checkpoint's keys, stay those of a fresh model). Returns how many groups were frozen.
    """
    if stages <= 0:
        return 0
    groups = group_parameters(model, model.group_matcher(coarse=True))  # type: ignore[operator]
    ordered = [groups[k] for k in sorted(groups)]
    head = model.get_classifier()  # type: ignore[operator]
    head_params = {id(p) for p in head.parameters()} if isinstance(head, nn.Module) else set()
    count = min(stages, len(ordered) - 1)
    frozen = {name for group in ordered[:count] for name in group}
    for name, param in model.named_parameters():
        if name in frozen and id(param) not in head_params:
            param.requires_grad_(False)
    return count


def build_model(recipe: dict[str, Any], num_classes: int, in_chans: int) -> nn.Module:
    """The recipe's model: timm name, dropout and drop-path, pretrained weights, frozen stages."""
    reg, ft = recipe["regularization"], recipe["finetune"]
    kwargs: dict[str, Any] = {}
    if reg["drop_rate"] > 0:
        kwargs["drop_rate"] = reg["drop_rate"]
    if reg["drop_path_rate"] > 0:
        kwargs["drop_path_rate"] = reg["drop_path_rate"]
    model = create_model(recipe["model"], num_classes, in_chans, pretrained=bool(ft["pretrained"]), **kwargs)
    freeze_stages(model, int(ft["freeze_stages"]))
    return model


def normalization(model: nn.Module, in_chans: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean/std from the model's timm data config, averaged to one channel for grayscale input."""
    cfg = resolve_model_data_config(model)
    mean, std = tuple(cfg["mean"]), tuple(cfg["std"])
    if in_chans == 1 and len(mean) == 3:
        mean, std = (sum(mean) / 3,), (sum(std) / 3,)
    return mean, std
