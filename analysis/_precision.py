"""The exported graph in the precision a user ships: fp32 as exported, fp16, or static int8; and
what each variant costs to serve (test accuracy, latency at batch 1 and batch N, file size).

fp16 is onnxruntime's own converter with float32 input and output kept (``keep_io_types``), so
``predict`` and the registry feed every variant the same float32 images; its probabilities must
match fp32's to ``FP16_TOL``. int8 is onnxruntime's static quantization in QDQ form (uint8
activations, int8 per-channel weights: the CPU default its docs recommend), calibrated on up to
``CALIBRATION_IMAGES`` training images spread over the whole split (split indices are sorted by
class, so the first images would be one class); only the heavy ops (Conv, MatMul, Gemm) are
quantized, so the ensemble's softmax and combination stay exact. Neither changes the fp32 graph's
parity check against PyTorch, which runs first.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tunefleet.spaces import SpecError
from tunefleet.spaces import artifacts as art

from ._members import EvalData
from ._onnx import graph_bytes, latency_ms, onnx_session

FP16_TOL = 1e-2  # max abs difference of a class probability, fp16 against fp32, on the test split
CALIBRATION_IMAGES = 256
CALIBRATION_BATCH = 32


def _calibration_batches(data: EvalData) -> Iterator[np.ndarray]:
    """Up to ``CALIBRATION_IMAGES`` training images ([0, 1], as the graph takes them), every k-th."""
    stride = max(1, len(data.feed.splits["train"]) // CALIBRATION_IMAGES)
    kept: list[np.ndarray] = []
    seen = 0
    for x, _ in data.feed.evaluate("train", CALIBRATION_BATCH):
        picked = [i for i in range(len(x)) if (seen + i) % stride == 0]
        seen += len(x)
        kept.extend(x[i].numpy() for i in picked)
        while len(kept) >= CALIBRATION_BATCH:
            yield np.stack(kept[:CALIBRATION_BATCH])
            kept = kept[CALIBRATION_BATCH:]
    if kept:
        yield np.stack(kept)


def _quantize_int8(source: Path, target: Path, data: EvalData) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = list(_calibration_batches(data))
    if not batches:
        raise SpecError("--precision", "int8 needs calibration images from the training split; none could be read")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter({"image": b} for b in batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    with tempfile.TemporaryDirectory(prefix="tunefleet-int8-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared))  # shape inference and folding, as ORT advises
        quantize_static(
            str(prepared), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            op_types_to_quantize=["Conv", "MatMul", "Gemm"],
        )  # fmt: skip


def _convert_fp16(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    onnx.save(model, str(target))


def convert(source: Path, precision: str, data: EvalData) -> Path:
    """``source`` (the checked fp32 graph) as ``precision``, written beside it; fp32 is ``source``."""
    if precision == "fp32":
        return source
    target = source.with_name(f"{source.stem}-{precision}{source.suffix}")
    if precision == "fp16":
        _convert_fp16(source, target)
    else:
        _quantize_int8(source, target, data)
    return target


def measure(
    path: Path, precision: str, probs: np.ndarray, reference: np.ndarray, data: EvalData, batch: int
) -> art.Variant:
    """One row of the card's ``variants``: ``probs`` are this graph's test probabilities, ``reference`` fp32's."""
    assert data.y_test is not None, "the test split was read first"
    b1, bn = latency_ms(path, data.example().numpy(), batch)
    size = graph_bytes(path)  # with any external data
    return art.Variant(
        precision=precision,
        test_acc=float((probs.argmax(1) == data.y_test).mean()),
        agreement_with_fp32=float((probs.argmax(1) == reference.argmax(1)).mean()),
        max_abs_diff_vs_fp32=float(np.abs(probs - reference).max()),
        latency_ms_batch_1=round(b1, 3),
        latency_ms_batch_n=round(bn, 3),
        batch_n=batch,
        file_bytes=size,
    )


def ship_precision(
    onnx_path: Path, precision: str, fp32_probs: np.ndarray, data: EvalData, batch: int
) -> tuple[np.ndarray, list[art.Variant]]:
    """Convert the checked fp32 graph at ``onnx_path`` to ``precision`` and put it in its place.
    Returns the shipped graph's test probabilities and the variants measured (fp32 first, then
    the shipped one). A fp16 graph that drifts past ``FP16_TOL`` is refused, nothing shipped."""
    fp32 = measure(onnx_path, "fp32", fp32_probs, fp32_probs, data, batch)
    if precision == "fp32":
        return fp32_probs, [fp32]
    variant = convert(onnx_path, precision, data)
    run = onnx_session(variant)
    probs = data.over_test(lambda x: run(x))
    shipped = measure(variant, precision, probs, fp32_probs, data, batch)
    if precision == "fp16" and shipped.max_abs_diff_vs_fp32 > FP16_TOL:
        raise RuntimeError(
            f"the fp16 graph's probabilities differ from fp32's by {shipped.max_abs_diff_vs_fp32:.2e} "
            f"(tolerance {FP16_TOL:g}); export it as fp32"
        )
    shutil.move(variant, onnx_path)
    return probs, [fp32, shipped]
