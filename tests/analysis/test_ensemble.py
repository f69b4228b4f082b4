from __future__ import annotations

import numpy as np
import pytest
import torch

from tunefleet.analysis import Normalized, SoftmaxAverage, batched, export_onnx, onnx_session
from tunefleet.analysis._combine import Combination, fit_combination
from tunefleet.analysis._ensemble import WeightedAverage, ensemble_module
from tunefleet.spaces import SpecError
from tunefleet.trainables import create_model


def _members(n: int) -> list[torch.nn.Module]:
    out: list[torch.nn.Module] = []
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
        diff = np.abs(onnx_session(path)(x) - batched(ens, x).numpy()).max()
        assert diff < 1e-4


def _pool_logits(pool: list[torch.nn.Module], x: torch.Tensor) -> np.ndarray:
    return torch.stack([batched(m, x) for m in pool]).double().numpy()


def _hand_made(method: str) -> Combination:
    """Combinations that use members 0 and 2 of a pool of 3, so picking from the pool is exercised."""
    rng = np.random.default_rng(0)
    if method == "stacking":
        weight, bias = rng.normal(0, 0.5, (10, 20)).astype(np.float32), rng.normal(0, 0.5, 10).astype(np.float32)
        return Combination("stacking", (0, 2), None, weight, bias, {"pool_size": 3})
    return Combination(method, (0, 2), np.array([0.3, 0.7]), None, None, {"pool_size": 3})


@pytest.mark.parametrize("method", ["mean", "weighted", "caruana", "stacking"])
def test_ensemble_module_computes_the_fitted_combination(method):
    pool = _members(3)
    x_val, y_val = torch.rand(40, 1, 16, 16), np.arange(40) % 10
    comb = fit_combination(method, _pool_logits(pool, x_val), y_val)
    x = torch.rand(9, 1, 16, 16)
    module = ensemble_module(comb, pool)
    assert len(module.members) == len(comb.members)  # type: ignore[arg-type]
    got = batched(module, x).double().numpy()
    np.testing.assert_allclose(got, comb.predict_proba(_pool_logits(pool, x)), atol=1e-5)


@pytest.mark.parametrize("method", ["weighted", "stacking"])
def test_ensemble_module_uses_only_the_chosen_members(method):
    pool = _members(3)
    comb = _hand_made(method)
    x = torch.rand(6, 1, 16, 16)
    module = ensemble_module(comb, pool)
    assert list(module.members) == [pool[0], pool[2]]  # type: ignore[arg-type]
    np.testing.assert_allclose(
        batched(module, x).double().numpy(), comb.predict_proba(_pool_logits(pool, x)), atol=1e-5
    )


def test_ensemble_module_refuses_a_pool_too_small():
    with pytest.raises(SpecError, match=r"^pool: "):
        ensemble_module(_hand_made("weighted"), _members(2))


def test_weighted_average_refuses_weights_off_the_simplex():
    with pytest.raises(ValueError, match="summing to 1"):
        WeightedAverage(_members(2), [0.5, 0.6])
    with pytest.raises(ValueError, match="nonnegative"):
        WeightedAverage(_members(2), [1.5, -0.5])


@pytest.mark.slow
@pytest.mark.parametrize("method", ["weighted", "stacking"])
def test_combination_onnx_export_matches_pytorch_with_a_dynamic_batch(tmp_path, method):
    module = ensemble_module(_hand_made(method), _members(3)).eval()
    path = tmp_path / "e.onnx"
    export_onnx(module, torch.rand(2, 1, 16, 16), path)
    for batch in (1, 7):
        x = torch.rand(batch, 1, 16, 16)
        assert np.abs(onnx_session(path)(x) - batched(module, x).numpy()).max() < 1e-4
