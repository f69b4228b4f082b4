"""From a resolved recipe (see ``tunefleet.spaces.resolve``) to the parts of a training run.

One factory per concern, each a thin layer over timm's own factory: the model over
``timm.create_model`` (dropout, drop-path, pretrained weights, stages frozen along timm's
``group_matcher``), the optimizer over ``create_optimizer_v2`` (with layer-wise LR decay), the
schedule over ``create_scheduler_v2``, losses over ``create_classification_loss``, MixUp/CutMix
over ``timm.data.Mixup`` and augmentation over ``create_transform`` and timm's RandAugment.
Every option in ``tunefleet.spaces.FAMILIES`` has an entry here; the tests check that.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import timm
import torch
from timm.data import Mixup, create_transform, resolve_model_data_config
from timm.data.auto_augment import rand_augment_choices, rand_augment_transform
from timm.loss import create_classification_loss
from timm.models import group_parameters
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from torch import nn
from torchvision import transforms as T

# ---------------------------------------------------------------- optimizers


def _sgd(knobs: dict[str, Any]) -> dict[str, Any]:
    # timm's "sgd" is Nesterov SGD; "momentum" is the classic heavy-ball form.
    return {"opt": "sgd" if knobs["nesterov"] else "momentum", "momentum": knobs["momentum"]}


def _timm_opt(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Knobs -> ``create_optimizer_v2`` kwargs: ``beta1``/``beta2`` become ``betas``, the rest pass as named."""

    def kwargs(knobs: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in knobs.items() if k not in ("name", "beta1", "beta2")}
        if "beta1" in knobs:
            out["betas"] = (knobs["beta1"], knobs["beta2"])
        return {"opt": name, **out}

    return kwargs


OPTIMIZERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "sgd": _sgd,
    **{
        name: _timm_opt(name)
        for name in (
            "adam",
            "adamw",
            "nadamw",
            "radam",
            "adabelief",
            "lamb",
            "lion",
            "rmsprop",
            "adagrad",
            "lars",
            "madgrad",
        )
    },
}


def create_optimizer(model: nn.Module, recipe: dict[str, Any], lr: float) -> torch.optim.Optimizer:
    """timm's optimizer for the recipe at ``lr`` (already scaled for the workers).

    Frozen parameters are left out (timm skips ``requires_grad=False``). With ``layer_decay < 1``
    each parameter group carries timm's ``lr_scale``, which timm's schedulers apply.
    """
    opt = recipe["optimizer"]
    layer_decay = float(recipe["finetune"]["layer_decay"])
    return create_optimizer_v2(
        model,
        lr=lr,
        weight_decay=recipe["weight_decay"],
        layer_decay=layer_decay if layer_decay < 1.0 else None,
        **OPTIMIZERS[opt["name"]](opt),
    )


# ---------------------------------------------------------------- schedules

SCHEDULES = ("cosine", "step", "plateau", "constant")


def create_scheduler(optimizer: torch.optim.Optimizer, recipe: dict[str, Any], max_epochs: int, steps: int) -> Any:
    """timm's scheduler for the recipe's ``schedule``, after ``warmup_epochs`` of linear warmup
    from 1% of the peak LR; cosine decays to ``min_lr_ratio`` x peak.

    Cosine, step and constant update every optimizer step (``step_update``); plateau watches the
    validation loss (``step(epoch, metric=val_loss)``, mode ``min``) once per epoch.
    """
    sched = recipe["schedule"]
    name = sched["name"]
    # timm keeps the unscaled LR in each group (layer decay lives in ``lr_scale``): this is the peak.
    peak = float(optimizer.param_groups[0]["lr"])
    common: dict[str, Any] = {
        "num_epochs": max_epochs,
        "warmup_epochs": recipe["warmup_epochs"],
        "warmup_lr": peak * 0.01,
        "min_lr": peak * recipe["min_lr_ratio"],
    }
    if name == "plateau":
        with warnings.catch_warnings():  # timm deprecates plateau (its state is not checkpointed); still works
            warnings.simplefilter("ignore", FutureWarning)
            scheduler, _ = create_scheduler_v2(
                optimizer,
                sched="plateau",
                decay_rate=sched["decay_rate"],
                patience_epochs=sched["patience_epochs"],
                plateau_mode="min",
                step_on_epochs=True,
                **common,
            )
        return scheduler
    extra = {"decay_rate": sched["decay_rate"], "decay_epochs": sched["decay_epochs"]} if name == "step" else {}
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; known: {', '.join(SCHEDULES)}")
    if name == "cosine":  # warm up first, then the whole cosine: peak right after warmup, floor at the end
        extra = {"warmup_prefix": True, "num_epochs": max(1, max_epochs - recipe["warmup_epochs"])}
    scheduler, _ = create_scheduler_v2(
        optimizer, sched=name, step_on_epochs=False, updates_per_epoch=max(1, steps), **{**common, **extra}
    )
    return scheduler


