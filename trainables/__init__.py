"""What runs inside one trial: data, timm model, optimizer, schedule, loss, augmentation, loop,
checkpoints and per-epoch reports. Imports ``tunefleet.spaces`` (to resolve a recipe), never
``tunefleet.search``."""

from ._checkpoint import (
    BEST,
    LAST,
    load_logits,
    load_model,
    load_training_state,
    load_weights,
    read_meta,
    save_checkpoint,
)
from ._data import DATASETS, ImageData, Split, eval_tensors, load_data, stratified_split
from ._ddp import CHECKPOINT_PATH_KEY
from ._folder import FolderScan, scan_folder
from ._loop import TrialOutOfMemory, classification_metrics, predict
from ._recipe import (
    LOSSES,
    OPTIMIZERS,
    SCHEDULES,
    FocalLoss,
    GaussianNoise,
    build_model,
    create_loss,
    create_mixup,
    create_model,
    create_optimizer,
    create_scheduler,
    create_transforms,
    freeze_stages,
    normalization,
    scaled_lr,
)
from ._trial import EPOCH_METRICS, TrialSettings, run_trial, tune_trainable

__all__ = [
    "BEST",
    "CHECKPOINT_PATH_KEY",
    "LAST",
    "FolderScan",
    "TrialOutOfMemory",
    "load_training_state",
    "scan_folder",
    "DATASETS",
    "EPOCH_METRICS",
    "LOSSES",
    "SCHEDULES",
    "FocalLoss",
    "GaussianNoise",
    "build_model",
    "create_mixup",
    "freeze_stages",
    "OPTIMIZERS",
    "ImageData",
    "Split",
    "TrialSettings",
    "classification_metrics",
    "create_loss",
    "create_model",
    "create_optimizer",
    "create_scheduler",
    "create_transforms",
    "eval_tensors",
    "load_data",
    "load_logits",
    "load_model",
    "load_weights",
    "normalization",
    "predict",
    "read_meta",
    "run_trial",
    "save_checkpoint",
    "scaled_lr",
    "stratified_split",
    "tune_trainable",
]
