"""What runs inside one trial: data (in memory or streamed: ``_data``, ``_feed``), timm model,
optimizer, schedule, loss, augmentation, loop, checkpoints and per-epoch reports. Imports
``tunefleet.spaces`` (to resolve a recipe, and the record names in ``tunefleet.spaces.records``),
never ``tunefleet.search``.

Names load on first use (as in ``tunefleet.analysis``): reading a checkpoint's metadata or a
data split must not pay for timm, torchvision and the training loop (``tunefleet report`` reads
both).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunefleet._lazy import lazy_getattr

if TYPE_CHECKING:  # mypy sees every name and its type; at run time each loads on first use
    from tunefleet.spaces import scaled_lr

    from ._augment import GaussianNoise, Transforms, create_transforms, unit_transforms
    from ._checkpoint import (
        CheckpointWriteError,
        load_logits,
        load_model,
        load_training_state,
        load_weights,
        resumable_checkpoint,
        save_checkpoint,
        verify_checkpoint,
    )
    from ._data import DATASETS, DataPlan, load_data, open_data, plan_data
    from ._feed import DataFeed, loader_workers
    from ._folder import FolderScan, scan_folder
    from ._loop import TrialOutOfMemory, classification_metrics, predict
    from ._loss import LOSSES, FocalLoss, create_loss, create_mixup
    from ._meta import CorruptCheckpoint, logits_arrays, read_meta
    from ._model import build_model, create_model, freeze_stages, normalization
    from ._optim import OPTIMIZERS, create_optimizer
    from ._schedule import SCHEDULES, create_scheduler
    from ._serving import OPSET, export_onnx, gpu_serving_available, graph_bytes, latency_ms, onnx_session, serving_cost
    from ._settings import TrialSettings
    from ._splits import RESIZE, FileSplit, ImageData, Split, stratified_split
    from ._trial import run_trial
    from ._tune import tune_trainable
    from ._upload import CheckpointUploader, RunLink

_LAZY = {
    "GaussianNoise": "._augment",
    "Transforms": "._augment",
    "create_transforms": "._augment",
    "unit_transforms": "._augment",
    "CheckpointWriteError": "._checkpoint",
    "CorruptCheckpoint": "._meta",
    "load_logits": "._checkpoint",
    "load_model": "._checkpoint",
    "load_training_state": "._checkpoint",
    "load_weights": "._checkpoint",
    "read_meta": "._meta",
    "logits_arrays": "._meta",
    "resumable_checkpoint": "._checkpoint",
    "save_checkpoint": "._checkpoint",
    "verify_checkpoint": "._checkpoint",
    "DATASETS": "._data",
    "DataPlan": "._data",
    "load_data": "._data",
    "open_data": "._data",
    "plan_data": "._data",
    "DataFeed": "._feed",
    "loader_workers": "._feed",
    "FolderScan": "._folder",
    "scan_folder": "._folder",
    "TrialOutOfMemory": "._loop",
    "classification_metrics": "._loop",
    "predict": "._loop",
    "LOSSES": "._loss",
    "FocalLoss": "._loss",
    "create_loss": "._loss",
    "create_mixup": "._loss",
    "build_model": "._model",
    "create_model": "._model",
    "freeze_stages": "._model",
    "normalization": "._model",
    "scaled_lr": "tunefleet.spaces",  # the rule is the spec's (resources.lr_scaling); kept here too
    "OPTIMIZERS": "._optim",
    "create_optimizer": "._optim",
    "SCHEDULES": "._schedule",
    "create_scheduler": "._schedule",
    "OPSET": "._serving",
    "export_onnx": "._serving",
    "graph_bytes": "._serving",
    "gpu_serving_available": "._serving",
    "latency_ms": "._serving",
    "onnx_session": "._serving",
    "serving_cost": "._serving",
    "TrialSettings": "._settings",
    "RESIZE": "._splits",
    "FileSplit": "._splits",
    "ImageData": "._splits",
    "Split": "._splits",
    "stratified_split": "._splits",
    "run_trial": "._trial",
    "tune_trainable": "._tune",
    "CheckpointUploader": "._upload",
    "RunLink": "._upload",
}
__all__ = [
    "OPSET",
    "RESIZE",
    "export_onnx",
    "graph_bytes",
    "gpu_serving_available",
    "latency_ms",
    "onnx_session",
    "serving_cost",
    "DataFeed",
    "DataPlan",
    "FileSplit",
    "Transforms",
    "loader_workers",
    "open_data",
    "plan_data",
    "CheckpointUploader",
    "CheckpointWriteError",
    "CorruptCheckpoint",
    "RunLink",
    "FolderScan",
    "TrialOutOfMemory",
    "load_training_state",
    "scan_folder",
    "DATASETS",
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
    "load_data",
    "load_logits",
    "logits_arrays",
    "load_model",
    "load_weights",
    "normalization",
    "predict",
    "read_meta",
    "resumable_checkpoint",
    "run_trial",
    "save_checkpoint",
    "scaled_lr",
    "stratified_split",
    "tune_trainable",
    "unit_transforms",
    "verify_checkpoint",
]


__getattr__ = lazy_getattr(__name__, _LAZY)
