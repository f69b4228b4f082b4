"""One trial: build everything from the recipe, train, evaluate each epoch, report, checkpoint.

``run_trial`` knows nothing of Ray: it calls ``report(metrics, checkpoint_dir)`` once per epoch.
``tune_trainable`` adapts it to Ray Tune's function API. Keeping the two apart lets tests and
benchmarks run a trial in-process.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from tunefleet.spaces import resolve

from ._checkpoint import save_checkpoint
from ._data import TransformedSplit, eval_tensors, load_data
from ._recipe import (
    create_loss,
    create_model,
    create_optimizer,
    create_scheduler,
    create_transforms,
    normalization,
    scaled_lr,
)

Report = Callable[[dict[str, float], Path | None], None]
# Metrics every epoch report carries; the driver logs exactly these to MLflow.
EPOCH_METRICS = (
    "epoch",
    "train_loss",
    "val_loss",
    "val_acc",
    "val_precision",
    "val_recall",
    "val_f1",
    "lr",
    "images_per_s",
    "epoch_time_s",
)


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of one search shares (not searched)."""

    data_kind: str = "digits"
    image_size: int = 32
    split_seed: int = 0
    max_epochs: int = 10
    metric: str = "val_acc"
    mode: str = "max"
    seed: int = 0
    workers: int = 1
    lr_rule: str = "linear"
    device: str = "cpu"
    threads: int = 1
    pretrained: bool = False
    patience: int | None = None


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor, device: torch.device, batch: int = 512) -> torch.Tensor:
    """Logits for ``x`` in eval mode, without autograd, in float32 on the CPU."""
    model.eval()
    out = []
    for i in range(0, len(x), batch):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out.append(model(x[i : i + batch].to(device)).float().cpu())
    return torch.cat(out)


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, prefix: str = "val") -> dict[str, float]:
    from sklearn.metrics import precision_recall_fscore_support

    pred = logits.argmax(1)
    precision, recall, f1, _ = precision_recall_fscore_support(labels, pred, average="macro", zero_division=0)
    return {
        f"{prefix}_acc": float((pred == labels).float().mean()),
        f"{prefix}_loss": float(F.cross_entropy(logits, labels)),
        f"{prefix}_precision": float(precision),
        f"{prefix}_recall": float(recall),
        f"{prefix}_f1": float(f1),
    }


def _train_epoch(
    model: nn.Module,
    loader: DataLoader[Any],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    criterion: nn.Module,
    device: torch.device,
    epoch: int,
) -> float:
    model.train()
    total, seen = 0.0, 0
    steps = len(loader)
    for step, (x, y) in enumerate(loader):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = criterion(model(x), y)
        value = float(loss.detach())
        if not math.isfinite(value):
            # Stop at once: a diverged trial wastes its slot and would poison the ranking.
            raise FloatingPointError(f"train loss became {value} at epoch {epoch}, step {step + 1}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step_update(num_updates=(epoch - 1) * steps + step + 1)
        total += value * len(y)
        seen += len(y)
    scheduler.step(epoch)
    return total / max(seen, 1)


def run_trial(recipe: dict[str, Any], settings: TrialSettings, report: Report) -> None:
    """Train ``recipe`` for up to ``settings.max_epochs``, reporting after every epoch.

    A checkpoint (weights, metadata, val/test logits) accompanies each report whose search
    metric improved on the best so far. The last report carries ``is_last = 1``; a trial whose
    last report lacks it was stopped from outside (by the scheduler).
    """
    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    device = torch.device(settings.device)
    data = load_data(settings.data_kind, settings.image_size, settings.split_seed)
    model = create_model(recipe["model"], data.num_classes, data.in_chans, settings.pretrained)
    mean, std = normalization(model, data.in_chans)
    train_tf, eval_tf = create_transforms(recipe, settings.image_size, data.in_chans, mean, std)
    x_val, y_val = eval_tensors(data.val, eval_tf)
    x_test, y_test = eval_tensors(data.test, eval_tf)
    if device.type == "cuda":
        model = model.to(device).to(memory_format=torch.channels_last)
    loader = DataLoader(
        TransformedSplit(data.train, train_tf),
        batch_size=recipe["batch_size"],
        shuffle=True,
        generator=torch.Generator().manual_seed(settings.seed),
        pin_memory=device.type == "cuda",
    )
    optimizer = create_optimizer(model, recipe, scaled_lr(recipe["lr"], settings.workers, settings.lr_rule))
    scheduler = create_scheduler(optimizer, recipe, settings.max_epochs, len(loader))
    criterion = create_loss(recipe)
    sign = 1.0 if settings.mode == "max" else -1.0
    best, best_epoch = -math.inf, 0
    meta_base = {
        "model": recipe["model"],
        "class_names": list(data.class_names),
        "in_chans": data.in_chans,
        "image_size": settings.image_size,
        "mean": list(mean),
        "std": list(std),
        "recipe": recipe,
        "settings": asdict(settings),
    }
    for epoch in range(1, settings.max_epochs + 1):
        start = time.perf_counter()
        train_loss = _train_epoch(model, loader, optimizer, scheduler, criterion, device, epoch)
        train_time = time.perf_counter() - start
        val_logits = predict(model, x_val, device)
        metrics = {"epoch": float(epoch), "train_loss": train_loss, **classification_metrics(val_logits, y_val)}
        metrics["lr"] = float(optimizer.param_groups[0]["lr"])
        metrics["images_per_s"] = len(data.train.labels) / train_time
        metrics["epoch_time_s"] = time.perf_counter() - start
        improved = sign * metrics[settings.metric] > best
        if improved:
            best, best_epoch = sign * metrics[settings.metric], epoch
        stop_early = settings.patience is not None and epoch - best_epoch >= settings.patience
        metrics["is_last"] = float(epoch == settings.max_epochs or stop_early)
        if not improved:
            report(metrics, None)
        else:
            test_logits = predict(model, x_test, device)
            metrics.update(classification_metrics(test_logits, y_test, prefix="test"))
            with tempfile.TemporaryDirectory(prefix="tunefleet-ckpt-") as tmp:
                save_checkpoint(
                    tmp,
                    model,
                    {**meta_base, "epoch": epoch, "metrics": metrics},
                    {"val_logits": val_logits, "val_labels": y_val, "test_logits": test_logits, "test_labels": y_test},
                )
                report(metrics, Path(tmp))
        if metrics["is_last"]:
            return


def tune_trainable(config: dict[str, Any], settings: TrialSettings) -> None:
    """Ray Tune function trainable: ``config`` holds the flat sampled values of one trial."""
    from ray import tune

    def report(metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        checkpoint = tune.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        tune.report(metrics, checkpoint=checkpoint)

    run_trial(resolve(config), settings, report)
