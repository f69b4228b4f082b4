"""One trial: build everything from the recipe, train, evaluate each epoch, report, checkpoint.

``run_trial`` knows nothing of Ray: it calls ``report(metrics, checkpoint_dir)`` once per epoch.
``tune_trainable`` (``_tune.py``) adapts it to Ray Tune's function API (and, for multi-worker
trials, to Ray Train's ``TorchTrainer``; see ``_ddp.py``). Keeping them apart lets tests and
benchmarks run a trial in-process.

Each epoch's randomness (shuffle order, augmentation, mixup) is seeded from ``(seed, epoch,
rank)``, so a trial resumed from its ``last/`` checkpoint continues exactly as if it had not
stopped. Data comes through ``_feed.DataFeed`` on the path ``_data.plan_data`` chose (memory or
stream); the first epoch reports ``setup_s``, the seconds from the call to the first batch.
"""

from __future__ import annotations

import logging
import math
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tunefleet.spaces import CheckpointMeta, scaled_lr
from tunefleet.spaces.records import (
    BEST,
    GRAD_ACCUM_KEY,
    IS_LAST,
    LAST,
    PER_WORKER_BATCH_KEY,
    SETUP_TIME,
    UNREADABLE,
)

from ._augment import create_transforms
from ._checkpoint import save_checkpoint
from ._data import open_data
from ._feed import DataFeed, epoch_seed, loader_workers
from ._loop import TrainParts, classification_metrics, predict, train_epoch
from ._loss import create_mixup
from ._model import build_model, normalization
from ._restore import Progress, restore, resume_point
from ._settings import TrialSettings
from ._trial_parts import Workers, checkpoint_meta, patience, serving_of, steps_per_epoch, train_parts

Report = Callable[[dict[str, float], Path | None], None]


def _seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Seed the training process's RNGs for the epoch: mixup, dropout, noise and erasing draw
    from them (each sample's augmentation has a seed of its own; see ``_feed``)."""
    value = epoch_seed(seed, epoch, rank)
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


def _first_batch_timed(batches: Iterable[Any], started: float, times: dict[str, float]) -> Iterator[Any]:
    """``batches`` as they are, noting in ``times[SETUP_TIME]`` when the first one arrived."""
    for i, item in enumerate(batches):
        if i == 0:
            times[SETUP_TIME] = time.perf_counter() - started
        yield item


def run_trial(
    recipe: dict[str, Any],
    settings: TrialSettings,
    report: Report,
    resume_from: Path | None = None,
    accumulate: int = 1,
) -> None:
    """Train ``recipe`` for up to ``settings.search.max_epochs``, reporting after every epoch.

    Every report but those skipped by ``checkpoint_every`` carries a checkpoint directory with
    ``last/`` (weights + training state) and ``best/`` (best weights so far, with val/test
    logits); reports whose search metric improved also carry test metrics. The last report has
    ``is_last = 1``; a trial whose last report lacks it was stopped from outside (by the scheduler).

    Args:
        recipe: A resolved recipe (``tunefleet.spaces.resolve``).
        settings: What the whole search shares.
        report: Called once per epoch with the metrics and a checkpoint directory (or None).
        resume_from: A reported checkpoint directory (holding ``last/``) to continue from.
        accumulate: Micro-batches per optimizer step (``batch_size / accumulate`` images each),
            after running out of memory; a checkpoint that accumulated more keeps its own.
    """
    started = time.perf_counter()
    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.search.seed)
    workers = Workers.current()
    data, plan = open_data(settings.data)
    source, state = resume_point(resume_from)
    model = build_model(recipe, data.num_classes, data.in_chans)
    serving = serving_of(model, settings, data.in_chans, workers)
    mean, std = normalization(model, data.in_chans)
    transforms = create_transforms(recipe, settings.data.image_size, data.in_chans, mean, std)
    mixup = create_mixup(recipe, data.num_classes)
    batch = int(recipe["batch_size"])
    steps = steps_per_epoch(len(data.train), batch, workers.world, drop_last=mixup is not None)
    loaders = loader_workers(settings.data, settings.resources)
    device = torch.device(settings.device)
    feed = DataFeed(
        data, transforms, device, workers=loaders, seed=settings.search.seed, rank=workers.rank, world=workers.world
    )
    # The loader workers start on the first epoch's batches while the model moves to the device
    # (CUDA starts), the optimizer is built and a checkpoint loads.
    feed.prime(int(state["epoch"]) + 1 if state else 1, batch, drop_last=mixup is not None)
    staging = Path(tempfile.mkdtemp(prefix="tunefleet-ckpt-"))
    try:
        lr = scaled_lr(float(recipe["lr"]), workers.world, settings.resources.lr_scaling)
        parts = train_parts(recipe, settings, model, lr, workers, steps)
        parts.mixup, parts.accumulate = mixup, accumulate
        progress = restore(source, state, model, parts, staging) if source and state else Progress()
        used = loaders if feed.loader_needed else 0  # the ready path starts no loader worker
        meta = checkpoint_meta(recipe, settings, data, plan, (mean, std), workers.world, lr, used)
        loop = _Loop(settings, parts, model, feed, workers, batch, steps, patience(recipe, settings), started, meta)
        loop.serving = serving
        _train(loop, progress, staging, report)
    finally:
        feed.close()
        shutil.rmtree(staging, ignore_errors=True)


