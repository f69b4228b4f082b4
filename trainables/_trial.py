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

from tunefleet.spaces.records import (
    BEST,
    EFFECTIVE_BATCH_SIZE,
    EFFECTIVE_LR,
    GRAD_ACCUM_KEY,
    HISTORY_KEY,
    IS_LAST,
    LAST,
    PER_WORKER_BATCH_KEY,
    SETUP_TIME,
    UNREADABLE,
)

from ._augment import create_transforms
from ._checkpoint import (
    CorruptCheckpoint,
    load_training_state,
    load_weights,
    read_meta,
    resumable_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)
from ._data import open_data
from ._feed import DataFeed, epoch_seed, loader_workers
from ._loop import Precision, TrainParts, classification_metrics, predict, train_epoch
from ._loss import create_loss, create_mixup
from ._model import build_model, normalization, scaled_lr
from ._optim import create_optimizer
from ._schedule import create_scheduler
from ._settings import TrialSettings

Report = Callable[[dict[str, float], Path | None], None]


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


def _patience(recipe: dict[str, Any], settings: TrialSettings) -> int | None:
    if settings.patience is not None:
        return settings.patience
    value = recipe.get("regularization", {}).get("patience", 0)
    return int(value) if value else None


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
    device = torch.device(settings.device)
    data, plan = open_data(settings.data)
    model = build_model(recipe, data.num_classes, data.in_chans)
    mean, std = normalization(model, data.in_chans)
    transforms = create_transforms(recipe, settings.data.image_size, data.in_chans, mean, std)
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    mixup = create_mixup(recipe, data.num_classes)
    batch = int(recipe["batch_size"])
    per_worker = len(data.train) // workers.world
    steps = per_worker // batch if mixup is not None else math.ceil(per_worker / batch)
    if steps < 1:
        raise ValueError(f"batch_size {batch} is larger than the {per_worker} training images per worker")
    loaders = loader_workers(settings.data, settings.resources)
    feed = DataFeed(
        data, transforms, device, workers=loaders, seed=settings.search.seed, rank=workers.rank, world=workers.world
    )
    lr = scaled_lr(float(recipe["lr"]), workers.world, settings.resources.lr_scaling)
    optimizer = create_optimizer(model, recipe, lr)
    scheduler = create_scheduler(optimizer, recipe, settings.search.max_epochs, steps)
    parts = TrainParts(
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        criterion=create_loss(recipe),
        mixup=mixup,
        precision=Precision.create(settings.amp, device),
        clip_grad=float(recipe.get("regularization", {}).get("clip_grad", 0.0) or 0.0),
        device=device,
        accumulate=accumulate,
    )
    if workers.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        parts.model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    sign = 1.0 if settings.search.mode == "max" else -1.0
    best, best_epoch, start_epoch = -math.inf, 0, 1
    # Every epoch's metrics so far travel in each checkpoint's meta.json, so a resumed search can
    # record epochs whose reports were lost with a killed driver.
    history: list[dict[str, float]] = []
    staging = Path(tempfile.mkdtemp(prefix="tunefleet-ckpt-"))
    # last/ if it verifies, else last.prev/ (one epoch back; the lost epoch is retrained exactly),
    # else a fresh start: a corrupt file costs at most an epoch, never the trial.
    source = resumable_checkpoint(resume_from) if resume_from is not None else None
    if resume_from is not None and source is not None:
        state = load_training_state(source)  # verified; refuses anything that would run code
        load_weights(source, model)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        parts.precision.load_state_dict(state.get("scaler"))
        best, best_epoch, start_epoch = state["best"], state["best_epoch"], state["epoch"] + 1
        history = [m for m in read_meta(source).get(HISTORY_KEY, []) if m["epoch"] < start_epoch]
        parts.accumulate = max(accumulate, int(state.get("accumulate", 1)))
        # Staged as last/ so the first checkpoint written keeps it as last.prev/.
        shutil.copytree(source, staging / LAST)
        best_dir = Path(resume_from) / BEST
        try:
            verify_checkpoint(best_dir)
            shutil.copytree(best_dir, staging / BEST)
        except CorruptCheckpoint as err:  # only an epoch that beats the recorded best writes a new one
            if best_dir.exists():
                logging.getLogger(__name__).warning("not keeping the best checkpoint: %s", err)
    meta_base = {
        "model": recipe["model"],
        "class_names": list(data.class_names),
        "in_chans": data.in_chans,
        "image_size": settings.data.image_size,
        "mean": list(mean),
        "std": list(std),
        "recipe": recipe,
        "settings": settings.to_dict(),
        "workers": workers.world,
        EFFECTIVE_BATCH_SIZE: batch * workers.world,
        EFFECTIVE_LR: lr,
        "data_skipped": data.skipped,
        "data_cache": plan.cache,
        "loader_workers": loaders,
    }
    patience = _patience(recipe, settings)
    times: dict[str, float] = {}
    try:
        for epoch in range(start_epoch, settings.search.max_epochs + 1):
            start = time.perf_counter()
            micro = math.ceil(batch / parts.accumulate)  # the images per forward pass, after out-of-memory retries
            unreadable = feed.unreadable
            _seed_epoch(settings.search.seed, epoch, workers.rank)
            batches = feed.train(epoch, batch, drop_last=mixup is not None)
            if epoch == start_epoch:
                batches = _first_batch_timed(batches, started, times)
            train_loss, seen = train_epoch(parts, batches, epoch, steps)
            train_time = time.perf_counter() - start
            val_logits, y_val = predict(model, feed.evaluate("val", 2 * micro), device)
            val = classification_metrics(val_logits, y_val)
            scheduler.step(epoch, metric=val["val_loss"])
            metrics = {"epoch": float(epoch), "train_loss": train_loss, **val}
            # The largest group LR: with layer-wise decay the first group is the stem's, scaled down.
            metrics["lr"] = max(float(group["lr"]) for group in optimizer.param_groups)
            metrics["images_per_s"] = seen / train_time
            metrics["epoch_time_s"] = time.perf_counter() - start
            metrics[PER_WORKER_BATCH_KEY], metrics[GRAD_ACCUM_KEY] = float(micro), float(parts.accumulate)
            metrics |= {k: times.pop(k) for k in list(times)}  # setup_s, in the first epoch this call trains
            improved = sign * metrics[settings.search.metric] > best
            if improved:
                best, best_epoch = sign * metrics[settings.search.metric], epoch
            stop_early = patience is not None and epoch - best_epoch >= patience
            last = epoch == settings.search.max_epochs or stop_early
            metrics[IS_LAST] = float(last)
            save = improved or last or epoch % settings.checkpoint_every == 0
            if improved:
                test_logits, y_test = predict(model, feed.evaluate("test", 2 * micro), device)
                metrics.update(classification_metrics(test_logits, y_test, prefix="test"))
            metrics[UNREADABLE] = float(feed.unreadable - unreadable)
            if metrics[UNREADABLE]:
                logging.getLogger(__name__).warning(
                    "epoch %d: %d unreadable image(s) skipped", epoch, int(metrics[UNREADABLE])
                )
            history.append(metrics)
            if save and workers.rank == 0:
                meta = {**meta_base, "epoch": epoch, "metrics": metrics, HISTORY_KEY: history}
                if improved:
                    logits = {"val_logits": val_logits, "val_labels": y_val}
                    logits |= {"test_logits": test_logits, "test_labels": y_test}
                    save_checkpoint(staging / BEST, model, meta, logits)
                training_state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
                training_state |= {"scaler": parts.precision.state_dict()}
                training_state |= {
                    "epoch": epoch,
                    "best": best,
                    "best_epoch": best_epoch,
                    "accumulate": parts.accumulate,
                }
                # The epoch before stays as last.prev/, to resume from should last/ turn out corrupt.
                save_checkpoint(staging / LAST, model, meta, training_state=training_state, keep_previous=True)
            report(metrics, staging if save and workers.rank == 0 else None)
            if last:
                return
    finally:
        feed.close()
        shutil.rmtree(staging, ignore_errors=True)
