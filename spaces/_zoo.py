"""The model zoo ``tunefleet fit`` chooses from, and its presets: plain tables a user can read.

As AutoGluon keeps its presets as data, each zoo row is one timm model with what the planner
needs to know about it: what one training image costs on a CPU, whether timm lists pretrained
weights for it, and which presets include it. ``tunefleet fit --dry-run`` prints the rows it
used; nothing here imports torch or timm (the contract test checks every row against timm).

**Cost.** ``cpu_ms_per_img``: milliseconds per image of one training step (forward + backward +
SGD step), batch ``ZOO_BATCH`` of RGB images at ``ZOO_REFERENCE_SIZE`` px, one torch thread (what
a CPU trial with ``resources.cpus_per_worker: 1`` gets), measured by ``benchmarks/zoo_cost.py``;
``cpu_ms_per_img_small`` the same at ``ZOO_MIN_SIZE``. Cost is not proportional to pixels at
small sizes (each layer has fixed costs: at 32 px the models cost 0.3-0.7 of their 64 px figure,
not 0.25), so ``cpu_ms`` draws a line through both measurements in pixel count, which is the
``(image_size / ZOO_REFERENCE_SIZE) ** 2`` scaling plus a fixed part. ``gpu_ms_per_img`` is
``None``: no GPU was available where the table was measured, so a plan on GPUs says it cannot
estimate epoch times there rather than guess a figure.

**Pretrained.** ``timm.list_models(name, pretrained=True)`` on the timm of the measurement
(1.0.31), recorded so the planner stays free of timm; the contract test asks timm again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The reference the costs were measured at; the planner scales from it.
ZOO_REFERENCE_SIZE = 64
ZOO_BATCH = 32
# Every zoo model takes square images from this size up (convnext_atto's stem and three 2x
# downsamplings need 32 px); the planner never picks less. Checked by the contract test.
ZOO_MIN_SIZE = 32


@dataclass(frozen=True)
class ZooModel:
    """One zoo row: a timm model, its measured cost, whether timm has weights, its presets."""

    name: str
    cpu_ms_per_img: float  # one training step per image at the reference size, 1 CPU thread
    cpu_ms_per_img_small: float  # the same at ZOO_MIN_SIZE
    gpu_ms_per_img: float | None  # None: not measured (no GPU where the table was made)
    pretrained: bool  # timm lists pretrained weights for it
    presets: tuple[str, ...]
    params_m: float  # millions of parameters, for the reader

    def cpu_ms(self, size: int) -> float:
        """ms per training image at ``size`` px on one CPU thread: the line through the two
        measurements, in pixels (``size`` >= ``ZOO_MIN_SIZE``; above the reference it extrapolates)."""
        small, ref = (ZOO_MIN_SIZE / ZOO_REFERENCE_SIZE) ** 2, 1.0
        per_pixel_share = (self.cpu_ms_per_img - self.cpu_ms_per_img_small) / (ref - small)
        fixed = self.cpu_ms_per_img - per_pixel_share * ref
        return fixed + per_pixel_share * (size / ZOO_REFERENCE_SIZE) ** 2


# Measured 2026-12-04 with `python benchmarks/zoo_cost.py` on x86_64 Intel Xeon (KVM), 2 cores,
# 24 GiB, no GPU (load 0.3-1.0); torch 2.14.1, timm 1.0.31, 1 thread, batch 32, median of 5 steps
# after 2 warm-up, a fresh process per model and size. Repeated runs differed by up to ~20 %.
# Cheapest first; columns: name, ms/img at 64 px, at 32 px, GPU, pretrained, presets, params (M).
_Q, _B, _X = "quick", "balanced", "best"
_ROWS = (
    ZooModel("lcnet_050", 1.67, 1.08, None, True, (_Q,), 0.6),
    ZooModel("mobilenetv3_small_100", 2.78, 2.03, None, True, (_Q, _B), 1.5),
    ZooModel("regnety_002", 4.06, 2.24, None, True, (_B, _X), 2.8),
    ZooModel("convnext_atto", 5.09, 2.34, None, True, (_B, _X), 3.4),
    ZooModel("resnet10t", 6.46, 2.07, None, True, (_B, _X), 4.9),
    ZooModel("mobilenetv3_large_100", 7.61, 4.54, None, True, (_B, _X), 4.2),
    ZooModel("resnet18", 8.95, 3.72, None, True, (_B, _X), 11.2),
    ZooModel("efficientnet_b0", 12.08, 6.68, None, True, (_X,), 4.0),
    ZooModel("resnet34", 17.97, 6.93, None, True, (_X,), 21.3),
    ZooModel("resnet50", 26.21, 11.81, None, True, (_X,), 23.5),
)
ZOO: dict[str, ZooModel] = {row.name: row for row in _ROWS}

# Quality tiers as data. Per preset: the image size cap (the images' typical size, rounded and
# at least ZOO_MIN_SIZE, is cut to this), the base spaces (from scratch / fine-tuning), the batch sizes a
# trial may pick (bounded by the data), the epochs a kept model must fit in the budget, the
# images a trial should see (max_epochs = that / training images, within the epoch bounds), and
# a cap on trials.
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "description": "the two cheapest models, images up to 64 px, a handful of trials: a first answer",
        "max_image_size": 64,
        "space": "quick",
        "finetune_space": "finetune",
        "batch_sizes": [32, 64],
        "min_epochs": 1,
        "target_images": 10_000,
        "epochs": [2, 10],
        "max_trials": 16,
        "final_epochs": 30,  # the most epochs a final-phase trial trains
    },
    "balanced": {
        "description": "six small models, the everyday recipe space, up to 128 px",
        "max_image_size": 128,
        "space": "default",
        "finetune_space": "finetune",
        "batch_sizes": [32, 64, 128],
        "min_epochs": 3,
        "target_images": 30_000,
        "epochs": [3, 20],
        "max_trials": 64,
        "final_epochs": 60,  # the most epochs a final-phase trial trains
    },
    "best": {
        "description": "eight models up to resnet50, up to 224 px, longer trials",
        "max_image_size": 224,
        "space": "default",
        "finetune_space": "finetune",
        "batch_sizes": [16, 32, 64, 128],
        "min_epochs": 5,
        "target_images": 100_000,
        "epochs": [5, 50],
        "max_trials": 256,
        "final_epochs": 150,  # the most epochs a final-phase trial trains
    },
}


def preset_models(preset: str) -> list[ZooModel]:
    """The zoo rows ``preset`` includes, cheapest (on a CPU) first."""
    return sorted((row for row in _ROWS if preset in row.presets), key=lambda row: row.cpu_ms_per_img)


# What a fit search runs first (AutoGluon's "zero-shot" portfolio idea, through Optuna's
# enqueue_trial), and all a portfolio plan runs: the recipe a careful user starts from and that
# trains reliably (AdamW, cosine, plain cross-entropy, light crops, no dropout), once per model
# on the first kept models of START_MODELS; the searcher explores from there. Every knob a base
# space samples is set, so a start config is one recipe, not a draw: no flips from scratch (plans
# train from scratch on small images, glyphs and digits among them, where a mirror changes the
# class), flips when fine-tuning photographs; from scratch, shifts of up to 1/8 of the side (the
# pad-4 crop of CIFAR training at 32 px): without them resnet18 on the generated shapes set
# memorized its training images (train loss 0.05, validation 0.41 after 20 epochs), and the
# timm script that shifts reached 0.68 in as many. A knob the space lacks, or a value outside its
# domain, is left to the sampler. Per training mode: from scratch, and fine-tuning (a lower LR).
START_RECIPES: dict[str, dict[str, Any]] = {
    "scratch": {
        "optimizer": "adamw",
        "optimizer.adamw.beta2": 0.999,
        "lr": 1e-3,
        "weight_decay": 1e-2,
        "warmup_epochs": 0,
        "schedule": "cosine",
        "loss": "ce",
        "augmentation.hflip": False,
        "augmentation.scale_min": 0.9,
        "augmentation.translate": 0.125,
        "regularization.drop_rate": 0.0,
        "regularization.drop_path_rate": 0.0,
    },
    "finetune": {
        "optimizer": "adamw",
        "optimizer.adamw.beta2": 0.999,
        "lr": 3e-4,
        "weight_decay": 1e-4,
        "warmup_epochs": 0,
        "loss": "ce",
        "augmentation.hflip": True,
        "augmentation.scale_min": 0.9,
        "regularization.drop_path_rate": 0.0,
        "finetune.freeze_stages": 0,
        "finetune.layer_decay": 1.0,
    },
}
START_BATCH = 64  # the start configs' batch size where the plan allows it (else its smallest)
# The models the start recipes run on first, in this order where the plan keeps them, per
# training mode (models missing here follow, cheapest first). From scratch on small images the
# residual nets reach a good accuracy in the fewest epochs: fit's 3-minute digits plan trains
# resnet10t and resnet18 side by side, and its ensemble scored 0.994 on each of three seeds
# (benchmarks/RESULTS.md, 2026-12-05), where the earlier plan's start recipes on the cheapest
# (mobile) nets reached only 0.63 in 6 epochs (RESULTS.md, 2026-12-04). Fine-tuning: cheapest first.
START_MODELS: dict[str, tuple[str, ...]] = {
    "scratch": ("resnet10t", "resnet18", "convnext_atto", "regnety_002"),
    "finetune": (),
}


def start_models(kept: list[str], finetune: bool) -> list[str]:
    """``kept`` (cheapest first) in the order the start recipes take them (``START_MODELS``)."""
    first = [m for m in START_MODELS["finetune" if finetune else "scratch"] if m in kept]
    return first + [m for m in kept if m not in first]
