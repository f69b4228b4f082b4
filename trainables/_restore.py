"""Continuing a trial from a reported checkpoint: which checkpoint, and what it restores.

Its own module so that ``_trial`` reads as the set-up and the epoch loop; the checkpoint format
itself is ``_checkpoint``'s.
"""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from tunefleet.spaces.records import BEST, LAST

from ._checkpoint import (
    CorruptCheckpoint,
    load_training_state,
    load_weights,
    read_meta,
    resumable_checkpoint,
    verify_checkpoint,
)
from ._loop import TrainParts


@dataclass
class Progress:
    """Where training stands; a checkpoint's training state restores it."""

    start_epoch: int = 1
    best: float = -math.inf  # the search metric's best, signed so that higher is better
    best_epoch: int = 0
    # Every epoch's metrics so far travel in each checkpoint's meta.json, so a resumed search can
    # record epochs whose reports were lost with a killed driver.
    history: list[dict[str, float]] = field(default_factory=list)


def resume_point(resume_from: Path | None) -> tuple[Path | None, dict[str, Any] | None]:
    """last/ if it verifies, else last.prev/ (one epoch back; the lost epoch is retrained exactly),
    else a fresh start: a corrupt file costs at most an epoch, never the trial."""
    source = resumable_checkpoint(resume_from) if resume_from is not None else None
    # verified; refuses anything that would run code
    return source, (load_training_state(source) if source is not None else None)


def _new_peak_lr(parts: TrainParts, peaks: list[float]) -> bool:
    """A checkpoint trained at another peak LR (Population Based Training hands a trial a
    stronger trial's checkpoint with a perturbed lr): the weights and optimizer moments go on, at
    this recipe's LR. Every schedule's LR is proportional to its peak (warmup from 1%, the cosine
    floor at ``min_lr_ratio``, step decays), so each group's current LR is scaled by the ratio of
    the peaks, and the scheduler stays the fresh one built for this recipe (timm's schedules are
    functions of the step count; a plateau schedule starts counting again)."""
    groups = parts.optimizer.param_groups
    if all(math.isclose(float(g["initial_lr"]), peak, rel_tol=1e-9) for g, peak in zip(groups, peaks, strict=True)):
        return False
    for group, peak in zip(groups, peaks, strict=True):
        group["lr"] = float(group["lr"]) * peak / float(group["initial_lr"])
        group["initial_lr"] = peak
    return True


def restore(source: Path, state: dict[str, Any], model: nn.Module, parts: TrainParts, staging: Path) -> Progress:
    """Weights, optimizer, scheduler, loss scaling and progress from ``source``; it is staged as
    last/ (so the first checkpoint written keeps it as last.prev/), with its trial's best/."""
    load_weights(source, model)
    peaks = [float(group["initial_lr"]) for group in parts.optimizer.param_groups]  # this recipe's
    parts.optimizer.load_state_dict(state["optimizer"])
    if not _new_peak_lr(parts, peaks):  # the same LR: an exact resume, schedule and all
        parts.scheduler.load_state_dict(state["scheduler"])
    parts.precision.load_state_dict(state.get("scaler"))
    parts.accumulate = max(parts.accumulate, int(state.get("accumulate", 1)))
    start = int(state["epoch"]) + 1
    history = [m for m in read_meta(source).history if m["epoch"] < start]
    shutil.copytree(source, staging / LAST)
    best_dir = source.parent / BEST
    try:
        verify_checkpoint(best_dir)
        shutil.copytree(best_dir, staging / BEST)
    except CorruptCheckpoint as err:  # only an epoch that beats the recorded best writes a new one
        if best_dir.exists():
            logging.getLogger(__name__).warning("not keeping the best checkpoint: %s", err)
    return Progress(start, float(state["best"]), int(state["best_epoch"]), history)
