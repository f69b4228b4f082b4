"""What a model costs to serve, on the form it ships in: its ONNX export, run in onnxruntime.

``export_onnx`` is the one exporter: the export of an ensemble (``tunefleet.analysis``) and each
trial's serving cost use it, so a trial's ``latency_ms`` is measured on the graph its export would
hold. ``serving_cost`` exports a trial's freshly built model (cost depends on the architecture,
image size and classes, not on the weights) and times it once, before training, on CPU with as
many threads as the trial reserved. Trials timed on the same kind of node compare; on a cluster
of mixed CPUs they do not (the node is on every trial run).
"""

from __future__ import annotations

import copy
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tunefleet.spaces.records import LATENCY_BATCH_MS, LATENCY_MS, MODEL_MB

OPSET = 18
LATENCY_RUNS = 20  # timed runs at batch 1 (a quarter of them at batch N), after a warm-up run


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


def onnx_session(path: Path, threads: int = 0) -> Callable[[torch.Tensor], np.ndarray]:
    """The ONNX model at ``path`` as a function, run on CPU in onnxruntime (one session for every
    call); ``threads`` > 0 caps onnxruntime's threads (0: its default, every core)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> np.ndarray:
        (out,) = session.run(None, {name: x.numpy()})
        return np.asarray(out)

    return run


def graph_bytes(path: Path) -> int:
    """The graph's size on disk, with any external-data file beside it."""
    return sum(os.path.getsize(p) for p in path.parent.glob(f"{path.name}*"))


def latency_ms(path: Path, example: np.ndarray, batch: int, threads: int = 0) -> tuple[float, float]:
    """Median milliseconds of one run of the graph at batch 1 and at ``batch`` (CPU, onnxruntime)."""
    run = onnx_session(path, threads)
    times: dict[int, float] = {}
    for size, runs in ((1, LATENCY_RUNS), (batch, max(3, LATENCY_RUNS // 4))):
        x = torch.from_numpy(np.resize(example, (size, *example.shape[1:])).astype(np.float32))
        run(x)  # warm-up: the first run allocates
        laps = []
        for _ in range(runs):
            began = time.perf_counter()
            run(x)
            laps.append(time.perf_counter() - began)
        times[size] = 1000 * statistics.median(laps)
    return times[1], times[batch]


def serving_cost(model: nn.Module, in_chans: int, image_size: int, batch: int, threads: int) -> dict[str, float]:
    """``model`` exported to ONNX and timed in onnxruntime: ``latency_ms`` (batch 1),
    ``latency_ms_batch`` (``batch``) and ``model_mb``. A copy is exported, on CPU, in eval mode:
    the trial's own model keeps its device and training mode."""
    served = copy.deepcopy(model).to("cpu").eval()
    sample = torch.zeros(1, in_chans, image_size, image_size)
    with tempfile.TemporaryDirectory(prefix="tunefleet-serving-") as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(served, sample, path)
        one, many = latency_ms(path, sample.numpy(), batch, threads)
        size = graph_bytes(path)
    return {LATENCY_MS: round(one, 4), LATENCY_BATCH_MS: round(many, 4), MODEL_MB: round(size / 1e6, 4)}
