"""What runs inside one trial: data (in memory or streamed: ``_data``, ``_feed``), timm model,
optimizer, schedule, loss, augmentation, loop, checkpoints and per-epoch reports. Imports
``tunefleet.spaces`` (to resolve a recipe, and the record names in ``tunefleet.spaces.records``),
never ``tunefleet.search``."""

from ._augment import GaussianNoise, Transforms, create_transforms, unit_transforms
from ._checkpoint import (
    CheckpointWriteError,
    CorruptCheckpoint,
    load_logits,
    load_model,
    load_training_state,
    load_weights,
    read_meta,
    resumable_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)
from ._data import DATASETS, DataPlan, load_data, open_data, plan_data
from ._feed import DataFeed, loader_workers
from ._folder import FolderScan, scan_folder
from ._loop import TrialOutOfMemory, classification_metrics, predict
from ._loss import LOSSES, FocalLoss, create_loss, create_mixup
from ._model import build_model, create_model, freeze_stages, normalization, scaled_lr
from ._optim import OPTIMIZERS, create_optimizer
from ._schedule import SCHEDULES, create_scheduler
from ._serving import OPSET, export_onnx, graph_bytes, latency_ms, onnx_session, serving_cost
from ._settings import TrialSettings
from ._splits import RESIZE, FileSplit, ImageData, Split, stratified_split
from ._trial import run_trial
from ._tune import tune_trainable
from ._upload import CheckpointUploader, RunLink

__all__ = [
    "OPSET",
    "RESIZE",
    "export_onnx",
    "graph_bytes",
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
