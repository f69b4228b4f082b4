"""What one trial is assembled from: where it sits in its DDP group, its optimizer, schedule and
loss on the device, its steps per epoch, its serving cost and what its checkpoints record.

Apart from ``_trial`` (which runs the epochs) so each piece reads on its own; none of it knows Ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tunefleet.spaces import CheckpointMeta, gpu_objectives, measures_serving

from ._data import DataPlan
from ._loop import Precision, TrainParts
from ._loss import create_loss
from ._optim import create_optimizer
from ._schedule import create_scheduler
from ._serving import gpu_serving_available, serving_cost
from ._settings import TrialSettings
from ._splits import ImageData


@dataclass(frozen=True)
class Workers:
    """Where this process sits in a data-parallel group (rank 0 of 1 when alone)."""

    rank: int = 0
    world: int = 1

    @staticmethod
    def current() -> Workers:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return Workers(dist.get_rank(), dist.get_world_size())
        return Workers()


def patience(recipe: dict[str, Any], settings: TrialSettings) -> int | None:
    if settings.patience is not None:
        return settings.patience
    value = recipe.get("regularization", {}).get("patience", 0)
    return int(value) if value else None


def train_parts(
    recipe: dict[str, Any], settings: TrialSettings, model: nn.Module, lr: float, workers: Workers, steps: int
) -> TrainParts:
    """The model on its device (DDP-wrapped with several workers), optimizer, schedule, loss."""
    device = torch.device(settings.device)
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = create_optimizer(model, recipe, lr)
    parts = TrainParts(
        model=model,
        optimizer=optimizer,
        scheduler=create_scheduler(optimizer, recipe, settings.search.max_epochs, steps),
        criterion=create_loss(recipe),
        mixup=None,
        precision=Precision.create(settings.amp, device),
        clip_grad=float(recipe.get("regularization", {}).get("clip_grad", 0.0) or 0.0),
        device=device,
    )
    if workers.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        parts.model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return parts


def serving_of(model: nn.Module, settings: TrialSettings, in_chans: int, workers: Workers) -> dict[str, float] | None:
    """The model's serving cost when the search asks for it (rank 0 alone: its reports count);
    measured before the weights move, on every start, a resumed one too (it takes seconds)."""
    search = settings.search
    if workers.rank != 0 or not measures_serving(search.objectives, search.measure_serving):
        return None
    # On a GPU trial, its GPU too where onnxruntime can (an objective on it must be: it raises if not).
    device = torch.device(settings.device)
    on_gpu = device.type == "cuda" and (bool(gpu_objectives(search.objectives)) or gpu_serving_available())
    gpu = (device.index or 0) if on_gpu else None
    return serving_cost(model, in_chans, settings.data.image_size, search.serving_batch, settings.threads, gpu)


def steps_per_epoch(train_images: int, batch: int, world: int, drop_last: bool) -> int:
    per_worker = train_images // world
    steps = per_worker // batch if drop_last else math.ceil(per_worker / batch)
    if steps < 1:
        raise ValueError(f"batch_size {batch} is larger than the {per_worker} training images per worker")
    return steps


def checkpoint_meta(
    recipe: dict[str, Any],
    settings: TrialSettings,
    data: ImageData[Any],
    plan: DataPlan,
    norm: tuple[tuple[float, ...], tuple[float, ...]],
    world: int,
    lr: float,
    loaders: int,
) -> CheckpointMeta:
    """What every checkpoint of the trial records; ``_train`` stamps in each epoch's report."""
    batch = int(recipe["batch_size"])
    return CheckpointMeta(
        model=recipe["model"],
        class_names=list(data.class_names),
        in_chans=data.in_chans,
        image_size=settings.data.image_size,
        mean=list(norm[0]),
        std=list(norm[1]),
        recipe=recipe,
        settings=settings.checkpoint_settings(),
        workers=world,
        effective_batch_size=batch * world,
        effective_lr=lr,
        data_skipped=data.skipped,
        data_cache=plan.cache,
        loader_workers=loaders,
        epoch=0,
        metrics={},
    )
