"""The inner loops: one training epoch, and evaluation in eval mode without autograd.

Mixed precision: bf16 autocast where the GPU supports it (no loss scaling needed), else fp16 with
a ``GradScaler``; full precision on the CPU. A NaN/inf loss ends the trial at once with the
epoch and step in the message; a CUDA out-of-memory error is re-raised as ``TrialOutOfMemory``
naming the batch size, so the failed trial says why in MLflow (or, with ``resources.oom_retry``,
the trial retries it with half the batch; see ``_tune.py``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class TrialOutOfMemory(RuntimeError):
    """The GPU ran out of memory; the message names the batch size to lower, ``accumulate`` the
    micro-batches per step in use (a retry doubles it)."""

    def __init__(self, message: str, accumulate: int = 1) -> None:
        super().__init__(message)
        self.accumulate = accumulate

    def __reduce__(self) -> tuple[Any, ...]:  # Ray pickles a trial's exception back to the driver
        return (TrialOutOfMemory, (str(self), self.accumulate))


@dataclass
class Precision:
    device_type: str
    dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None

    @staticmethod
    def create(amp: str, device: torch.device) -> Precision:
        """``amp`` is auto | bf16 | fp16 | off; anything but off means full precision on a CPU."""
        if amp not in ("auto", "bf16", "fp16", "off"):
            raise ValueError(f"amp must be auto, bf16, fp16 or off, got {amp!r}")
        if device.type != "cuda" or amp == "off":
            return Precision(device.type)
        if amp in ("auto", "bf16") and torch.cuda.is_bf16_supported():
            return Precision(device.type, torch.bfloat16)
        if amp == "bf16":
            raise ValueError("amp=bf16 was asked for but this GPU has no bf16 support; use fp16 or auto")
        return Precision(device.type, torch.float16, torch.amp.GradScaler("cuda"))

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        with torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None):
            yield

    def backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def step(self, optimizer: torch.optim.Optimizer, clip_grad: float, model: nn.Module) -> None:
        """Optional gradient-norm clipping (on unscaled gradients), then the optimizer step."""
        if self.scaler is None:
            if clip_grad > 0:
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
            optimizer.step()
            return
        if clip_grad > 0:
            self.scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any] | None:
        return self.scaler.state_dict() if self.scaler is not None else None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


@dataclass
class TrainParts:
    """Everything one training step touches."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    criterion: nn.Module
    mixup: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None
    precision: Precision
    clip_grad: float
    device: torch.device
    # Micro-batches per optimizer step: a trial retried after running out of memory loads half
    # the batch at a time and accumulates twice as many (same effective batch and LR).
    accumulate: int = 1


