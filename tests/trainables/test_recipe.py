"""Contract tests over the registries: every option the spaces declare is built by timm and trains a step."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from PIL import Image
from timm.optim import get_optimizer_info

from tunefleet.spaces import FAMILIES, resolve
from tunefleet.trainables import (
    LOSSES,
    OPTIMIZERS,
    SCHEDULES,
    FocalLoss,
    build_model,
    create_loss,
    create_mixup,
    create_model,
    create_optimizer,
    create_scheduler,
    create_transforms,
    freeze_stages,
    load_data,
    normalization,
    scaled_lr,
    stratified_split,
)


def test_every_declared_option_has_an_implementation():
    assert set(FAMILIES["optimizer"]) == set(OPTIMIZERS)
    assert set(FAMILIES["loss"]) == set(LOSSES)
    assert set(FAMILIES["schedule"]) == set(SCHEDULES)


@pytest.mark.parametrize("name", sorted(FAMILIES["optimizer"]))
def test_optimizer_knobs_are_ones_timm_takes(name):
    """Every knob the catalog offers reaches a keyword of timm's optimizer class (nothing is dropped)."""
    kwargs = OPTIMIZERS[name](resolve({"optimizer": name})["optimizer"])
    info = get_optimizer_info(kwargs.pop("opt"))
    accepted = set(inspect.signature(info.opt_class).parameters)
    assert set(kwargs) <= accepted, (name, set(kwargs) - accepted)
    assert ("betas" in kwargs) <= info.has_betas and ("eps" in kwargs) <= info.has_eps
    assert ("momentum" in kwargs) <= info.has_momentum


def _one_step(recipe, model_name="test_resnet", mixup_ok=True):
    torch.manual_seed(0)
    model = build_model({**recipe, "model": model_name}, num_classes=10, in_chans=1)
    optimizer = create_optimizer(model, recipe, recipe["lr"])
    scheduler = create_scheduler(optimizer, recipe, max_epochs=2, steps=1)
    loss_fn = create_loss(recipe)
    mixup = create_mixup(recipe, 10)
    x, y = torch.randn(8, 1, 16, 16), torch.arange(8) % 10
    if mixup is not None:
        x, y = mixup(x, y)
        assert y.shape == (8, 10)
    before = [p.detach().clone() for p in model.parameters()]
    model.train()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    scheduler.step_update(num_updates=1)
    scheduler.step(1, metric=float(loss.detach()))
    assert torch.isfinite(loss)
    assert all(np.isfinite(g["lr"]) and g["lr"] >= 0 for g in optimizer.param_groups)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    return model, optimizer


@pytest.mark.parametrize("name", sorted(FAMILIES["optimizer"]))
def test_each_optimizer_trains_a_step(name):
    _one_step(resolve({"optimizer": name, "lr": 0.01}))


@pytest.mark.parametrize("name", sorted(FAMILIES["loss"]))
@pytest.mark.parametrize("mixing", [False, True])
def test_each_loss_trains_a_step_with_and_without_mixup(name, mixing):
    values = {"loss": name, "lr": 0.01}
    if mixing:
        values |= {"augmentation.mixup_alpha": 0.4, "augmentation.cutmix_alpha": 1.0}
    _one_step(resolve(values))


@pytest.mark.parametrize("name", sorted(FAMILIES["schedule"]))
def test_each_schedule_trains_a_step(name):
    _one_step(resolve({"schedule": name, "lr": 0.01, "warmup_epochs": 1}))


def test_step_schedule_decays_by_its_rate_per_step_update():
    model = create_model("test_resnet", 10, 1)
    recipe = resolve({"schedule": "step", "schedule.step.decay_rate": 0.5, "schedule.step.decay_epochs": 1})
    optimizer = create_optimizer(model, recipe, 0.1)
    scheduler = create_scheduler(optimizer, recipe, max_epochs=4, steps=10)
    scheduler.step_update(num_updates=25)  # two and a half epochs in: two decays
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.25)


