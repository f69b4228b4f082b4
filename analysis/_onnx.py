"""ONNX export with a parity check in onnxruntime: an export is only reported if it agrees.

The exporter and the onnxruntime session are the trainables' (``trainables._serving``): a trial's
serving cost is measured on the same graph an export of it would hold.
"""

from __future__ import annotations

from tunefleet.trainables import OPSET, export_onnx, graph_bytes, latency_ms, onnx_session

__all__ = ["OPSET", "export_onnx", "graph_bytes", "latency_ms", "onnx_session"]
