"""The catalog's contents: every knob a search may vary, its type, legal range and default.

Names follow timm's own knobs (``momentum``, ``warmup_epochs``, ``smoothing``, ``mixup_alpha``,
``re_prob``, ``drop_path_rate``, ``layer_decay``) so that a resolved trial config reads as a timm
recipe. ``tunefleet.trainables`` implements every option named here (one factory module per
family); its tests run each one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ._domains import Categorical, Conditional, Domain, Float, Int
from ._errors import SpecError

Kind = Literal["float", "int", "bool", "str"]


@dataclass(frozen=True)
class Knob:
    """One parameter's contract: type, open/closed bounds and the value used when not searched."""

    kind: Kind
    default: Any
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    help: str = ""

    def check_value(self, path: str, value: Any) -> None:
        """Raise SpecError naming ``path`` unless ``value`` fits this knob."""
        ok_type = {
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "int": isinstance(value, int) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
            "str": isinstance(value, str),
        }[self.kind]
        if not ok_type:
            raise SpecError(path, f"expected a {self.kind}, got {value!r}")
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            raise SpecError(path, f"must be {'>' if self.low_open else '>='} {self.low}, got {value!r}")
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            raise SpecError(path, f"must be {'<' if self.high_open else '<='} {self.high}, got {value!r}")

    def check_domain(self, path: str, domain: Domain) -> None:
        """Raise SpecError unless every value ``domain`` can produce fits this knob."""
        if isinstance(domain, Conditional):
            raise SpecError(path, "takes plain values; a mapping of options is only for " + ", ".join(FAMILIES))
        if isinstance(domain, (Float, Int)):
            if self.kind not in ("float", "int"):
                raise SpecError(path, f"expected a {self.kind}, got a numeric range")
            if self.kind == "int" and isinstance(domain, Float):
                raise SpecError(path, "expected integers; use {int: [low, high]}")
            for bound in (domain.low, domain.high, *domain.grid):
                self.check_value(path, bound)
        elif isinstance(domain, Categorical):
            for value in domain.choices:
                self.check_value(path, value)
        else:
            self.check_value(path, domain.value)

    def describe(self) -> str:
        """``float in [0, 1), default 0.9``: the legal values in one phrase."""
        legal: str = self.kind
        if self.low is not None:
            lo = f"{'(' if self.low_open else '['}{self.low:g}"
            if self.high is not None:
                legal += f" in {lo}, {self.high:g}{')' if self.high_open else ']'}"
            else:
                legal += f" {'>' if self.low_open else '>='} {self.low:g}"
        return f"{legal}, default {self.default!r}"


def _unit(default: float, help: str = "") -> Knob:
    """A fraction in [0, 1)."""
    return Knob("float", default, low=0.0, high=1.0, high_open=True, help=help)


def _positive(default: float, help: str = "") -> Knob:
    return Knob("float", default, low=0.0, low_open=True, help=help)


def _eps(default: float = 1e-8) -> Knob:
    return _positive(default, "denominator term for numerical stability")


def _betas(beta1: float = 0.9, beta2: float = 0.999) -> dict[str, Knob]:
    return {
        "beta1": _unit(beta1, "decay of the gradient's running mean"),
        "beta2": _unit(beta2, "decay of the squared gradient's running mean"),
    }


_MOMENTUM = _unit(0.9, "momentum factor")

TOP_KNOBS: dict[str, Knob] = {
    "model": Knob("str", "test_resnet", help="timm model name"),
    "lr": _positive(1e-2, "base LR for one worker's batch (scaled with the workers per trial)"),
    "batch_size": Knob("int", 64, low=1, help="batch size per worker"),
    "weight_decay": Knob("float", 0.0, low=0.0, help="decoupled for adamw-style optimizers, L2 otherwise"),
    "warmup_epochs": Knob("int", 0, low=0, help="linear LR warmup from 1% of the peak, before the schedule"),
    "min_lr_ratio": _unit(0.01, "the LR floor as a fraction of the peak LR (cosine, plateau)"),
}

