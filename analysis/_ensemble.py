"""Ensembles of trained trials as one ``nn.Module``, so one ONNX graph can hold them all.

Inputs are images scaled to [0, 1] at the search's image size; each member applies its own
normalization inside the graph, so users of the exported model need no preprocessing table.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


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


class SoftmaxAverage(nn.Module):
    """Mean of the members' class probabilities (soft voting); returns probabilities."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = [torch.softmax(m(x), dim=-1) for m in self.members]
        return torch.stack(probs).mean(dim=0)


ENSEMBLES: dict[str, type[nn.Module]] = {"average": SoftmaxAverage}


@torch.inference_mode()
def batched(module: nn.Module, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """``module(x)`` in eval mode without autograd, in chunks."""
    module.eval()
    return torch.cat([module(x[i : i + batch]) for i in range(0, len(x), batch)])