def _chunks(parts: TrainParts, x: torch.Tensor, y: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One batch as ``parts.accumulate`` micro-batches, each moved to the device only when its
    turn comes (mixup mixes the whole batch, before it is split)."""
    if parts.mixup is not None and len(x) % 2:  # an unreadable file left it odd; mixup pairs images
        x, y = x[:-1], y[:-1]
    if parts.mixup is not None and parts.accumulate > 1:
        x, y = parts.mixup(x, y)
    for xs, ys in zip(torch.tensor_split(x, parts.accumulate), torch.tensor_split(y, parts.accumulate), strict=True):
        xs, ys = xs.to(parts.device, non_blocking=True), ys.to(parts.device, non_blocking=True)
        if parts.device.type == "cuda":
            xs = xs.contiguous(memory_format=torch.channels_last)
        if parts.mixup is not None and parts.accumulate == 1:
            xs, ys = parts.mixup(xs, ys)
        yield xs, ys


def _step(parts: TrainParts, x: torch.Tensor, y: torch.Tensor, epoch: int, step: int) -> torch.Tensor:
    """One optimizer step over the batch; returns its mean loss. Each micro-batch's loss is
    weighted by its share of the batch, so the gradient equals the whole batch's."""
    parts.optimizer.zero_grad(set_to_none=True)
    total = torch.zeros((), dtype=torch.float64, device=parts.device)
    for xs, ys in _chunks(parts, x, y):
        try:
            with parts.precision.autocast():
                loss = parts.criterion(parts.model(xs), ys)
            parts.precision.backward(loss * (len(xs) / len(x)))
        except torch.OutOfMemoryError as err:
            raise TrialOutOfMemory(
                f"out of memory at batch size {len(xs)} per worker (epoch {epoch}, step {step + 1}); "
                "lower batch_size or data.image_size",
                accumulate=parts.accumulate,
            ) from err
        total += loss.detach().double() * len(xs)
    parts.precision.step(parts.optimizer, parts.clip_grad, parts.model)
    return total / len(x)


def train_epoch(
    parts: TrainParts, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], epoch: int, steps: int
) -> tuple[float, int]:
    """One pass over ``batches`` (one optimizer step per batch, over ``parts.accumulate``
    micro-batches); returns (mean train loss over all workers, images seen by this worker)."""
    parts.model.train()
    # On a GPU, reading the loss every step would stall the pipeline; check it every few steps.
    check_every = 16 if parts.device.type == "cuda" else 1
    total = torch.zeros((), dtype=torch.float64, device=parts.device)
    seen = 0
    for step, (x, y) in enumerate(batches):
        if len(x) == 0 or (parts.mixup is not None and len(x) < 2):  # its files were unreadable
            continue
        total += _step(parts, x, y, epoch, step) * len(x)
        seen += len(x)
        if (step + 1) % check_every == 0 or step + 1 == steps:
            value = float(total)
            if not math.isfinite(value):
                # Stop at once: a diverged trial wastes its slot and would poison the ranking.
                raise FloatingPointError(f"train loss became {value} at epoch {epoch}, step {step + 1}")
        parts.scheduler.step_update(num_updates=(epoch - 1) * steps + step + 1)
    sums = torch.tensor([float(total), float(seen)], dtype=torch.float64)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(sums)
    if not math.isfinite(float(sums[0])):
        raise FloatingPointError(f"train loss became {float(sums[0])} at epoch {epoch}")
    return float(sums[0] / max(float(sums[1]), 1.0)), seen


@torch.inference_mode()
def predict(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (float32, on the CPU) and labels of every batch, in eval mode without autograd."""
    model.eval()
    logits, labels = [], []
    for x, y in batches:
        x = x.to(device, non_blocking=True)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits.append(model(x).float().cpu())
        labels.append(y.cpu())
    if not logits:
        return torch.zeros(0), torch.zeros(0, dtype=torch.int64)
    return torch.cat(logits), torch.cat(labels)


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, prefix: str = "val") -> dict[str, float]:
    """Accuracy, cross-entropy and macro precision/recall/F1 of ``logits`` against ``labels``."""
    if len(labels) == 0:
        raise ValueError(f"the {prefix} split is empty; there is nothing to evaluate")
    pred = logits.argmax(1)
    precision, recall, f1 = macro_precision_recall_f1(pred, labels)
    return {
        f"{prefix}_acc": float((pred == labels).float().mean()),
        f"{prefix}_loss": float(F.cross_entropy(logits, labels)),
        f"{prefix}_precision": precision,
        f"{prefix}_recall": recall,
        f"{prefix}_f1": f1,
    }


def macro_precision_recall_f1(pred: torch.Tensor, labels: torch.Tensor) -> tuple[float, float, float]:
    """Macro precision, recall and F1 over the classes that occur in ``labels`` or ``pred``, a
    quotient with nothing to divide by scoring 0: scikit-learn's ``precision_recall_fscore_support(
    average="macro", zero_division=0)`` (the contract test holds them equal), without importing
    scikit-learn into every trial process (about 1.3 s of CPU at its first evaluation)."""
    classes = int(torch.maximum(pred.max(), labels.max())) + 1
    hits = torch.bincount(labels[pred == labels], minlength=classes).double()
    predicted = torch.bincount(pred, minlength=classes).double()
    actual = torch.bincount(labels, minlength=classes).double()
    occur = (predicted + actual) > 0
    hits, predicted, actual = hits[occur], predicted[occur], actual[occur]
    precision = torch.where(predicted > 0, hits / predicted.clamp(min=1), 0.0)
    recall = torch.where(actual > 0, hits / actual.clamp(min=1), 0.0)
    f1 = 2 * hits / (predicted + actual)  # F1 as counts: 2 TP / (2 TP + FP + FN), > 0 where a class occurs
    return float(precision.mean()), float(recall.mean()), float(f1.mean())
