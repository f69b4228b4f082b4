"""The LR-schedule factory: a recipe's ``schedule`` family -> timm's ``create_scheduler_v2``.

Its own module because schedules carry their own rules (warmup prefix for cosine, per-epoch
stepping on a metric for plateau) that have nothing to do with how the optimizer is built.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from timm.scheduler import create_scheduler_v2

SCHEDULES = ("cosine", "step", "plateau", "constant")


def create_scheduler(optimizer: torch.optim.Optimizer, recipe: dict[str, Any], max_epochs: int, steps: int) -> Any:
    """timm's scheduler for the recipe's ``schedule``, after ``warmup_epochs`` of linear warmup
    from 1% of the peak LR; cosine decays to ``min_lr_ratio`` x peak.

    Cosine, step and constant update every optimizer step (``step_update``); plateau watches the
    validation loss (``step(epoch, metric=val_loss)``, mode ``min``) once per epoch.
    """
    sched = recipe["schedule"]
    name = sched["name"]
    # timm keeps the unscaled LR in each group (layer decay lives in ``lr_scale``): this is the peak.
    peak = float(optimizer.param_groups[0]["lr"])
    common: dict[str, Any] = {
        "num_epochs": max_epochs,
        "warmup_epochs": recipe["warmup_epochs"],
        "warmup_lr": peak * 0.01,
        "min_lr": peak * recipe["min_lr_ratio"],
    }
    if name == "plateau":
        return _plateau(optimizer, sched, common)
    extra = {"decay_rate": sched["decay_rate"], "decay_epochs": sched["decay_epochs"]} if name == "step" else {}
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; known: {', '.join(SCHEDULES)}")
    if name == "cosine":  # warm up first, then the whole cosine: peak right after warmup, floor at the end
        extra = {"warmup_prefix": True, "num_epochs": max(1, max_epochs - recipe["warmup_epochs"])}
    scheduler, _ = create_scheduler_v2(
        optimizer, sched=name, step_on_epochs=False, updates_per_epoch=max(1, steps), **{**common, **extra}
    )
    return scheduler


def _plateau(optimizer: torch.optim.Optimizer, sched: dict[str, Any], common: dict[str, Any]) -> Any:
    """Reduce-on-plateau over the validation loss, stepped once per epoch."""
    with warnings.catch_warnings():  # timm deprecates plateau (its state is not checkpointed); still works
        warnings.simplefilter("ignore", FutureWarning)
        scheduler, _ = create_scheduler_v2(
            optimizer,
            sched="plateau",
            decay_rate=sched["decay_rate"],
            patience_epochs=sched["patience_epochs"],
            plateau_mode="min",
            step_on_epochs=True,
            **common,
        )
    return scheduler
