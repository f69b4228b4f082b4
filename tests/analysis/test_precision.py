"""Every precision an export ships (``analysis/_checks.PRECISIONS``): the fp32 graph converted in
place, measured beside fp32; int8 calibrated on the training split, or refused in one line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from tunefleet.analysis import Normalized, export_onnx, onnx_session
from tunefleet.analysis._checks import PRECISIONS, check_export
from tunefleet.analysis._members import EvalData
from tunefleet.analysis._precision import FP16_TOL, ship_precision
from tunefleet.spaces import DataSpec, SpecError
from tunefleet.trainables import create_model, open_data


class _Probabilities(torch.nn.Module):
    def __init__(self, member: torch.nn.Module) -> None:
        super().__init__()
        self.member = member

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.member(x), dim=-1)


@pytest.fixture
def folder_data(image_folder, tmp_path_factory):
    root = image_folder(tmp_path_factory.mktemp("images"), {"cat": 24, "dog": 24, "fox": 24})
    data, _ = open_data(DataSpec(kind="imagefolder", root=str(root), image_size=16, cache="stream"))
    return data


def _graph(tmp_path: Path, data: EvalData) -> tuple[Path, np.ndarray]:
    torch.manual_seed(0)
    model = create_model("test_resnet", num_classes=3, in_chans=3, pretrained=False)
    module = _Probabilities(Normalized(model, [0.5] * 3, [0.25] * 3)).eval()
    path = tmp_path / "ensemble.onnx"
    export_onnx(module, data.example(), path)
    run = onnx_session(path)
    return path, data.over_test(lambda x: run(x))


@pytest.mark.parametrize("precision", PRECISIONS)
def test_each_precision_ships_in_place_measured_beside_fp32(precision, folder_data, tmp_path):
    data = EvalData(folder_data, workers=0)
    path, fp32_probs = _graph(tmp_path, data)
    fp32_bytes = path.stat().st_size
    probs, variants = ship_precision(path, precision, fp32_probs, data, batch=4)
    assert [v.precision for v in variants] == (["fp32"] if precision == "fp32" else ["fp32", precision])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ensemble.onnx"]  # the variant took its place
    shipped = variants[-1]
    assert shipped.file_bytes == path.stat().st_size and shipped.batch_n == 4
    assert shipped.latency_ms_batch_1 > 0 and shipped.latency_ms_batch_n > 0
    run = onnx_session(path)  # float32 in, float32 out, whatever the precision inside
    again = data.over_test(lambda x: run(x))
    assert again.dtype == np.float32 and np.array_equal(again, probs)
    assert shipped.test_acc == pytest.approx(float((probs.argmax(1) == data.y_test).mean()))
    if precision == "fp16":
        assert 0 < shipped.max_abs_diff_vs_fp32 <= FP16_TOL and shipped.file_bytes < fp32_bytes
    if precision == "int8":
        assert shipped.file_bytes < fp32_bytes / 2 and shipped.max_abs_diff_vs_fp32 > 0


def test_int8_without_readable_training_images_is_one_line(folder_data, tmp_path):
    """The training images went bad on disk after the search: nothing to calibrate on."""
    broken = tmp_path / "broken"
    broken.mkdir()
    files = []
    for i in range(len(folder_data.train)):
        (broken / f"{i}.png").write_bytes(b"not an image")
        files.append(str(broken / f"{i}.png"))
    train = dataclasses.replace(folder_data.train, files=tuple(files))
    data = EvalData(dataclasses.replace(folder_data, train=train), workers=0)
    path, fp32_probs = _graph(tmp_path, data)
    before = path.read_bytes()
    with pytest.raises(SpecError, match=r"^--precision: int8 needs calibration images from the training split"):
        ship_precision(path, "int8", fp32_probs, data, batch=4)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["broken", "ensemble.onnx"]


@pytest.mark.parametrize(
    "precision, batch, field", [("int4", 32, "--precision"), ("FP16", 32, "--precision"), ("int8", 0, "--batch")]
)
def test_bad_precision_options_name_the_field(precision, batch, field):
    with pytest.raises(SpecError, match=f"^{field}: "):
        check_export(3, "auto", None, precision, batch)
