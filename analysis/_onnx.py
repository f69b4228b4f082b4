"""ONNX export with a parity check in onnxruntime: an export is only reported if it agrees."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

OPSET = 18


def export_onnx(module: nn.Module, sample: torch.Tensor, path: Path) -> None:
    """Write ``module`` to ``path`` with a dynamic batch axis (input ``image``, output ``probs``)."""
    module.eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(
        module,
        (sample,),
        dynamo=True,
        opset_version=OPSET,
        input_names=["image"],
        output_names=["probs"],
        dynamic_shapes=({0: batch},),
        verbose=False,
    )
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    program.save(str(path))


def onnx_session(path: Path) -> Callable[[torch.Tensor], np.ndarray]:
    """The ONNX model at ``path`` as a function, run on CPU in onnxruntime (one session for every call)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> np.ndarray:
        (out,) = session.run(None, {name: x.numpy()})
        return np.asarray(out)

    return run
