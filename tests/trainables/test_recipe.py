"""Contract tests over the registries: every option the spaces declare is built and trains a step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tunefleet.spaces import FAMILIES, resolve
from tunefleet.trainables import (
    LOSSES,
    OPTIMIZERS,
    create_loss,
    create_model,
    create_optimizer,
    create_scheduler,
    create_transforms,
    load_data,
    normalization,
    scaled_lr,
    stratified_split,
)


def test_every_declared_option_has_an_implementation():
    assert set(FAMILIES["optimizer"]) == set(OPTIMIZERS)
    assert set(FAMILIES["loss"]) == set(LOSSES)


def _one_step(recipe):
    torch.manual_seed(0)
    model = create_model("test_resnet", num_classes=10, in_chans=1)
    optimizer = create_optimizer(model, recipe, recipe["lr"])
    scheduler = create_scheduler(optimizer, recipe, max_epochs=2, steps=1)
    loss_fn = create_loss(recipe)
    x, y = torch.randn(8, 1, 16, 16), torch.arange(8) % 10
    before = [p.detach().clone() for p in model.parameters()]
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    scheduler.step_update(1)
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize("name", sorted(FAMILIES["optimizer"]))
def test_each_optimizer_trains_a_step(name):
    _one_step(resolve({"optimizer": name, "lr": 0.01}))


@pytest.mark.parametrize("name", sorted(FAMILIES["loss"]))
def test_each_loss_trains_a_step(name):
    _one_step(resolve({"loss": name, "lr": 0.01}))


def test_sgd_maps_nesterov_to_timm_names():
    model = create_model("test_resnet", num_classes=10, in_chans=1)
    nesterov = create_optimizer(model, resolve({"optimizer.sgd.nesterov": True}), 0.1)
    plain = create_optimizer(model, resolve({"optimizer.sgd.nesterov": False, "optimizer.sgd.momentum": 0.8}), 0.1)
    assert nesterov.param_groups[0]["nesterov"] is True
    assert plain.param_groups[0]["nesterov"] is False and plain.param_groups[0]["momentum"] == 0.8


def test_lr_scales_with_workers():
    assert scaled_lr(0.1, 4) == pytest.approx(0.4)
    assert scaled_lr(0.1, 4, "sqrt") == pytest.approx(0.2)


def test_digits_split_is_disjoint_stratified_and_fixed():
    data = load_data("digits", 16, 0)
    sizes = [len(s.labels) for s in (data.train, data.val, data.test)]
    assert sum(sizes) == 1797 and data.num_classes == 10 and data.in_chans == 1
    train, val, test = stratified_split(np.concatenate([data.train.labels, data.val.labels, data.test.labels]), 0)
    assert not (set(train) & set(val) or set(train) & set(test) or set(val) & set(test))
    again = load_data.__wrapped__("digits", 16, 0)
    assert np.array_equal(again.test.images, data.test.images)
    # every class appears in every split
    for split in (data.train, data.val, data.test):
        assert set(split.labels.tolist()) == set(range(10))


def test_transforms_follow_the_augmentation_knobs():
    model = create_model("test_resnet", num_classes=10, in_chans=1)
    mean, std = normalization(model, 1)
    assert len(mean) == 1 and len(std) == 1
    train_tf, eval_tf = create_transforms(resolve({"augmentation.hflip": True}), 16, 1, mean, std)
    names = [type(t).__name__ for t in train_tf.transforms]
    assert "RandomHorizontalFlip" in names and "ColorJitter" not in names
    from PIL import Image

    img = Image.fromarray(load_data("digits", 16, 0).val.images[0])
    out = eval_tf(img)
    assert out.shape == (1, 16, 16)
    # eval is deterministic and does not crop: the same image gives the same tensor
    assert torch.equal(out, eval_tf(img))
