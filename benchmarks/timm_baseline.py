"""What a user writes without tunefleet: one timm resnet18, AdamW at 1e-3, a cosine schedule,
flip + crop, a fixed number of epochs; then its accuracy on a held-out folder.

    python benchmarks/timm_baseline.py DATA TEST [--epochs N | --time 3m] [--seed 0]

DATA and TEST are image folders (``root/<class>/*.png``). It trains on all of DATA (a user
without a search has no use for a validation split) and prints one JSON line: test accuracy,
epochs, seconds. ``--time`` instead of ``--epochs`` fixes the epoch count the way a user fits a
script to a deadline: it times the first epoch and sets the count so the rest fits the time
(the cosine schedule then spans that count).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

LR, WEIGHT_DECAY, BATCH = 1e-3, 0.05, 64


def load_folder(
    root: Path, size: int, classes: list[str] | None = None
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Every image under ``root/<class>/``, as float [N, C, size, size] in [0, 1], and its labels."""
    classes = classes or sorted(p.name for p in root.iterdir() if p.is_dir())
    arrays, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((root / name).iterdir()):
            with Image.open(path) as image:
                mode = "L" if image.mode in ("L", "1", "I", "I;16") else "RGB"
                arrays.append(np.asarray(image.convert(mode).resize((size, size), Image.Resampling.BILINEAR)))
            labels.append(label)
    x = torch.from_numpy(np.stack(arrays)).float() / 255
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
    return x.contiguous(), torch.tensor(labels), classes


def augment(x: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """Random horizontal flip and a random crop after ``pad`` px of zero padding, per image."""
    flip = torch.rand(len(x)) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    padded = F.pad(x, (pad, pad, pad, pad))
    size = x.shape[-1]
    out = torch.empty_like(x)
    for i, (dy, dx) in enumerate(torch.randint(0, 2 * pad + 1, (len(x), 2)).tolist()):
        out[i] = padded[i, :, dy : dy + size, dx : dx + size]
    return out


def train_epoch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer) -> None:
    model.train()
    for idx in torch.randperm(len(x)).split(BATCH):
        loss = F.cross_entropy(model(augment(x[idx])), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    hits = sum(int((model(x[i : i + 256]).argmax(1) == y[i : i + 256]).sum()) for i in range(0, len(x), 256))
    return hits / len(x)


def image_size(x_px: int) -> int:
    """What a user picks: the images' size to a multiple of 32, at least 32 (resnet18's stride)."""
    return max(32, 32 * round(x_px / 32))


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("test", type=Path)
    parser.add_argument("--epochs", type=int, default=0, help="a fixed count (0: size it to --time)")
    parser.add_argument("--time", type=float, default=180.0, help="seconds, with --epochs 0")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.monotonic()
    torch.manual_seed(args.seed)
    with Image.open(next(p for p in sorted(args.data.rglob("*")) if p.is_file())) as first:
        size = image_size(min(first.size))
    x, y, classes = load_folder(args.data, size)
    tx, ty, _ = load_folder(args.test, size, classes)
    model = timm.create_model("resnet18", pretrained=False, num_classes=len(classes), in_chans=x.shape[1])
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    epochs = args.epochs
    sched = None
    epoch = 0
    epoch_s = 0.0
    while epoch < (epochs or 1):
        began = time.monotonic()
        train_epoch(model, x, y, opt)
        epoch += 1
        epoch_s = time.monotonic() - began
        if not epochs:  # sized from the first epoch, as a user would after one trial run
            left = args.time - (time.monotonic() - start) - 2 * epoch_s / 3
            epochs = 1 + max(0, math.floor(left / epoch_s))
        elif not args.epochs and time.monotonic() - start + epoch_s > args.time:
            break  # the machine got slower than the first epoch said: the deadline holds
        if sched is None:
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs - 1))
        else:
            sched.step()
    result = {"test_acc": accuracy(model, tx, ty), "epochs": float(epoch), "seconds": time.monotonic() - start}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
