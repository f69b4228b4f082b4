"""The optimizer factory: a recipe's ``optimizer`` family -> timm's ``create_optimizer_v2``.

Its own module so the table of optimizers (``OPTIMIZERS``, checked against the catalog by the
tests) sits next to the one function that reads it, apart from schedules, losses and models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from timm.optim import create_optimizer_v2
from torch import nn


def _sgd(knobs: dict[str, Any]) -> dict[str, Any]:
    # timm's "sgd" is Nesterov SGD; "momentum" is the classic heavy-ball form.
    return {"opt": "sgd" if knobs["nesterov"] else "momentum", "momentum": knobs["momentum"]}


def _timm_opt(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Knobs -> ``create_optimizer_v2`` kwargs: ``beta1``/``beta2`` become ``betas``, the rest pass as named."""

    def kwargs(knobs: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in knobs.items() if k not in ("name", "beta1", "beta2")}
        if "beta1" in knobs:
            out["betas"] = (knobs["beta1"], knobs["beta2"])
        return {"opt": name, **out}

    return kwargs


OPTIMIZERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "sgd": _sgd,
    **{
        name: _timm_opt(name)
        for name in (
            "adam",
            "adamw",
            "nadamw",
            "radam",
            "adabelief",
            "lamb",
            "lion",
            "rmsprop",
            "adagrad",
            "lars",
            "madgrad",
        )
    },
}


def create_optimizer(model: nn.Module, recipe: dict[str, Any], lr: float) -> torch.optim.Optimizer:
    """timm's optimizer for the recipe at ``lr`` (already scaled for the workers).

    Frozen parameters are left out (timm skips ``requires_grad=False``). With ``layer_decay < 1``
    each parameter group carries timm's ``lr_scale``, which timm's schedulers apply.
    """
    opt = recipe["optimizer"]
    layer_decay = float(recipe["finetune"]["layer_decay"])
    return create_optimizer_v2(
        model,
        lr=lr,
        weight_decay=recipe["weight_decay"],
        layer_decay=layer_decay if layer_decay < 1.0 else None,
        **OPTIMIZERS[opt["name"]](opt),
    )
