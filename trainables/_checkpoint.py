"""Checkpoints as plain files: safetensors weights, JSON metadata, and the logits ensembling needs.

Layout of a checkpoint directory::

    model.safetensors   the state dict
    meta.json           model name, classes, input shape, normalization, recipe, epoch, metrics
    logits.safetensors  val/test logits and labels of these weights (for ensembles and checks)
    training_state.pt   optimizer and LR-schedule state, epoch, best so far (to resume training)

A trial reports a directory holding two of these: ``best/`` (the weights with the best search
metric, with logits) and ``last/`` (the latest epoch, with training state).

Each file is written to a temporary name and renamed into place, so a crash never leaves a
half-written file under the final name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from tunefleet.spaces.records import LOGITS, META, TRAINING_STATE, WEIGHTS

from ._model import create_model


def _atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def save_checkpoint(
    directory: str | Path, model: nn.Module, meta: dict[str, Any], logits: dict[str, torch.Tensor] | None = None
) -> Path:
    """Write a checkpoint into ``directory`` (created if missing) and return it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    _atomic(directory / WEIGHTS, lambda p: save_file(state, str(p)))
    if logits:
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in logits.items()}
        _atomic(directory / LOGITS, lambda p: save_file(tensors, str(p)))
    _atomic(directory / META, lambda p: p.write_text(json.dumps(meta, indent=2, sort_keys=True)))
    return directory


def read_meta(directory: str | Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((Path(directory) / META).read_text())
    return meta


def load_weights(directory: str | Path, model: nn.Module) -> nn.Module:
    """Load a checkpoint's weights into ``model`` (strict: every key must match)."""
    model.load_state_dict(load_file(str(Path(directory) / WEIGHTS)), strict=True)
    return model


def load_logits(directory: str | Path) -> dict[str, torch.Tensor]:
    return load_file(str(Path(directory) / LOGITS))


def load_model(directory: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the timm model a checkpoint describes, load its weights, return it in eval mode."""
    meta = read_meta(directory)
    model = create_model(meta["model"], num_classes=len(meta["class_names"]), in_chans=meta["in_chans"])
    load_weights(directory, model)
    return model.eval(), meta


def save_training_state(directory: str | Path, state: dict[str, Any]) -> None:
    """Optimizer/scheduler state dicts and loop counters, beside a checkpoint's weights."""
    _atomic(Path(directory) / TRAINING_STATE, lambda p: torch.save(state, p))


def load_training_state(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / TRAINING_STATE
    if not path.is_file():
        raise FileNotFoundError(f"{directory} holds no training state ({TRAINING_STATE}); it cannot be resumed")
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    return state
