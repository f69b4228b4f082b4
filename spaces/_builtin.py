"""Named, ready-made spaces: ``quick``, ``default``, ``finetune``, ``augment-heavy``.

Each is the YAML form of a ``space`` section, so a spec can start from one and override keys::

    space:
      base: default
      lr: {loguniform: [1.0e-3, 1.0e-1]}     # replaces the base's lr
      augmentation: {mixup_alpha: 0.2}      # merged into the base's augmentation group
      schedule: null                         # back to the catalog default (cosine)

None of them names a model: the model belongs to the data, so it comes from the spec.
"""

from __future__ import annotations

from typing import Any

from ._domains import Conditional, Domain
from ._knobs import FAMILIES, FAMILY_HELP, GROUPS, TOP_KNOBS

_SGD = {"momentum": {"uniform": [0.8, 0.99]}, "nesterov": {"choice": [True, False]}}

BUILTIN_SPACES: dict[str, dict[str, Any]] = {
    "quick": {
        "lr": {"loguniform": [1.0e-3, 1.0e-1]},
        "batch_size": {"choice": [32, 64]},
        "optimizer": {"choice": {"sgd": {"momentum": {"uniform": [0.8, 0.95]}}, "adamw": {}}},
    },
    "default": {
        "lr": {"loguniform": [1.0e-4, 1.0e-1]},
        "batch_size": {"choice": [32, 64, 128]},
        "weight_decay": {"loguniform": [1.0e-6, 1.0e-2]},
        "warmup_epochs": {"int": [0, 2]},
        "optimizer": {
            "choice": {
                "sgd": _SGD,
                "adamw": {"beta2": {"uniform": [0.99, 0.9999]}},
                "lamb": {},
                "rmsprop": {"alpha": {"uniform": [0.9, 0.99]}, "momentum": {"uniform": [0.0, 0.9]}},
            }
        },
        "schedule": {
            "choice": {
                "cosine": {},
                "step": {"decay_rate": {"uniform": [0.1, 0.5]}, "decay_epochs": {"int": [2, 10]}},
            }
        },
        "loss": {"choice": {"ce": {}, "label_smoothing": {"smoothing": {"uniform": [0.05, 0.2]}}}},
        "augmentation": {"hflip": {"choice": [True, False]}, "scale_min": {"uniform": [0.5, 1.0]}},
        "regularization": {"drop_rate": {"uniform": [0.0, 0.3]}, "drop_path_rate": {"uniform": [0.0, 0.2]}},
    },
    "finetune": {
        "lr": {"loguniform": [1.0e-5, 1.0e-2]},
        "batch_size": {"choice": [16, 32, 64]},
        "weight_decay": {"loguniform": [1.0e-5, 5.0e-2]},
        "warmup_epochs": {"int": [0, 2]},
        "optimizer": {"choice": {"adamw": {}, "sgd": {"momentum": {"uniform": [0.85, 0.99]}}}},
        "loss": {"choice": {"ce": {}, "label_smoothing": {"smoothing": {"uniform": [0.0, 0.2]}}}},
        "augmentation": {"hflip": True, "scale_min": {"uniform": [0.6, 1.0]}},
        "regularization": {"drop_path_rate": {"uniform": [0.0, 0.2]}, "patience": 3},
        "finetune": {"pretrained": True, "freeze_stages": {"int": [0, 3]}, "layer_decay": {"uniform": [0.6, 1.0]}},
    },
    "augment-heavy": {
        "lr": {"loguniform": [1.0e-4, 1.0e-1]},
        "batch_size": {"choice": [32, 64, 128]},
        "weight_decay": {"loguniform": [1.0e-4, 5.0e-2]},
        "warmup_epochs": {"int": [0, 3]},
        "optimizer": {"choice": {"adamw": {}, "sgd": _SGD}},
        "auto_augment": {"choice": {"rand": {"magnitude": {"int": [5, 10]}}, "trivial": {}, "none": {}}},
        "loss": {
            "choice": {
                "ce": {},
                "label_smoothing": {"smoothing": {"uniform": [0.0, 0.2]}},
                "focal": {"gamma": {"uniform": [1.0, 3.0]}},
            }
        },
        "augmentation": {
            "hflip": {"choice": [True, False]},
            "vflip": {"choice": [False, True]},
            "rotation": {"uniform": [0.0, 30.0]},
            "scale_min": {"uniform": [0.3, 1.0]},
            "brightness": {"uniform": [0.0, 0.4]},
            "contrast": {"uniform": [0.0, 0.4]},
            "saturation": {"uniform": [0.0, 0.4]},
            "noise_std": {"uniform": [0.0, 0.1]},
            "mixup_alpha": {"uniform": [0.0, 0.8]},
            "cutmix_alpha": {"uniform": [0.0, 1.0]},
            "re_prob": {"uniform": [0.0, 0.25]},
        },
        "regularization": {"drop_rate": {"uniform": [0.0, 0.3]}, "drop_path_rate": {"uniform": [0.0, 0.2]}},
    },
}

DESCRIPTIONS: dict[str, str] = {
    "quick": "LR, batch size and SGD-vs-AdamW: a first look in a handful of trials",
    "default": "the everyday recipe: optimizer, schedule, loss, light augmentation, dropout",
    "finetune": "from pretrained weights: low LR, frozen stem/stages, layer-wise LR decay",
    "augment-heavy": "RandAugment/TrivialAugment, MixUp/CutMix, erasing, jitter: for small data sets",
}


def builtin_space(name: str) -> dict[str, Domain]:
    """A built-in space, validated (``KeyError`` for an unknown name)."""
    from ._catalog import validate_space

    return validate_space(BUILTIN_SPACES[name], prefix=f"builtin:{name}")


def _help(path: str) -> str:
    parts = path.split(".")
    if parts[0] in TOP_KNOBS:
        return TOP_KNOBS[parts[0]].help
    if parts[0] in GROUPS:
        return GROUPS[parts[0]][parts[1]].help
    if parts[0] in FAMILIES and len(parts) == 3:
        return FAMILIES[parts[0]][parts[1]][parts[2]].help
    return ""


def _short(domain: Domain) -> str:
    from ._domains import Categorical, Constant, Float, Int

    if isinstance(domain, Constant):
        return repr(domain.value)
    if isinstance(domain, Float):
        kind = "loguniform" if domain.log else "uniform"
        extra = f" step {domain.step:g}" if domain.step else ""
        return f"{kind} [{domain.low:g}, {domain.high:g}]{extra}"
    if isinstance(domain, Int):
        extra = f" step {domain.step}" if domain.step != 1 else ""
        return f"int [{domain.low}, {domain.high}]{extra}{' log' if domain.log else ''}"
    if isinstance(domain, Categorical):
        return "one of " + ", ".join(map(repr, domain.choices))
    return "one of " + ", ".join(domain.options)


def space_rows(space: dict[str, Domain]) -> list[tuple[str, str, str]]:
    """(path, domain, meaning) rows for printing a space; an option's knobs follow their option."""
    rows: list[tuple[str, str, str]] = []
    for path, domain in space.items():
        rows.append((path, _short(domain), FAMILY_HELP[path] if path in FAMILIES else _help(path)))
        if isinstance(domain, Conditional):
            for option, knobs in domain.options.items():
                for knob, sub in knobs.items():
                    rows.append((f"  {path}.{option}.{knob}", _short(sub), _help(f"{path}.{option}.{knob}")))
    return rows
