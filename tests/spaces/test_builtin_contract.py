"""Contract test over every built-in space: 20 seeded configs each, and every one of them trains a
step through the real factories (timm model, transforms on real digits images, MixUp, loss,
optimizer, schedule) on timm's tiny ``test_resnet`` at 16x16 on the CPU."""

from __future__ import annotations

import optuna
import pytest
import torch
from PIL import Image

from tunefleet.spaces import BUILTIN_SPACES, builtin_space, contains, define_by_run, resolve
from tunefleet.trainables import (
    build_model,
    create_loss,
    create_mixup,
    create_optimizer,
    create_scheduler,
    create_transforms,
    load_data,
    normalization,
)

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


@pytest.mark.parametrize("name", sorted(BUILTIN_SPACES))
def test_every_sampled_config_of_a_builtin_space_trains_a_step(name):
    torch.set_num_threads(1)
    data = load_data("digits", 16, 0)
    images = [Image.fromarray(im) for im in data.train.images[:BATCH]]
    labels = torch.as_tensor(data.train.labels[:BATCH], dtype=torch.int64)
    for i, point in enumerate(_configs(name)):
        recipe = resolve(point)
        recipe["model"] = "test_resnet"
        # No downloads in tests: the pretrained path has its own test (a clear error when offline).
        recipe["finetune"]["pretrained"] = False
        torch.manual_seed(i)
        model = build_model(recipe, data.num_classes, data.in_chans)
        mean, std = normalization(model, data.in_chans)
        transforms = create_transforms(recipe, 16, data.in_chans, mean, std)
        pixels = torch.stack([transforms.train(im) for im in images]).float()
        # What timm's PrefetchLoader does to a uint8 batch, then noise and erasing.
        x = (pixels - 255 * torch.tensor(mean).view(1, -1, 1, 1)) / (255 * torch.tensor(std).view(1, -1, 1, 1))
        x = transforms.batch_augment(torch.device("cpu"))(x)
        y = labels
        assert x.shape == (BATCH, 1, 16, 16)
        mixup = create_mixup(recipe, data.num_classes)
        if mixup is not None:
            x, y = mixup(x, y)
        optimizer = create_optimizer(model, recipe, recipe["lr"])
        scheduler = create_scheduler(optimizer, recipe, max_epochs=3, steps=2)
        criterion = create_loss(recipe)
        model.train()
        loss = criterion(model(x), y)
        assert torch.isfinite(loss), (name, point)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = recipe["regularization"]["clip_grad"]
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        head = model.get_classifier().weight.detach().clone()
        optimizer.step()
        scheduler.step_update(num_updates=1)
        scheduler.step(1, metric=float(loss.detach()))
        assert not torch.equal(head, model.get_classifier().weight), (name, point)  # the head always learns
        assert all(torch.isfinite(p).all() for p in model.parameters()), (name, point)
