"""Contract test over every built-in space: 20 seeded configs each, and every one of them trains a
step through the real factories (timm model, transforms on real digits images, MixUp, loss,
optimizer, schedule), the real data path (``DataFeed``: per-sample transforms, timm's prefetcher
normalization, noise and erasing) and the real loop (``train_epoch``: mixup, clipping, the
schedule's per-step update) on timm's tiny ``test_resnet`` at 16x16 on the CPU."""

from __future__ import annotations

import optuna
import pytest
import torch

from tunefleet.spaces import BUILTIN_SPACES, builtin_space, contains, define_by_run, resolve
from tunefleet.trainables import (
    DataFeed,
    ImageData,
    Split,
    build_model,
    create_loss,
    create_mixup,
    create_optimizer,
    create_scheduler,
    create_transforms,
    load_data,
    normalization,
)
from tunefleet.trainables._loop import Precision, TrainParts, train_epoch

CONFIGS_PER_SPACE = 20
BATCH = 8  # the recipe's batch size is for real runs; one small even batch exercises the same code


def _configs(name: str) -> list[dict]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = builtin_space(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    fn = define_by_run(space)
    points = []
    for _ in range(CONFIGS_PER_SPACE):
        trial = study.ask()
        constants = fn(trial) or {}
        points.append({**trial.params, **constants})
        study.tell(trial, 0.0)
    assert all(contains(space, p) for p in points)
    return points


def _one_batch(data: ImageData[Split]) -> ImageData[Split]:
    """The first ``BATCH`` training images as every split: one training step per epoch."""
    few = Split(data.train.images[:BATCH], data.train.labels[:BATCH])
    return ImageData(few, few, few, data.class_names)


@pytest.mark.parametrize("name", sorted(BUILTIN_SPACES))
def test_every_sampled_config_of_a_builtin_space_trains_a_step(name):
    torch.set_num_threads(1)
    data = _one_batch(load_data("digits", 16, 0))
    cpu = torch.device("cpu")
    for i, point in enumerate(_configs(name)):
        recipe = resolve(point)
        recipe["model"] = "test_resnet"
        # No downloads in tests: the pretrained path has its own test (a clear error when offline).
        recipe["finetune"]["pretrained"] = False
        torch.manual_seed(i)
        model = build_model(recipe, data.num_classes, data.in_chans)
        mean, std = normalization(model, data.in_chans)
        transforms = create_transforms(recipe, 16, data.in_chans, mean, std)
        mixup = create_mixup(recipe, data.num_classes)
        optimizer = create_optimizer(model, recipe, recipe["lr"])
        parts = TrainParts(
            model=model,
            optimizer=optimizer,
            scheduler=create_scheduler(optimizer, recipe, max_epochs=3, steps=1),
            criterion=create_loss(recipe),
            mixup=mixup,
            precision=Precision.create("off", cpu),
            clip_grad=float(recipe["regularization"]["clip_grad"]),
            device=cpu,
        )
        feed = DataFeed(data, transforms, cpu, workers=0, seed=i)
        head = model.get_classifier().weight.detach().clone()
        try:
            batches = list(feed.train(1, BATCH, drop_last=mixup is not None))
            assert [tuple(x.shape) for x, _ in batches] == [(BATCH, 1, 16, 16)], (name, point)
            loss, seen = train_epoch(parts, batches, epoch=1, steps=1)
        finally:
            feed.close()
        assert seen == BATCH and torch.isfinite(torch.tensor(loss)), (name, point)
        parts.scheduler.step(1, metric=loss)  # the epoch-end step (plateau reads the metric)
        assert not torch.equal(head, model.get_classifier().weight), (name, point)  # the head always learns
        assert all(torch.isfinite(p).all() for p in model.parameters()), (name, point)