# ---------------------------------------------------------------- losses


class FocalLoss(nn.Module):
    """Softmax focal loss (Lin et al. 2017): ``-alpha * sum_c t_c (1 - p_c)^gamma log p_c``.

    Takes class indices or soft ``(N, C)`` targets (MixUp/CutMix); ``gamma=0, alpha=1`` is cross-entropy.
    """

    def __init__(self, gamma: float = 2.0, alpha: float = 1.0) -> None:
        super().__init__()
        self.gamma, self.alpha = gamma, alpha

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(logits.float(), dim=-1)
        if target.ndim == 1:
            target = torch.nn.functional.one_hot(target, logits.shape[-1]).float()
        weight = (1.0 - logp.exp()).clamp(min=0.0).pow(self.gamma)
        return -(self.alpha * (target * weight * logp).sum(-1)).mean()


def _mixing(recipe: dict[str, Any]) -> bool:
    aug = recipe["augmentation"]
    return aug["mixup_alpha"] > 0 or aug["cutmix_alpha"] > 0


LOSSES: dict[str, Callable[[dict[str, Any], bool], nn.Module]] = {
    # With MixUp/CutMix on (``soft``), targets arrive soft and already smoothed by ``Mixup``.
    "ce": lambda knobs, soft: create_classification_loss("ce", soft_targets=soft),
    "label_smoothing": lambda knobs, soft: create_classification_loss(
        "ce", smoothing=knobs["smoothing"], soft_targets=soft
    ),
    "bce": lambda knobs, soft: create_classification_loss("bce", smoothing=knobs["smoothing"], soft_targets=soft),
    "focal": lambda knobs, soft: FocalLoss(gamma=knobs["gamma"], alpha=knobs["alpha"]),
}


def create_loss(recipe: dict[str, Any]) -> nn.Module:
    """The training loss: ``loss(logits, targets)`` with class indices, or soft ``(N, C)``
    targets when the recipe turns MixUp/CutMix on (see ``create_mixup``)."""
    loss = recipe["loss"]
    return LOSSES[loss["name"]](loss, _mixing(recipe))


def create_mixup(recipe: dict[str, Any], num_classes: int) -> Callable[..., Any] | None:
    """timm's ``Mixup`` (``x, y = mixup(x, y)`` on even-sized train batches), or None when both
    alphas are 0. The loss's label smoothing moves here, into the soft targets."""
    if not _mixing(recipe):
        return None
    aug, loss = recipe["augmentation"], recipe["loss"]
    return Mixup(
        mixup_alpha=aug["mixup_alpha"],
        cutmix_alpha=aug["cutmix_alpha"],
        label_smoothing=float(loss.get("smoothing", 0.0)),
        num_classes=num_classes,
    )


# ---------------------------------------------------------------- model


def scaled_lr(base_lr: float, workers: int, rule: str = "linear") -> float:
    """The LR for ``workers`` data-parallel workers, from the LR tuned for one (Goyal et al. 2017)."""
    factor = {"linear": float(workers), "sqrt": workers**0.5, "none": 1.0}[rule]
    return base_lr * factor


def create_model(name: str, num_classes: int, in_chans: int, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """A timm model with its classifier sized to the data; a clear error when weights are unavailable."""
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, in_chans=in_chans, **kwargs)
    except Exception as err:
        if pretrained:
            raise RuntimeError(f"pretrained weights for {name!r} could not be loaded: {err}") from err
        raise


def freeze_stages(model: nn.Module, stages: int) -> int:
    """Freeze the first ``stages`` of timm's coarse parameter groups (stem = 1, then one per stage).

    The classifier is never frozen: at most every group but the last (the head) is. Only
    ``requires_grad`` changes; batch-norm statistics keep adapting (the module types, and so the
    checkpoint's keys, stay those of a fresh model). Returns how many groups were frozen.
    """
    if stages <= 0:
        return 0
    groups = group_parameters(model, model.group_matcher(coarse=True))  # type: ignore[operator]
    ordered = [groups[k] for k in sorted(groups)]
    head = model.get_classifier()  # type: ignore[operator]
    head_params = {id(p) for p in head.parameters()} if isinstance(head, nn.Module) else set()
    count = min(stages, len(ordered) - 1)
    frozen = {name for group in ordered[:count] for name in group}
    for name, param in model.named_parameters():
        if name in frozen and id(param) not in head_params:
            param.requires_grad_(False)
    return count


