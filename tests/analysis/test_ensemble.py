from __future__ import annotations

import numpy as np
import pytest
import torch

from tunefleet.analysis import Normalized, SoftmaxAverage, batched, export_onnx, onnx_outputs
from tunefleet.trainables import create_model


def _members(n: int) -> list[torch.nn.Module]:
    out = []
    for seed in range(n):
        torch.manual_seed(seed)
        out.append(Normalized(create_model("test_resnet", 10, 1), [0.45], [0.22]))
    return out


def test_softmax_average_is_the_mean_of_member_probabilities():
    members = _members(3)
    x = torch.rand(5, 1, 16, 16)
    ens = SoftmaxAverage(members).eval()
    expected = torch.stack([torch.softmax(batched(m, x), -1) for m in members]).mean(0)
    got = batched(ens, x)
    assert torch.allclose(got, expected, atol=1e-6)
    assert torch.allclose(got.sum(-1), torch.ones(5), atol=1e-5)


def test_normalization_is_folded_into_the_member():
    torch.manual_seed(0)
    model = create_model("test_resnet", 10, 1).eval()
    x = torch.rand(4, 1, 16, 16)
    assert torch.allclose(batched(Normalized(model, [0.5], [0.25]), x), batched(model, (x - 0.5) / 0.25), atol=1e-6)


def test_empty_ensemble_is_refused():
    with pytest.raises(ValueError, match="at least one member"):
        SoftmaxAverage([])


def test_onnx_export_matches_pytorch_with_a_dynamic_batch(tmp_path):
    ens = SoftmaxAverage(_members(2)).eval()
    path = tmp_path / "e.onnx"
    export_onnx(ens, torch.rand(2, 1, 16, 16), path)
    for batch in (1, 7):
        x = torch.rand(batch, 1, 16, 16)
        diff = np.abs(onnx_outputs(path, x) - batched(ens, x).numpy()).max()
        assert diff < 1e-4
