"""One trial in-process (no Ray): reports, checkpoints, failure on divergence."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tunefleet.spaces import resolve
from tunefleet.trainables import (
    EPOCH_METRICS,
    TrialSettings,
    classification_metrics,
    load_logits,
    load_model,
    read_meta,
    run_trial,
)


def _collect(tmp_path: Path, recipe, settings):
    reports = []

    def report(metrics, checkpoint_dir):
        kept = None
        if checkpoint_dir is not None:
            kept = tmp_path / f"ckpt{len(reports)}"
            kept.mkdir()
            for f in Path(checkpoint_dir).iterdir():
                (kept / f.name).write_bytes(f.read_bytes())
        reports.append((metrics, kept))

    run_trial(recipe, settings, report)
    return reports


def test_trial_reports_every_epoch_and_checkpoints_on_improvement(tmp_path):
    settings = TrialSettings(image_size=16, max_epochs=3)
    reports = _collect(tmp_path, resolve({"lr": 0.05, "batch_size": 64}), settings)
    assert [int(m["epoch"]) for m, _ in reports] == [1, 2, 3]
    assert [m["is_last"] for m, _ in reports] == [0.0, 0.0, 1.0]
    for m, _ in reports:
        assert set(EPOCH_METRICS) <= set(m)
    assert reports[0][1] is not None  # the first epoch is always an improvement
    best_metrics, best_dir = [(m, d) for m, d in reports if d is not None][-1]
    assert best_metrics["val_acc"] == max(m["val_acc"] for m, _ in reports)

    # the checkpoint's stored val logits reproduce the reported val_acc
    logits = load_logits(best_dir)
    again = classification_metrics(logits["val_logits"], logits["val_labels"])
    assert again["val_acc"] == pytest.approx(best_metrics["val_acc"])

    # weights round-trip bit-exactly and the rebuilt model reproduces the stored logits
    model, meta = load_model(best_dir)
    assert meta["epoch"] == int(best_metrics["epoch"]) and meta["in_chans"] == 1
    state = model.state_dict()
    from safetensors.torch import load_file

    saved = load_file(str(best_dir / "model.safetensors"))
    assert all(torch.equal(state[k], saved[k]) for k in saved)
    assert read_meta(best_dir)["recipe"]["optimizer"]["name"] == "sgd"


def test_patience_stops_the_trial_early(tmp_path):
    # A near-zero learning rate barely moves the weights, so val_acc soon stops improving.
    settings = TrialSettings(image_size=16, max_epochs=8, patience=1)
    reports = _collect(tmp_path, resolve({"lr": 1e-12, "optimizer": "sgd"}), settings)
    last_best = max(int(m["epoch"]) for m, d in reports if d is not None)
    assert len(reports) < 8
    assert int(reports[-1][0]["epoch"]) == last_best + 1 and reports[-1][0]["is_last"] == 1.0


def test_diverging_trial_raises_with_the_reason(tmp_path):
    settings = TrialSettings(image_size=16, max_epochs=2)
    with pytest.raises(FloatingPointError, match=r"train loss became (nan|inf) at epoch 1"):
        _collect(tmp_path, resolve({"lr": 1e12, "optimizer": "sgd"}), settings)