@dataclass
class _Loop:
    """What every epoch of one trial uses."""

    settings: TrialSettings
    parts: TrainParts
    model: nn.Module  # unwrapped (parts.model may be its DDP wrapper)
    feed: DataFeed
    workers: Workers
    batch: int
    steps: int
    patience: int | None
    started: float  # when run_trial was called: set-up time counts from here
    meta: CheckpointMeta  # what the trial's checkpoints record, before an epoch is stamped in
    serving: dict[str, float] | None = None  # the model's serving cost, in every report when measured


def _train(loop: _Loop, progress: Progress, staging: Path, report: Report) -> None:
    settings, parts = loop.settings, loop.parts
    sign = 1.0 if settings.search.mode == "max" else -1.0
    for epoch in range(progress.start_epoch, settings.search.max_epochs + 1):
        metrics, logits = _epoch(loop, epoch, first=epoch == progress.start_epoch)
        improved = sign * metrics[settings.search.metric] > progress.best
        if improved:
            progress.best, progress.best_epoch = sign * metrics[settings.search.metric], epoch
            logits |= _test(loop, metrics)
        if metrics[UNREADABLE]:
            logging.getLogger(__name__).warning("epoch %d: %d unreadable image(s) skipped", epoch, metrics[UNREADABLE])
        stop_early = loop.patience is not None and epoch - progress.best_epoch >= loop.patience
        last = epoch == settings.search.max_epochs or stop_early
        metrics[IS_LAST] = float(last)
        progress.history.append(metrics)
        save = (improved or last or epoch % settings.checkpoint_every == 0) and loop.workers.rank == 0
        if save:
            meta = loop.meta.stamped(epoch, metrics, progress.history)
            if improved:
                save_checkpoint(staging / BEST, loop.model, meta, logits)
            training_state = {"optimizer": parts.optimizer.state_dict(), "scheduler": parts.scheduler.state_dict()}
            training_state |= {"scaler": parts.precision.state_dict(), "epoch": epoch, "best": progress.best}
            training_state |= {"best_epoch": progress.best_epoch, "accumulate": parts.accumulate}
            # The epoch before stays as last.prev/, to resume from should last/ turn out corrupt.
            save_checkpoint(staging / LAST, loop.model, meta, training_state=training_state, keep_previous=True)
        report(metrics, staging if save else None)
        if last:
            return


def _epoch(loop: _Loop, epoch: int, first: bool) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """Train one epoch and validate: the epoch's metrics, and the val logits and labels."""
    parts, feed = loop.parts, loop.feed
    start = time.perf_counter()
    micro = math.ceil(loop.batch / parts.accumulate)  # the images per forward pass, after out-of-memory retries
    unreadable = feed.unreadable
    _seed_epoch(loop.settings.search.seed, epoch, loop.workers.rank)
    batches: Iterable[Any] = feed.train(epoch, loop.batch, drop_last=parts.mixup is not None)
    times: dict[str, float] = {}
    if first:
        batches = _first_batch_timed(batches, loop.started, times)
    train_loss, seen = train_epoch(parts, batches, epoch, loop.steps)
    train_time = time.perf_counter() - start
    val_logits, y_val = predict(loop.model, feed.evaluate("val", 2 * micro), parts.device)
    val = classification_metrics(val_logits, y_val)
    parts.scheduler.step(epoch, metric=val["val_loss"])
    metrics = {"epoch": float(epoch), "train_loss": train_loss, **val, **times}
    # The largest group LR: with layer-wise decay the first group is the stem's, scaled down.
    metrics["lr"] = max(float(group["lr"]) for group in parts.optimizer.param_groups)
    metrics["images_per_s"] = seen / train_time
    metrics["epoch_time_s"] = time.perf_counter() - start
    metrics[PER_WORKER_BATCH_KEY], metrics[GRAD_ACCUM_KEY] = float(micro), float(parts.accumulate)
    metrics[UNREADABLE] = float(feed.unreadable - unreadable)
    metrics |= loop.serving or {}
    return metrics, {"val_logits": val_logits, "val_labels": y_val}


def _test(loop: _Loop, metrics: dict[str, float]) -> dict[str, torch.Tensor]:
    """Test metrics into ``metrics`` (and its unreadable count); the test logits and labels."""
    unreadable = loop.feed.unreadable
    batch = 2 * math.ceil(loop.batch / loop.parts.accumulate)
    logits, labels = predict(loop.model, loop.feed.evaluate("test", batch), loop.parts.device)
    metrics.update(classification_metrics(logits, labels, prefix="test"))
    metrics[UNREADABLE] += loop.feed.unreadable - unreadable
    return {"test_logits": logits, "test_labels": labels}