def test_plateau_watches_a_loss_and_decays_when_it_stalls():
    model = create_model("test_resnet", 10, 1)
    values = {"schedule": "plateau", "schedule.plateau.patience_epochs": 0, "schedule.plateau.decay_rate": 0.5}
    recipe = resolve(values)
    optimizer = create_optimizer(model, recipe, 0.1)
    scheduler = create_scheduler(optimizer, recipe, max_epochs=5, steps=3)
    scheduler.step(1, metric=1.0)
    scheduler.step(2, metric=0.5)  # improving loss: no decay (mode "min")
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)
    scheduler.step(3, metric=0.9)  # worse: decay at once (patience 0)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)


def test_cosine_warms_up_then_decays_to_the_floor():
    model = create_model("test_resnet", 10, 1)
    recipe = resolve({"warmup_epochs": 1, "min_lr_ratio": 0.1})
    optimizer = create_optimizer(model, recipe, 1.0)
    scheduler = create_scheduler(optimizer, recipe, max_epochs=3, steps=10)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    scheduler.step_update(num_updates=10)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1.0, rel=0.02)
    scheduler.step_update(num_updates=30)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1, rel=0.02)


def test_sgd_maps_nesterov_to_timm_names():
    model = create_model("test_resnet", num_classes=10, in_chans=1)
    nesterov = create_optimizer(model, resolve({"optimizer.sgd.nesterov": True}), 0.1)
    plain = create_optimizer(model, resolve({"optimizer.sgd.nesterov": False, "optimizer.sgd.momentum": 0.8}), 0.1)
    assert nesterov.param_groups[0]["nesterov"] is True
    assert plain.param_groups[0]["nesterov"] is False and plain.param_groups[0]["momentum"] == 0.8


def test_optimizer_knobs_reach_the_optimizer():
    model = create_model("test_resnet", num_classes=10, in_chans=1)
    values = {"optimizer": "adamw", "optimizer.adamw.beta1": 0.8, "optimizer.adamw.beta2": 0.95}
    adamw = create_optimizer(model, resolve(values | {"optimizer.adamw.eps": 1e-6}), 0.1)
    assert adamw.param_groups[0]["betas"] == (0.8, 0.95) and adamw.param_groups[0]["eps"] == 1e-6
    values = {"optimizer": "rmsprop", "optimizer.rmsprop.alpha": 0.95, "optimizer.rmsprop.momentum": 0.5}
    rms = create_optimizer(model, resolve(values), 0.1)
    assert rms.param_groups[0]["alpha"] == 0.95 and rms.param_groups[0]["momentum"] == 0.5


def test_lr_scales_with_workers():
    assert scaled_lr(0.1, 4) == pytest.approx(0.4)
    assert scaled_lr(0.1, 4, "sqrt") == pytest.approx(0.2)
    assert scaled_lr(0.1, 4, "none") == pytest.approx(0.1)


def test_focal_loss_is_cross_entropy_at_gamma_zero_and_discounts_easy_examples():
    logits, y = torch.randn(16, 5), torch.arange(16) % 5
    ce = torch.nn.functional.cross_entropy(logits, y)
    assert FocalLoss(gamma=0.0, alpha=1.0)(logits, y) == pytest.approx(float(ce), rel=1e-5)
    assert FocalLoss(gamma=2.0)(logits, y) < ce
    soft = torch.nn.functional.one_hot(y, 5).float()
    assert FocalLoss(gamma=2.0)(logits, soft) == pytest.approx(float(FocalLoss(gamma=2.0)(logits, y)))


def test_mixup_carries_the_smoothing_and_the_loss_takes_soft_targets():
    recipe = resolve(
        {"loss": "label_smoothing", "loss.label_smoothing.smoothing": 0.2, "augmentation.mixup_alpha": 0.3}
    )
    mixup = create_mixup(recipe, 10)
    assert mixup is not None and mixup.label_smoothing == 0.2 and mixup.mixup_alpha == 0.3
    assert type(create_loss(recipe)).__name__ == "SoftTargetCrossEntropy"
    assert create_mixup(resolve({}), 10) is None
    assert type(create_loss(resolve({"loss": "label_smoothing"}))).__name__ == "LabelSmoothingCrossEntropy"


