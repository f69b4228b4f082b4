"""Reading results back from MLflow: trial tables, top-k selection, ensembles and export."""

from ._ensemble import ENSEMBLES, Normalized, SoftmaxAverage, batched
from ._export import ExportResult, export_ensemble
from ._onnx import export_onnx, onnx_outputs
from ._runs import open_experiment, ranking, search_run, top_trials, trials_frame

__all__ = [
    "ENSEMBLES",
    "ExportResult",
    "Normalized",
    "SoftmaxAverage",
    "batched",
    "export_ensemble",
    "export_onnx",
    "onnx_outputs",
    "open_experiment",
    "ranking",
    "search_run",
    "top_trials",
    "trials_frame",
]
