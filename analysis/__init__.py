"""Reading a search back from MLflow: trial tables, the report that explains it, ensembles of its
best trials fit on validation predictions, ONNX export, the Model Registry and prediction."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunefleet._lazy import lazy_getattr

if TYPE_CHECKING:  # mypy sees every name and its type; at run time each loads on first use
    from ._checks import METHODS, check_export, check_model_name
    from ._combine import COMBINERS, Combination, fit_combination
    from ._ensemble import ENSEMBLES, Normalized, SoftmaxAverage, Stacked, WeightedAverage, batched, ensemble_module
    from ._export import ExportResult, export_ensemble
    from ._inputs import ImageInput
    from ._metrics import classifier_metrics
    from ._model import Ensemble, Exported, export_model
    from ._onnx import export_onnx, onnx_session
    from ._pareto import Pick, front_objectives, pareto_front, picked, search_objectives
    from ._predict import ExportedModel, Predictions, load_exported, predict
    from ._register import Registered, register_model
    from ._report import Report, build_report
    from ._runs import (
        TRIAL_COLUMNS,
        finished_trials,
        open_experiment,
        ordered,
        ranking,
        run_url,
        search_run,
        sort_column,
        trial_runs,
        trials_frame,
    )

# Name -> module, loaded on first use (Ray Tune's lazy tables): ``tunefleet trials`` needs MLflow
# and pandas, not torch, timm and onnxruntime, and answers seconds sooner for it.
_LAZY = {
    "batched": "._ensemble",
    "build_report": "._report",
    "check_model_name": "._checks",
    "classifier_metrics": "._metrics",
    "Combination": "._combine",
    "COMBINERS": "._combine",
    "Ensemble": "._model",
    "ensemble_module": "._ensemble",
    "Exported": "._model",
    "export_model": "._model",
    "ImageInput": "._inputs",
    "check_export": "._checks",
    "ENSEMBLES": "._ensemble",
    "export_ensemble": "._export",
    "export_onnx": "._onnx",
    "ExportedModel": "._predict",
    "ExportResult": "._export",
    "finished_trials": "._runs",
    "fit_combination": "._combine",
    "load_exported": "._predict",
    "METHODS": "._checks",
    "Normalized": "._ensemble",
    "onnx_session": "._onnx",
    "Pick": "._pareto",
    "front_objectives": "._pareto",
    "pareto_front": "._pareto",
    "picked": "._pareto",
    "search_objectives": "._pareto",
    "open_experiment": "._runs",
    "ordered": "._runs",
    "sort_column": "._runs",
    "predict": "._predict",
    "Predictions": "._predict",
    "ranking": "._runs",
    "register_model": "._register",
    "Registered": "._register",
    "Report": "._report",
    "run_url": "._runs",
    "search_run": "._runs",
    "SoftmaxAverage": "._ensemble",
    "Stacked": "._ensemble",
    "TRIAL_COLUMNS": "._runs",
    "trial_runs": "._runs",
    "trials_frame": "._runs",
    "WeightedAverage": "._ensemble",
}
__all__ = [
    "COMBINERS",
    "Combination",
    "ENSEMBLES",
    "Ensemble",
    "Exported",
    "ImageInput",
    "ExportResult",
    "ExportedModel",
    "METHODS",
    "Normalized",
    "Predictions",
    "Registered",
    "Report",
    "SoftmaxAverage",
    "Stacked",
    "TRIAL_COLUMNS",
    "WeightedAverage",
    "batched",
    "build_report",
    "check_model_name",
    "check_export",
    "classifier_metrics",
    "ensemble_module",
    "export_ensemble",
    "export_model",
    "export_onnx",
    "Pick",
    "front_objectives",
    "pareto_front",
    "picked",
    "search_objectives",
    "finished_trials",
    "fit_combination",
    "load_exported",
    "onnx_session",
    "open_experiment",
    "ordered",
    "predict",
    "ranking",
    "register_model",
    "run_url",
    "search_run",
    "sort_column",
    "trial_runs",
    "trials_frame",
]


__getattr__ = lazy_getattr(__name__, _LAZY)