# family -> option -> knob -> contract. Optimizer options are timm `create_optimizer_v2` names;
# each lists only the knobs timm's optimizer takes (checked against timm's registry in tests).
FAMILIES: dict[str, dict[str, dict[str, Knob]]] = {
    "optimizer": {
        "sgd": {"momentum": _MOMENTUM, "nesterov": Knob("bool", False, help="Nesterov momentum")},
        "adam": {**_betas(), "eps": _eps()},
        "adamw": {**_betas(), "eps": _eps()},
        "nadamw": {**_betas(), "eps": _eps()},
        "radam": {**_betas(), "eps": _eps()},
        "adabelief": {**_betas(), "eps": _eps(1e-16)},
        "lamb": {**_betas(), "eps": _eps(1e-6)},
        "lion": _betas(0.9, 0.99),
        "rmsprop": {"alpha": _unit(0.9, "smoothing of the squared gradient"), "momentum": _MOMENTUM, "eps": _eps()},
        "adagrad": {"eps": _eps()},
        "lars": {"momentum": _MOMENTUM},
        "madgrad": {"momentum": _MOMENTUM, "eps": _eps(1e-6)},
    },
    "schedule": {
        "cosine": {},
        "step": {
            "decay_rate": Knob("float", 0.1, low=0.0, high=1.0, low_open=True, help="LR factor at each step"),
            "decay_epochs": Knob("int", 30, low=1, help="epochs between steps"),
        },
        "plateau": {
            "decay_rate": Knob("float", 0.1, low=0.0, high=1.0, low_open=True, help="LR factor on a plateau"),
            "patience_epochs": Knob("int", 2, low=0, help="epochs without val_loss improvement before decay"),
        },
        "constant": {},
    },
    "loss": {
        "ce": {},
        "label_smoothing": {"smoothing": _unit(0.1, "probability mass spread over the other classes")},
        "bce": {"smoothing": _unit(0.0, "label smoothing of the one-hot targets")},
        "focal": {
            "gamma": Knob("float", 2.0, low=0.0, high=10.0, help="focusing: down-weights easy examples"),
            "alpha": Knob("float", 1.0, low=0.0, high=1.0, low_open=True, help="overall weight of the loss"),
        },
    },
    "auto_augment": {
        "none": {},
        "rand": {
            "magnitude": Knob("int", 9, low=0, high=10, help="RandAugment magnitude"),
            "num_ops": Knob("int", 2, low=1, high=4, help="ops applied per image"),
        },
        "trivial": {"magnitude": Knob("int", 10, low=1, high=10, help="one op, magnitude uniform in [0, this]")},
    },
}

FAMILY_HELP: dict[str, str] = {
    "optimizer": "timm optimizer (create_optimizer_v2 name) with its own knobs",
    "schedule": "LR schedule after warmup (timm create_scheduler_v2)",
    "loss": "training loss; soft-target form when MixUp/CutMix is on",
    "auto_augment": "RandAugment / TrivialAugment policy (timm auto_augment)",
}

FAMILY_DEFAULTS: dict[str, str] = {"optimizer": "sgd", "schedule": "cosine", "loss": "ce", "auto_augment": "none"}

GROUPS: dict[str, dict[str, Knob]] = {
    "augmentation": {
        "hflip": Knob("bool", False, help="random horizontal flip"),
        "vflip": Knob("bool", False, help="random vertical flip"),
        "rotation": Knob("float", 0.0, low=0.0, high=180.0, help="random rotation within +- degrees"),
        "scale_min": Knob("float", 1.0, low=0.0, high=1.0, low_open=True, help="random-resized-crop least area"),
        "translate": Knob(
            "float", 0.0, low=0.0, high=0.5, help="random shift up to this share of the side, each axis (pad and crop)"
        ),
        "brightness": _unit(0.0, "colour jitter: brightness"),
        "contrast": _unit(0.0, "colour jitter: contrast"),
        "saturation": _unit(0.0, "colour jitter: saturation (ignored for 1-channel images)"),
        "noise_std": Knob("float", 0.0, low=0.0, high=2.0, help="Gaussian noise std on the normalized image"),
        "mixup_alpha": Knob("float", 0.0, low=0.0, high=10.0, help="MixUp Beta(alpha, alpha); 0 = off"),
        "cutmix_alpha": Knob("float", 0.0, low=0.0, high=10.0, help="CutMix Beta(alpha, alpha); 0 = off"),
        "re_prob": _unit(0.0, "random erasing (cutout) probability"),
    },
    "regularization": {
        "drop_rate": _unit(0.0, "dropout before the classifier"),
        "drop_path_rate": _unit(0.0, "stochastic depth"),
        "patience": Knob("int", 0, low=0, help="early stopping after this many epochs without improvement; 0 = off"),
        "clip_grad": Knob("float", 0.0, low=0.0, help="gradient-norm clipping; 0 = off"),
    },
    "finetune": {
        "pretrained": Knob("bool", False, help="start from timm's pretrained weights (downloaded by timm)"),
        "freeze_stages": Knob("int", 0, low=0, help="freeze the stem (1) and the next stages (2, ...); never the head"),
        "layer_decay": Knob("float", 1.0, low=0.0, high=1.0, low_open=True, help="layer-wise LR decay; 1 = off"),
    },
}
