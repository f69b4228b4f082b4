"""What a model costs to serve, on the form it ships in: its ONNX export, run in onnxruntime.

``export_onnx`` is the one exporter: the export of an ensemble (``tunefleet.analysis``) and each
trial's serving cost use it, so a trial's ``latency_ms`` is measured on the graph its export would
hold. ``serving_cost`` exports a trial's freshly built model (cost depends on the architecture,
image size and classes, not on the weights) and times it once, before training, on CPU with as
many threads as the trial reserved, and on the trial's GPU too where it has one and onnxruntime
here has its CUDA provider (``onnxruntime-gpu``). Trials timed on the same kind of node compare; on
a cluster of mixed CPUs or GPUs they do not (the node is on every trial run).
"""

from __future__ import annotations

import copy
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tunefleet.spaces.records import LATENCY_BATCH_MS, LATENCY_GPU_BATCH_MS, LATENCY_GPU_MS, LATENCY_MS, MODEL_MB

OPSET = 18
CUDA_PROVIDER = "CUDAExecutionProvider"
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


def gpu_serving_available() -> bool:
    """Whether onnxruntime here can run a graph on a GPU (the ``onnxruntime-gpu`` build)."""
    import onnxruntime as ort

    return CUDA_PROVIDER in ort.get_available_providers()


def onnx_session(path: Path, threads: int = 0, gpu: int | None = None) -> Callable[[torch.Tensor], np.ndarray]:
    """The ONNX model at ``path`` as a function, run in onnxruntime (one session for every call):
    on CPU, or on CUDA device ``gpu`` (inputs and outputs in host memory, as a request has them).
    ``threads`` > 0 caps onnxruntime's CPU threads (0: its default, every core)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    providers: list[Any] = ["CPUExecutionProvider"]
    if gpu is not None:
        providers.insert(0, (CUDA_PROVIDER, {"device_id": gpu}))
    session = ort.InferenceSession(str(path), options, providers=providers)
    if gpu is not None and session.get_providers()[0] != CUDA_PROVIDER:
        # onnxruntime falls back to CPU with only a log line: a GPU latency must not be a CPU one.
        raise RuntimeError(
            f"onnxruntime {ort.__version__} cannot run on GPU {gpu} here (providers: "
            f"{', '.join(ort.get_available_providers())}); install onnxruntime-gpu to time the GPU"
        )
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> np.ndarray:
        (out,) = session.run(None, {name: x.numpy()})
        return np.asarray(out)

    return run


def graph_bytes(path: Path) -> int:
    """The graph's size on disk, with any external-data file beside it."""
    return sum(os.path.getsize(p) for p in path.parent.glob(f"{path.name}*"))


def latency_ms(
    path: Path, example: np.ndarray, batch: int, threads: int = 0, gpu: int | None = None
) -> tuple[float, float]:
    """Median milliseconds of one run of the graph at batch 1 and at ``batch`` (onnxruntime, on CPU
    or on CUDA device ``gpu``)."""
    run = onnx_session(path, threads, gpu)
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


def serving_cost(
    model: nn.Module, in_chans: int, image_size: int, batch: int, threads: int, gpu: int | None = None
) -> dict[str, float]:
    """``model`` exported to ONNX and timed in onnxruntime: ``latency_ms`` (batch 1),
    ``latency_ms_batch`` (``batch``) and ``model_mb``, and with ``gpu`` (a CUDA device index) the
    same latencies there, ``latency_gpu_ms`` and ``latency_gpu_ms_batch``. A copy is exported, on
    CPU, in eval mode: the trial's own model keeps its device and training mode."""
    served = copy.deepcopy(model).to("cpu").eval()
    sample = torch.zeros(1, in_chans, image_size, image_size)
    with tempfile.TemporaryDirectory(prefix="tunefleet-serving-") as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(served, sample, path)
        one, many = latency_ms(path, sample.numpy(), batch, threads)
        cost = {
            LATENCY_MS: round(one, 4),
            LATENCY_BATCH_MS: round(many, 4),
            MODEL_MB: round(graph_bytes(path) / 1e6, 4),
        }
        if gpu is not None:
            one, many = latency_ms(path, sample.numpy(), batch, gpu=gpu)
            cost |= {LATENCY_GPU_MS: round(one, 4), LATENCY_GPU_BATCH_MS: round(many, 4)}
    return cost
