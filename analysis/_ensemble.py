"""Ensembles of trained trials as one ``nn.Module``, so one ONNX graph can hold them all.

Inputs are images scaled to [0, 1] at the search's image size; each member applies its own
normalization inside the graph, so users of the exported model need no preprocessing table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from tunefleet.spaces import SpecError

from ._combine import Combination


class Normalized(nn.Module):
    """A classifier with its input normalization folded in; returns logits."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.model = model
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


class WeightedAverage(nn.Module):
    """Weighted mean of the members' class probabilities; returns probabilities."""

    def __init__(self, members: Sequence[nn.Module], weights: Sequence[float] | np.ndarray) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        w = torch.as_tensor(np.asarray(weights, dtype=np.float32))
        if w.shape != (len(members),) or bool((w < 0).any()) or abs(float(w.sum()) - 1.0) > 1e-4:
            raise ValueError(f"need {len(members)} nonnegative weights summing to 1, got {w.tolist()}")
        self.members = nn.ModuleList(members)
        self.weights: torch.Tensor
        # A buffer, not a parameter: the weights are fixed by the fit and must travel with state_dict and ONNX.
        self.register_buffer("weights", w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([torch.softmax(m(x), dim=-1) for m in self.members])
        return (self.weights.view(-1, 1, 1) * probs).sum(dim=0)


class SoftmaxAverage(WeightedAverage):
    """Mean of the members' class probabilities (soft voting); returns probabilities."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__(members, [1.0 / len(members)] * len(members) if members else [])


class Stacked(nn.Module):
    """A linear layer on the members' concatenated logits, then softmax; returns probabilities.

    Concatenation is member-major (member 0's C logits, then member 1's, ...), the layout
    ``Combination.stack_weight`` was fit on.
    """

    def __init__(self, members: Sequence[nn.Module], weight: np.ndarray, bias: np.ndarray) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        classes = len(bias)
        if weight.shape != (classes, len(members) * classes):
            raise ValueError(f"stack weight must be ({classes}, {len(members) * classes}), got {weight.shape}")
        self.members = nn.ModuleList(members)
        self.head = nn.Linear(len(members) * classes, classes)
        with torch.no_grad():
            self.head.weight.copy_(torch.as_tensor(np.asarray(weight, dtype=np.float32)))
            self.head.bias.copy_(torch.as_tensor(np.asarray(bias, dtype=np.float32)))
        self.head.requires_grad_(False)  # fitted on validation logits; training it further would leak

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(torch.cat([m(x) for m in self.members], dim=-1)), dim=-1)


def _weighted(combination: Combination, members: list[nn.Module]) -> nn.Module:
    if combination.weights is None:
        raise ValueError(f"a {combination.method} combination has no weights")
    return WeightedAverage(members, combination.weights)


def _stacked(combination: Combination, members: list[nn.Module]) -> nn.Module:
    if combination.stack_weight is None or combination.stack_bias is None:
        raise ValueError("a stacking combination has no stack_weight/stack_bias")
    return Stacked(members, combination.stack_weight, combination.stack_bias)


# Combination.method -> builder of the module that computes Combination.predict_proba from images.
ENSEMBLES: dict[str, Callable[[Combination, list[nn.Module]], nn.Module]] = {
    "mean": _weighted,
    "weighted": _weighted,
    "caruana": _weighted,
    "stacking": _stacked,
}


def ensemble_module(combination: Combination, pool: Sequence[nn.Module]) -> nn.Module:
    """The ``nn.Module`` (images -> class probabilities) of ``combination`` over the models of ``pool``.

    ``pool`` is the whole candidate pool in the order the combination was fit on; only the members it
    uses are kept in the module.
    """
    if combination.method not in ENSEMBLES:
        raise SpecError("method", f"no ensemble module for {combination.method!r}; one of: {', '.join(ENSEMBLES)}")
    if max(combination.members) >= len(pool):
        raise SpecError("pool", f"the combination uses member {max(combination.members)}, the pool has {len(pool)}")
    return ENSEMBLES[combination.method](combination, [pool[i] for i in combination.members])


@torch.inference_mode()
def batched(module: nn.Module, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """``module(x)`` in eval mode without autograd, in chunks."""
    module.eval()
    return torch.cat([module(x[i : i + batch]) for i in range(0, len(x), batch)])