def build_model(recipe: dict[str, Any], num_classes: int, in_chans: int) -> nn.Module:
    """The recipe's model: timm name, dropout and drop-path, pretrained weights, frozen stages."""
    reg, ft = recipe["regularization"], recipe["finetune"]
    kwargs: dict[str, Any] = {}
    if reg["drop_rate"] > 0:
        kwargs["drop_rate"] = reg["drop_rate"]
    if reg["drop_path_rate"] > 0:
        kwargs["drop_path_rate"] = reg["drop_path_rate"]
    model = create_model(recipe["model"], num_classes, in_chans, pretrained=bool(ft["pretrained"]), **kwargs)
    freeze_stages(model, int(ft["freeze_stages"]))
    return model


def normalization(model: nn.Module, in_chans: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean/std from the model's timm data config, averaged to one channel for grayscale input."""
    cfg = resolve_model_data_config(model)
    mean, std = tuple(cfg["mean"]), tuple(cfg["std"])
    if in_chans == 1 and len(mean) == 3:
        mean, std = (sum(mean) / 3,), (sum(std) / 3,)
    return mean, std


# ---------------------------------------------------------------- augmentation


class GaussianNoise:
    """Adds N(0, std^2) noise to a normalized image tensor (a class, so DataLoader workers can pickle it)."""

    def __init__(self, std: float) -> None:
        self.std = std

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.randn_like(x) * self.std

    def __repr__(self) -> str:
        return f"GaussianNoise(std={self.std})"


# timm's "Posterize" ops reach 0 bits at the ends of the magnitude range, which Pillow >= 11
# refuses; RandAugment/TrivialAugment here use timm's increasing-severity ops without them.
_AA_OPS = [op for op in rand_augment_choices("", increasing=True) if not op.startswith("Posterize")]


def _auto_augment(policy: dict[str, Any], image_size: int, mean: tuple[float, ...]) -> Any:
    """timm's RandAugment (``rand``) or TrivialAugment (``trivial``: one op, magnitude uniform in
    [0, m], always applied), or None."""
    name = policy["name"]
    if name == "none":
        return None
    hparams = {"translate_const": int(image_size * 0.45), "img_mean": tuple(min(255, round(255 * m)) for m in mean)}
    if name == "rand":
        config = f"rand-m{policy['magnitude']}-n{policy['num_ops']}-mstd0.5-inc1"
    elif name == "trivial":
        config = f"rand-m{policy['magnitude']}-n1-p1.0-mstd101-inc1"
    else:
        raise ValueError(f"unknown auto_augment policy {name!r}")
    return rand_augment_transform(config, hparams, transforms=_AA_OPS)


def create_transforms(
    recipe: dict[str, Any], image_size: int, in_chans: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]:
    """timm's train and eval transforms for PIL images already at ``image_size`` ("L" or "RGB").

    Train: rotation, timm's random-resized crop and flips, auto-augment, colour jitter
    (saturation skipped for 1 channel), tensor + normalize, Gaussian noise, random erasing.
    Eval: tensor + normalize only (``crop_pct=1``: images are stored at the model's size).
    """
    aug = recipe["augmentation"]
    common: dict[str, Any] = {"input_size": (in_chans, image_size, image_size), "mean": mean, "std": std}
    train = create_transform(
        is_training=True,
        scale=(aug["scale_min"], 1.0),
        hflip=0.5 if aug["hflip"] else 0.0,
        vflip=0.5 if aug["vflip"] else 0.0,
        color_jitter=None,  # type: ignore[arg-type]  # None turns timm's off; ours is added below
        re_prob=aug["re_prob"],
        re_mode="pixel",
        interpolation="bilinear",
        **common,
    )
    steps = list(train.transforms)
    to_tensor = next(i for i, t in enumerate(steps) if "ToTensor" in type(t).__name__)
    middle: list[Any] = []
    policy = _auto_augment(recipe["auto_augment"], image_size, mean)
    if policy is not None:
        middle.append(policy)
    jitter = (aug["brightness"], aug["contrast"], aug["saturation"] if in_chans == 3 else 0.0)
    if any(jitter):
        middle.append(T.ColorJitter(*jitter))
    normalize = next(i for i, t in enumerate(steps) if isinstance(t, T.Normalize))
    tail = [GaussianNoise(aug["noise_std"])] if aug["noise_std"] > 0 else []
    head: list[Any] = []
    if aug["rotation"] > 0:
        fill = [round(255 * m) for m in mean]
        head.append(T.RandomRotation(aug["rotation"], fill=fill[0] if in_chans == 1 else fill))
    train = T.Compose(
        head + steps[:to_tensor] + middle + steps[to_tensor : normalize + 1] + tail + steps[normalize + 1 :]
    )
    # crop_pct=1: images are stored at the model's size, so evaluation must not crop their borders.
    evaluate = create_transform(is_training=False, crop_pct=1.0, interpolation="bilinear", **common)
    return train, evaluate
