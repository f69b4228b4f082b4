"""The data of the named, ready-made spaces: ``quick``, ``default``, ``finetune``, ``augment-heavy``.

Each is the YAML form of a ``space`` section, so a spec can start from one and override keys::

    space:
      base: default
      lr: {loguniform: [1.0e-3, 1.0e-1]}     # replaces the base's lr
      augmentation: {mixup_alpha: 0.2}      # merged into the base's augmentation group
      schedule: null                         # back to the catalog default (cosine)

None of them names a model: the model belongs to the data, so it comes from the spec.

Plain data that imports nothing of the package: ``_catalog`` needs these tables to merge a
``base:``, and ``_builtin`` needs ``_catalog`` to validate them, so the tables live apart.
"""

from __future__ import annotations

from typing import Any

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
        "augmentation": {
            "hflip": {"choice": [True, False]},
            "scale_min": {"uniform": [0.5, 1.0]},
            "translate": {"uniform": [0.0, 0.2]},
        },
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
            "translate": {"uniform": [0.0, 0.2]},
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
