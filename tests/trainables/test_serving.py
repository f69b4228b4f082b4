"""A trial's serving cost: its model exported to ONNX and timed in onnxruntime, in every report."""

from __future__ import annotations

import pytest
import timm
import torch

from tunefleet.spaces import DataSpec, SearchSettings, resolve
from tunefleet.spaces.records import GPU_SERVING_METRICS, LATENCY_BATCH_MS, LATENCY_MS, MODEL_MB, SERVING_METRICS
from tunefleet.trainables import TrialSettings, export_onnx, onnx_session, run_trial, serving_cost
from tunefleet.trainables._serving import gpu_serving_available


def test_serving_cost_is_the_exported_graph_timed_and_the_model_left_as_it_was():
    model = timm.create_model("test_resnet", pretrained=False, num_classes=10, in_chans=1).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cost = serving_cost(model, in_chans=1, image_size=32, batch=8, threads=1)
    params = sum(p.numel() for p in model.parameters())
    assert cost[MODEL_MB] == pytest.approx(4 * params / 1e6, rel=0.05)  # float32 weights dominate the file
    assert 0 < cost[LATENCY_MS] < cost[LATENCY_BATCH_MS]  # a batch of 8 takes longer than one image
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not set(GPU_SERVING_METRICS) & set(cost)  # no GPU asked for
    small = serving_cost(timm.create_model("test_vit", num_classes=10, in_chans=1, img_size=32), 1, 32, 8, 1)
    assert small[MODEL_MB] < cost[MODEL_MB]


@pytest.mark.parametrize("measured", [True, False])
def test_a_trial_reports_its_serving_cost_every_epoch_when_the_search_asks(tmp_path, measured):
    search = SearchSettings(max_epochs=2, measure_serving=measured, serving_batch=4)
    settings = TrialSettings(data=DataSpec(image_size=16), search=search)
    reports: list[dict[str, float]] = []
    run_trial(resolve({"lr": 0.05, "batch_size": 64}), settings, lambda m, _: reports.append(m))
    assert len(reports) == 2
    if not measured:
        assert not set(SERVING_METRICS) & set(reports[0])
        return
    assert all(m[LATENCY_MS] > 0 and m[MODEL_MB] > 0 for m in reports)
    assert not set(GPU_SERVING_METRICS) & set(reports[0])  # a CPU trial times no GPU
    kept = set(SERVING_METRICS) & set(reports[0])
    assert {k: reports[0][k] for k in kept} == {k: reports[1][k] for k in kept}  # once a trial


@pytest.mark.skipif(gpu_serving_available(), reason="onnxruntime here runs on a GPU")
def test_a_gpu_session_without_onnxruntimes_cuda_provider_is_refused_not_run_on_cpu(tmp_path):
    """onnxruntime would fall back to CPU with a log line; a GPU latency must never be a CPU one."""
    path = tmp_path / "m.onnx"
    export_onnx(timm.create_model("test_resnet", num_classes=3, in_chans=1), torch.zeros(1, 1, 16, 16), path)
    with pytest.raises(RuntimeError, match=r"cannot run on GPU 0 here .*install onnxruntime-gpu"):
        onnx_session(path, gpu=0)
    model = timm.create_model("test_resnet", num_classes=3, in_chans=1)
    with pytest.raises(RuntimeError, match="install onnxruntime-gpu"):
        serving_cost(model, in_chans=1, image_size=16, batch=2, threads=1, gpu=0)