def test_build_model_applies_dropout_drop_path_and_freezes_stages_never_the_head():
    recipe = resolve(
        {
            "regularization.drop_rate": 0.3,
            "regularization.drop_path_rate": 0.1,
            "finetune.freeze_stages": 2,
        }
    )
    model = build_model({**recipe, "model": "test_resnet"}, 10, 1)
    assert model.drop_rate == 0.3
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(("conv1", "bn1", "layer1.")) for n in frozen)
    assert not any(n.startswith("layer2.") for n in frozen)
    optimizer = create_optimizer(model, recipe, 0.1)
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert all(id(p) not in in_optimizer for p in model.parameters() if not p.requires_grad)
    # asking for more stages than the model has freezes everything but the classifier
    vit = create_model("test_vit", 10, 1, img_size=16)
    assert freeze_stages(vit, 99) == 7
    assert {n for n, p in vit.named_parameters() if p.requires_grad} == {"head.weight", "head.bias"}


def test_layer_decay_scales_earlier_groups_down():
    recipe = resolve({"optimizer": "adamw", "finetune.layer_decay": 0.5})
    model = create_model("test_resnet", 10, 1)
    optimizer = create_optimizer(model, recipe, 0.1)
    scales = sorted({g["lr_scale"] for g in optimizer.param_groups})
    assert scales[-1] == 1.0 and scales[0] < 0.1
    scheduler = create_scheduler(optimizer, resolve({"schedule": "constant"}), max_epochs=2, steps=1)
    scheduler.step_update(num_updates=1)
    assert sorted({round(g["lr"], 9) for g in optimizer.param_groups}) == pytest.approx([0.1 * s for s in scales])


def test_pretrained_weights_that_cannot_be_had_raise_a_clear_error(monkeypatch):
    import timm.models._builder as builder

    def offline(*args, **kwargs):
        raise OSError("offline: no route to the weights")

    monkeypatch.setattr(builder, "load_pretrained", offline)
    monkeypatch.setattr(builder, "load_state_dict_from_hf", offline, raising=False)
    recipe = resolve({"finetune.pretrained": True})
    with pytest.raises(RuntimeError, match="pretrained weights for 'test_resnet' could not be loaded"):
        build_model({**recipe, "model": "test_resnet"}, 10, 1)


def test_digits_split_is_disjoint_stratified_and_fixed():
    data = load_data("digits", 16, 0)
    sizes = [len(s.labels) for s in (data.train, data.val, data.test)]
    assert sum(sizes) == 1797 and data.num_classes == 10 and data.in_chans == 1
    train, val, test = stratified_split(np.concatenate([data.train.labels, data.val.labels, data.test.labels]), 0)
    assert not (set(train) & set(val) or set(train) & set(test) or set(val) & set(test))
    for split in (data.train, data.val, data.test):
        assert set(split.labels.tolist()) == set(range(10))


HEAVY = {
    "auto_augment": "rand",
    "auto_augment.rand.magnitude": 10,
    "augmentation.hflip": True,
    "augmentation.vflip": True,
    "augmentation.rotation": 30.0,
    "augmentation.scale_min": 0.5,
    "augmentation.translate": 0.2,
    "augmentation.brightness": 0.4,
    "augmentation.contrast": 0.4,
    "augmentation.saturation": 0.4,
    "augmentation.noise_std": 0.1,
    "augmentation.re_prob": 0.5,
}


def _image(in_chans: int) -> Image.Image:
    rng = np.random.default_rng(0)
    if in_chans == 1:
        return Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8), "L")
    return Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), "RGB")


