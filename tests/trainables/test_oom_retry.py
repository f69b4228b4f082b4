"""Scenario 7: out of memory, simulated on the CPU by an injected allocation failure, is retried
with half the batch and twice the gradient accumulation.

"Nothing lost" here: the trial still reports every epoch up to ``max_epochs`` (continuing from
its latest checkpoint, not from scratch), trains on the same effective batch, and says in each
report which per-worker batch and accumulation it used.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest
import torch
from timm.models import register_model
from torch import nn

from tunefleet.spaces import DataSpec, Resources, SearchSettings, resolve
from tunefleet.spaces.records import GRAD_ACCUM_KEY, PER_WORKER_BATCH_KEY
from tunefleet.trainables import TrialOutOfMemory, TrialSettings
from tunefleet.trainables._oom import train_with_oom_retry

FITS = 16  # images per forward pass the injected "GPU" holds
FAIL_FROM_EPOCH = {"value": 2}  # runs out of memory from this epoch on (after one checkpoint)
_epoch_seen = {"value": 0}


class SmallMemoryNet(nn.Module):
    """A real tiny CNN whose forward pass fails like the CUDA allocator when a batch is too big."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, **_: object) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_chans, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(8, num_classes)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and len(x) > FITS and _epoch_seen["value"] >= FAIL_FROM_EPOCH["value"]:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {len(x)} images")
        return self.head(self.body(x).flatten(1))

    def get_classifier(self) -> nn.Module:
        return self.head


@register_model
def oom_injected_net(pretrained: bool = False, **kwargs: object) -> SmallMemoryNet:
    return SmallMemoryNet(**kwargs)  # type: ignore[arg-type]


def _run(tmp_path: Path, oom_retry: bool) -> list[dict[str, float]]:
    settings = TrialSettings(
        data=DataSpec(image_size=16),
        search=SearchSettings(max_epochs=4),
        resources=Resources(oom_retry=oom_retry),
    )
    recipe = resolve({"model": "oom_injected_net", "lr": 0.05, "optimizer": "sgd", "batch_size": 64})
    reports: list[dict[str, float]] = []
    kept: list[Path] = []

    def report(metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        _epoch_seen["value"] = int(metrics["epoch"]) + 1  # the epoch that runs next
        reports.append(metrics)
        if checkpoint_dir is not None:  # as Tune persists a reported checkpoint
            kept.append(tmp_path / f"ckpt{len(reports)}")
            shutil.copytree(checkpoint_dir, kept[-1])

    @contextlib.contextmanager
    def latest():
        yield kept[-1] if kept else None

    _epoch_seen["value"] = 1
    train_with_oom_retry(recipe, settings, report, latest)
    return reports


def test_out_of_memory_is_retried_with_half_the_batch(tmp_path):
    reports = _run(tmp_path, oom_retry=True)
    assert [int(m["epoch"]) for m in reports] == [1, 2, 3, 4]  # epoch 2 went on from epoch 1's checkpoint
    first, *after = reports
    assert (first[PER_WORKER_BATCH_KEY], first[GRAD_ACCUM_KEY]) == (64, 1)
    for metrics in after:  # 64 -> 32 (still too big) -> 16: four micro-batches per step, 64 per step
        assert (metrics[PER_WORKER_BATCH_KEY], metrics[GRAD_ACCUM_KEY]) == (16, 4)
    assert reports[-1]["is_last"] == 1.0


def test_without_oom_retry_the_trial_fails_naming_the_batch(tmp_path):
    with pytest.raises(TrialOutOfMemory, match="out of memory at batch size 64 per worker"):
        _run(tmp_path, oom_retry=False)


@pytest.mark.parametrize("batch", [64, 50])
def test_accumulated_steps_match_one_full_batch(batch):
    """A batch split into four micro-batches (16 each; or 13, 13, 12, 12) accumulates to the
    same update as the whole batch at once."""
    from torch.utils.data import DataLoader, TensorDataset

    from tunefleet.trainables._loop import Precision, TrainParts, train_epoch

    class NoSchedule:
        def step_update(self, num_updates: int) -> None:
            pass

    data = TensorDataset(torch.randn(64, 5), torch.randint(0, 3, (64,)))
    weights = []
    for accumulate in (1, 4):
        torch.manual_seed(0)
        model = nn.Linear(5, 3)
        parts = TrainParts(
            model=model,
            optimizer=torch.optim.SGD(model.parameters(), lr=0.5),
            scheduler=NoSchedule(),
            criterion=nn.CrossEntropyLoss(),
            mixup=None,
            precision=Precision.create("off", torch.device("cpu")),
            clip_grad=0.0,
            device=torch.device("cpu"),
            accumulate=accumulate,
        )
        train_epoch(parts, DataLoader(data, batch_size=batch), epoch=1, steps=2)
        weights.append(model.weight.detach().clone())
    torch.testing.assert_close(weights[0], weights[1], rtol=1e-5, atol=1e-6)
