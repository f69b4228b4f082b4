"""One trial in-process (no Ray): reports, best/last checkpoints, resume, failure on divergence."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tunefleet.spaces import DataSpec, SearchSettings, resolve, spec_from_dict
from tunefleet.spaces.records import BEST, EPOCH_METRICS, LAST, SETUP_TIME, UNREADABLE
from tunefleet.trainables import (
    TrialSettings,
    classification_metrics,
    load_logits,
    load_model,
    load_training_state,
    read_meta,
    run_trial,
)


def _collect(tmp_path: Path, recipe, settings, resume_from=None, tag="run"):
    """Run a trial, keeping a copy of every reported checkpoint directory."""
    reports = []

    def report(metrics, checkpoint_dir):
        kept = None
        if checkpoint_dir is not None:
            kept = tmp_path / f"{tag}-ckpt{len(reports) + 1}"
            shutil.copytree(checkpoint_dir, kept)
        reports.append((metrics, kept))

    run_trial(recipe, settings, report, resume_from=resume_from)
    return reports


def test_trial_reports_every_epoch_with_best_and_last_checkpoints(tmp_path):
    settings = TrialSettings(data=DataSpec(image_size=16), search=SearchSettings(max_epochs=3))
    reports = _collect(tmp_path, resolve({"lr": 0.05, "batch_size": 64}), settings)
    assert [int(m["epoch"]) for m, _ in reports] == [1, 2, 3]
    assert [m["is_last"] for m, _ in reports] == [0.0, 0.0, 1.0]
    # set-up time is the first epoch's: from the call to the first batch
    assert [SETUP_TIME in m for m, _ in reports] == [True, False, False]
    assert 0 < reports[0][0][SETUP_TIME] < 60
    for m, directory in reports:
        assert set(EPOCH_METRICS) - {SETUP_TIME} <= set(m) and m[UNREADABLE] == 0
        assert read_meta(directory / LAST).epoch == int(m["epoch"])  # last/ is always this epoch
    best_metrics = max((m for m, _ in reports), key=lambda m: m["val_acc"])
    final = reports[-1][1]
    assert read_meta(final / BEST).epoch == int(best_metrics["epoch"])
    assert "test_acc" in best_metrics  # improving reports carry test metrics

    # the best checkpoint's stored val logits reproduce the reported val_acc
    logits = load_logits(final / BEST)
    again = classification_metrics(logits["val_logits"], logits["val_labels"])
    assert again["val_acc"] == pytest.approx(best_metrics["val_acc"])

    # weights round-trip bit-exactly and the rebuilt model reproduces the stored logits
    model, meta = load_model(final / BEST)
    assert meta.in_chans == 1 and meta.recipe["optimizer"]["name"] == "sgd"
    saved = load_file(str(final / BEST / "model.safetensors"))
    assert all(torch.equal(model.state_dict()[k], saved[k]) for k in saved)
    assert load_training_state(final / LAST)["epoch"] == 3


def test_resumed_trial_continues_exactly_where_it_stopped(tmp_path):
    settings = TrialSettings(data=DataSpec(image_size=16), search=SearchSettings(max_epochs=3))
    recipe = resolve({"lr": 0.05, "batch_size": 64, "augmentation.hflip": True, "augmentation.scale_min": 0.7})
    straight = _collect(tmp_path, recipe, settings, tag="straight")
    after_two = straight[1][1]
    resumed = _collect(tmp_path, recipe, settings, resume_from=after_two, tag="resumed")
    assert [int(m["epoch"]) for m, _ in resumed] == [3]
    assert resumed[0][0]["train_loss"] == straight[2][0]["train_loss"]
    a = load_file(str(straight[2][1] / LAST / "model.safetensors"))
    b = load_file(str(resumed[0][1] / LAST / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_last_checkpoints_at_the_users_cadence_resume_exactly(tmp_path):
    spec = spec_from_dict({"name": "x", "data": {"image_size": 16}, "search": {"max_epochs": 4, "checkpoint_every": 2}})
    settings = TrialSettings.from_spec(spec)
    recipe = resolve({"lr": 0.05, "batch_size": 64, "augmentation.hflip": True})
    straight = _collect(tmp_path, recipe, settings, tag="straight")
    for metrics, directory in straight:
        epoch = int(metrics["epoch"])
        # last/ at epochs 2 and 4 (the final); an epoch whose metric improved saves best/ and last/ too
        if epoch % 2 == 0 or "test_acc" in metrics:
            assert read_meta(directory / LAST).epoch == epoch
        else:
            assert directory is None
    # A trial restarted from its checkpoint of epoch 2 trains epochs 3 and 4 exactly as before.
    at_two = next(d for m, d in straight if int(m["epoch"]) == 2)
    resumed = _collect(tmp_path, recipe, settings, resume_from=at_two, tag="resumed")
    assert [m["train_loss"] for m, _ in resumed] == [m["train_loss"] for m, _ in straight[2:]]


def test_patience_stops_the_trial_early(tmp_path):
    # A near-zero learning rate barely moves the weights, so val_acc soon stops improving.
    settings = TrialSettings(data=DataSpec(image_size=16), search=SearchSettings(max_epochs=8))
    recipe = resolve({"lr": 1e-12, "optimizer": "sgd", "regularization.patience": 1})
    reports = _collect(tmp_path, recipe, settings)
    last_best = max(int(m["epoch"]) for m, _ in reports if "test_acc" in m)
    assert len(reports) < 8
    assert int(reports[-1][0]["epoch"]) == last_best + 1 and reports[-1][0]["is_last"] == 1.0


def test_diverging_trial_raises_with_the_reason(tmp_path):
    settings = TrialSettings(data=DataSpec(image_size=16), search=SearchSettings(max_epochs=2))
    with pytest.raises(FloatingPointError, match=r"train loss became (nan|inf) at epoch 1"):
        _collect(tmp_path, resolve({"lr": 1e12, "optimizer": "sgd"}), settings)


def test_mixup_and_gradient_clipping_train(tmp_path):
    settings = TrialSettings(data=DataSpec(image_size=16), search=SearchSettings(max_epochs=1, grace_period=1))
    sampled = {"lr": 0.05, "batch_size": 32, "augmentation.mixup_alpha": 0.2, "augmentation.cutmix_alpha": 1.0}
    recipe = resolve({**sampled, "regularization.clip_grad": 1.0})
    ((metrics, _),) = _collect(tmp_path, recipe, settings)
    assert metrics["val_acc"] > 0.2 and metrics["images_per_s"] > 0


def test_out_of_memory_is_reported_with_the_batch_size():
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from tunefleet.trainables import TrialOutOfMemory
    from tunefleet.trainables._loop import Precision, TrainParts, train_epoch

    class Greedy(nn.Linear):
        def forward(self, x):  # what the CUDA allocator raises when a batch does not fit
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    model = Greedy(4, 2)
    parts = TrainParts(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        scheduler=None,
        criterion=nn.CrossEntropyLoss(),
        mixup=None,
        precision=Precision.create("auto", torch.device("cpu")),
        clip_grad=0.0,
        device=torch.device("cpu"),
    )
    loader = DataLoader(TensorDataset(torch.zeros(8, 4), torch.zeros(8, dtype=torch.long)), batch_size=8)
    with pytest.raises(TrialOutOfMemory, match=r"out of memory at batch size 8 per worker .*lower batch_size"):
        train_epoch(parts, loader, epoch=1, steps=1)


def test_mixed_precision_step_with_loss_scaling_and_clipping():
    # The GPU path (autocast + GradScaler + clipping on unscaled gradients), run on the CPU.
    from torch import nn

    from tunefleet.trainables._loop import Precision

    torch.manual_seed(0)
    model = nn.Linear(8, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    precision = Precision("cpu", torch.bfloat16, torch.amp.GradScaler("cpu", init_scale=1024.0))
    before = model.weight.detach().clone()
    with precision.autocast():
        out = model(torch.randn(16, 8))
        assert out.dtype == torch.bfloat16
        loss = nn.functional.cross_entropy(out.float(), torch.randint(0, 3, (16,)))
    precision.backward(loss)
    precision.step(optimizer, clip_grad=1e-3, model=model)
    moved = (model.weight.detach() - before).norm()
    assert 0 < moved <= 0.1 * 1e-3 + 1e-6  # one SGD step of a gradient clipped to norm 1e-3
    state = precision.state_dict()
    assert state is not None and state["scale"] == 1024.0
    with pytest.raises(ValueError, match="amp must be"):
        Precision.create("fp8", torch.device("cpu"))