@pytest.mark.parametrize("in_chans", [1, 3])
@pytest.mark.parametrize("policy", ["rand", "trivial", "none"])
def test_heavy_augmentation_runs_on_grayscale_and_colour(in_chans, policy):
    values = {**HEAVY, "auto_augment": policy}
    values = {k: v for k, v in values.items() if not k.startswith("auto_augment.") or policy == "rand"}
    mean, std = (0.5,) * in_chans, (0.25,) * in_chans
    transforms = create_transforms(resolve(values), 16, in_chans, mean, std)
    names = [type(t).__name__ for t in transforms.train.transforms]
    expected = ["RandomRotation", "RandomResizedCropAndInterpolation", "RandomHorizontalFlip", "RandomVerticalFlip"]
    assert names[:5] == [*expected, "RandomAffine"]
    assert ("RandAugment" in names) == (policy != "none")
    # Per sample: PIL ops, then uint8 (timm's prefetcher form); noise and erasing come per batch.
    assert names[-1] == "MaybePILToTensor" and "ColorJitter" in names
    jitter = next(t for t in transforms.train.transforms if type(t).__name__ == "ColorJitter")
    assert (jitter.saturation is None) == (in_chans == 1)  # saturation means nothing for gray images
    torch.manual_seed(0)
    img = _image(in_chans)
    outs = [transforms.train(img) for _ in range(60)]  # many draws: every op and magnitude gets a turn
    assert all(o.shape == (in_chans, 16, 16) and o.dtype == torch.uint8 for o in outs)
    assert not torch.equal(outs[0], outs[1])
    augment = transforms.batch_augment(torch.device("cpu"))
    assert augment.noise is not None and augment.erasing is not None
    batch = torch.zeros(60, in_chans, 16, 16)
    erased = augment(batch.clone())
    # Every image gets noise; erased patches are N(0, 1) pixel noise, far wider than noise_std=0.1.
    assert (erased != 0).float().mean() > 0.99
    assert (erased.flatten(1).std(1) > 0.3).any() and (erased.flatten(1).std(1) < 0.15).any()
    assert torch.equal(transforms.evaluate(img), transforms.evaluate(img))


def test_a_shift_moves_the_image_within_its_bound_and_fills_the_edge_with_the_mean():
    mean = (0.5,)
    shifted = create_transforms(resolve({"augmentation.translate": 0.25}), 16, 1, mean, (0.25,))
    dot = np.zeros((16, 16), dtype=np.uint8)
    dot[8, 8] = 255  # one bright pixel: where it lands is the shift
    torch.manual_seed(0)
    places = set()
    for _ in range(200):
        out = shifted.train(Image.fromarray(dot))[0]
        (row,), (col,) = np.nonzero(out.numpy() > 200)
        dy, dx = int(row) - 8, int(col) - 8
        places.add((dy, dx))
        uncovered = out[:dy] if dy > 0 else out[16 + dy :] if dy < 0 else out[:, :dx] if dx > 0 else out[:, 16 + dx :]
        assert dy == dx == 0 or bool((uncovered == 128).all())  # the edge it uncovers is the mean colour
    assert max(max(abs(dy), abs(dx)) for dy, dx in places) <= 4  # a quarter of 16 px at most
    assert len({dy for dy, _ in places}) > 4 and len({dx for _, dx in places}) > 4  # both axes move


def test_transforms_follow_the_augmentation_knobs():
    model = create_model("test_resnet", num_classes=10, in_chans=1)
    mean, std = normalization(model, 1)
    assert len(mean) == 1 and len(std) == 1
    transforms = create_transforms(resolve({"augmentation.hflip": True}), 16, 1, mean, std)
    names = [type(t).__name__ for t in transforms.train.transforms]
    assert "RandomHorizontalFlip" in names and "ColorJitter" not in names and "RandomRotation" not in names
    assert "RandAugment" not in names and not transforms.batch_augment(torch.device("cpu")).active
    assert "RandomAffine" not in names  # no shift unless asked
    img = Image.fromarray(load_data("digits", 16, 0).val.images[0])
    out = transforms.evaluate(img)
    assert out.shape == (1, 16, 16)
    assert torch.equal(out, transforms.evaluate(img)) and torch.equal(out[0], torch.from_numpy(np.asarray(img)))
