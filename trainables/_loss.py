"""The loss factory and MixUp/CutMix: a recipe's ``loss`` family -> timm's classification losses.

Loss and mixing live together because they must agree: with MixUp/CutMix on, targets arrive
soft and already label-smoothed, so the loss has to take soft targets and not smooth again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from timm.data import Mixup
from timm.loss import create_classification_loss
from torch import nn


class FocalLoss(nn.Module):
    """Softmax focal loss (Lin et al. 2017): ``-alpha * sum_c t_c (1 - p_c)^gamma log p_c``.

    Takes class indices or soft ``(N, C)`` targets (MixUp/CutMix); ``gamma=0, alpha=1`` is cross-entropy.
    """

    def __init__(self, gamma: float = 2.0, alpha: float = 1.0) -> None:
        super().__init__()
        self.gamma, self.alpha = gamma, alpha

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(logits.float(), dim=-1)
        if target.ndim == 1:
            target = torch.nn.functional.one_hot(target, logits.shape[-1]).float()
        weight = (1.0 - logp.exp()).clamp(min=0.0).pow(self.gamma)
        return -(self.alpha * (target * weight * logp).sum(-1)).mean()


def _mixing(recipe: dict[str, Any]) -> bool:
    aug = recipe["augmentation"]
    return aug["mixup_alpha"] > 0 or aug["cutmix_alpha"] > 0


LOSSES: dict[str, Callable[[dict[str, Any], bool], nn.Module]] = {
    # With MixUp/CutMix on (``soft``), targets arrive soft and already smoothed by ``Mixup``.
    "ce": lambda knobs, soft: create_classification_loss("ce", soft_targets=soft),
    "label_smoothing": lambda knobs, soft: create_classification_loss(
        "ce", smoothing=knobs["smoothing"], soft_targets=soft
    ),
    "bce": lambda knobs, soft: create_classification_loss("bce", smoothing=knobs["smoothing"], soft_targets=soft),
    "focal": lambda knobs, soft: FocalLoss(gamma=knobs["gamma"], alpha=knobs["alpha"]),
}


def create_loss(recipe: dict[str, Any]) -> nn.Module:
    """The training loss: ``loss(logits, targets)`` with class indices, or soft ``(N, C)``
    targets when the recipe turns MixUp/CutMix on (see ``create_mixup``)."""
    loss = recipe["loss"]
    return LOSSES[loss["name"]](loss, _mixing(recipe))


def create_mixup(recipe: dict[str, Any], num_classes: int) -> Callable[..., Any] | None:
    """timm's ``Mixup`` (``x, y = mixup(x, y)`` on even-sized train batches), or None when both
    alphas are 0. The loss's label smoothing moves here, into the soft targets."""
    if not _mixing(recipe):
        return None
    aug, loss = recipe["augmentation"], recipe["loss"]
    return Mixup(
        mixup_alpha=aug["mixup_alpha"],
        cutmix_alpha=aug["cutmix_alpha"],
        label_smoothing=float(loss.get("smoothing", 0.0)),
        num_classes=num_classes,
    )
