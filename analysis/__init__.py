"""Reading a search back from MLflow: trial tables, the report that explains it, ensembles of its
best trials fit on validation predictions, ONNX export, the Model Registry and prediction."""

from ._combine import COMBINERS, METHODS, Combination, fit_combination
from ._ensemble import ENSEMBLES, Normalized, SoftmaxAverage, Stacked, WeightedAverage, batched, ensemble_module
from ._export import ExportResult, export_ensemble
from ._metrics import classifier_metrics
from ._onnx import export_onnx, onnx_outputs
from ._predict import ExportedModel, Predictions, load_exported, predict
from ._register import Registered, check_model_name, register_model
from ._report import Report, build_report
from ._runs import (
    TRIAL_COLUMNS,
    finished_trials,
    open_experiment,
    ranking,
    run_url,
    search_run,
    top_trials,
    trials_frame,
)

__all__ = [
    "COMBINERS",
    "ENSEMBLES",
    "METHODS",
    "TRIAL_COLUMNS",
    "Combination",
    "ExportResult",
    "ExportedModel",
    "Normalized",
    "Predictions",
    "Registered",
    "Report",
    "SoftmaxAverage",
    "Stacked",
    "WeightedAverage",
    "batched",
    "build_report",
    "check_model_name",
    "classifier_metrics",
    "ensemble_module",
    "export_ensemble",
    "export_onnx",
    "finished_trials",
    "fit_combination",
    "load_exported",
    "onnx_outputs",
    "open_experiment",
    "predict",
    "ranking",
    "register_model",
    "run_url",
    "search_run",
    "top_trials",
    "trials_frame",
]
